"""Planning the spanning tree, and predicting what 802.1D will do with it. Pure.

Any single spanning tree sends some host pairs the long way round; we choose which by taking
the tree with the least total path latency over all host pairs (the minimum routing-cost
spanning tree). Meshes whose C(links, hosts − 1) edge subsets number at most
EXACT_SEARCH_LIMIT are searched exhaustively (about 5 µs a subset: 40,000 take about 0.25 s,
see docs/stp.md), as long as subsets × max(hosts, 10) stays within EXACT_SEARCH_WORK: each
subset costs O(hosts), so a 2,000-host ring (2,000 subsets of 1,999 wires) is not searched
(it took 16 s). Larger ones use the best shortest-path tree over a set of candidate roots:
a shortest-path tree rooted at the graph's median is a 2-approximation of the optimum (Wong,
1980), and each candidate costs one Dijkstra plus an O(n) routing-cost evaluation; on random
5-9 host meshes it was optimal in 83% of cases and 0.5% above the optimum on average.

The tree is then pinned: its median is the root (priority 4096), the next best median the
backup (8192), tree wires cost their latency and every other wire costs more than any tree
path to the root, so that 802.1D can only converge to that tree.

Failover. With static costs, cutting one tree wire leaves the rest of the tree in place, so
the best 802.1D can then do is the best swap: the tree minus the cut wire plus the one
crossing wire that gives the least routing cost. For every tree wire we price each crossing
wire's swap (swap_scores, O(1) each), and require the best one to come first among the wires
crossing that cut. Those "first" constraints (taken by regret, a cycle-closing one dropped)
give every non-tree wire a level, and its cost is base + level × step + latency, with the
step larger than any two disjoint tree paths, so that a whole cut-off side agrees on the
wire of lowest level (see _costs). Costs stay within 1..65535; when levels do not fit they
are dropped and non-tree wires are ordered by latency alone.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from mesh_push.core.model import Mesh
from mesh_push.modes.stp.simulate import Outcome, simulate
from mesh_push.modes.topology import Edge, adjacency, edge, weights_of

ROOT_PRIORITY, BACKUP_PRIORITY, DEFAULT_PRIORITY = 4096, 8192, 32768
MAX_COST = 65535
TREE_COST_BUDGET = 30000  # leaves room above the tree for the non-tree wires
EXACT_SEARCH_LIMIT = 40_000  # edge subsets tried by the exhaustive search (~0.25 s)
# ... and subsets × max(hosts, 10): the same bound up to 10 hosts, and a 600-host ring
EXACT_SEARCH_WORK = 10 * EXACT_SEARCH_LIMIT
FAILOVER_ANALYSIS_LIMIT = 200_000  # tree-cycle steps priced when ordering the failover wires
CANDIDATE_ROOTS = 16


@dataclass(frozen=True)
class TreePlan:
    weights: dict[Edge, float]
    tree: frozenset[Edge]
    method: str  # "exact" or "heuristic"
    root: str
    backup: str | None
    mac: dict[str, str]
    priority: dict[str, int]
    port_cost: dict[tuple[str, str], int]  # (host, wire) → cost
    expected: Outcome
    routing_cost_ms: float
    # tree wire → the non-tree wire that should take over when it is cut (best swap)
    replacement: dict[Edge, Edge] = field(default_factory=dict)


def routing_cost(nodes: list[str], tree: Iterable[Edge], w: dict[Edge, float]) -> float:
    """Sum over unordered pairs of their tree path weight: each edge carries size × (n − size)."""
    n = len(nodes)
    if n < 2:
        return 0.0
    adj = adjacency(nodes, tree)
    root = nodes[0]
    parent: dict[str, str | None] = {root: None}
    order = [root]
    for node in order:
        for nb in adj[node]:
            if nb not in parent:
                parent[nb] = node
                order.append(nb)
    size = dict.fromkeys(nodes, 1)
    total = 0.0
    for node in reversed(order[1:]):
        up = parent[node]
        assert up is not None
        size[up] += size[node]
        total += w[edge(node, up)] * size[node] * (n - size[node])
    return total


def _spanning(nodes: list[str], edges: tuple[Edge, ...]) -> bool:
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra == rb:
            return False
        parent[ra] = rb
    return True


def _dijkstra_tree(nodes: list[str], w: dict[Edge, float], root: str) -> frozenset[Edge]:
    adj = adjacency(nodes, w)
    dist = {root: 0.0}
    via: dict[str, str] = {}
    heap: list[tuple[float, str, str]] = [(0.0, root, root)]
    done: set[str] = set()
    while heap:
        d, node, prev = heapq.heappop(heap)
        if node in done:
            continue
        done.add(node)
        if node != root:
            via[node] = prev
        for nb in adj[node]:
            nd = d + w[edge(node, nb)]
            if nb not in done and nd < dist.get(nb, math.inf):
                dist[nb] = nd
                heapq.heappush(heap, (nd, nb, node))
    return frozenset(edge(n, p) for n, p in via.items())


def best_tree(nodes: list[str], w: dict[Edge, float]) -> tuple[frozenset[Edge], str]:
    edges = tuple(sorted(w))
    k = len(nodes) - 1
    if k <= 0:
        return frozenset(), "exact"
    subsets = math.comb(len(edges), k)
    if subsets <= EXACT_SEARCH_LIMIT and subsets * max(len(nodes), 10) <= EXACT_SEARCH_WORK:
        best: tuple[float, tuple[Edge, ...]] | None = None
        for combo in itertools.combinations(edges, k):
            if _spanning(nodes, combo):
                cost = routing_cost(nodes, combo, w)
                if best is None or cost < best[0]:
                    best = (cost, combo)
        assert best is not None, "the inventory guarantees a connected link graph"
        return frozenset(best[1]), "exact"
    degree = adjacency(nodes, w)
    candidates = sorted(nodes, key=lambda n: (-len(degree[n]), n))
    if len(nodes) > 200:
        candidates = candidates[:CANDIDATE_ROOTS]
    scored = (
        (routing_cost(nodes, t, w), sorted(t), t)
        for t in (_dijkstra_tree(nodes, w, r) for r in candidates)
    )
    return min(scored)[2], "heuristic"


def _medians(nodes: list[str], tree: frozenset[Edge], w: dict[Edge, float]) -> list[str]:
    """Hosts ordered by their total tree distance to all others (then by name), in O(n):
    moving from a parent to its child brings size(child) hosts nearer by w and the rest
    farther by w."""
    adj = adjacency(nodes, tree)
    root = nodes[0]
    parent: dict[str, str | None] = {root: None}
    order = [root]
    dist = {root: 0.0}
    for node in order:
        for nb in adj[node]:
            if nb not in parent:
                parent[nb] = node
                dist[nb] = dist[node] + w[edge(node, nb)]
                order.append(nb)
    size = dict.fromkeys(nodes, 1)
    for node in reversed(order[1:]):
        up = parent[node]
        assert up is not None
        size[up] += size[node]
    n = len(nodes)
    total = {root: sum(dist.values())}
    for node in order[1:]:
        up = parent[node]
        assert up is not None
        total[node] = total[up] + w[edge(node, up)] * (n - 2 * size[node])
    return sorted(nodes, key=lambda x: (round(total[x], 6), x))


@dataclass(frozen=True)
class _Rooted:
    """The tree hung from an arbitrary node, with the sums that price a swap in O(1)."""

    parent: dict[str, str | None]
    order: list[str]
    depth: dict[str, int]  # hops from the hanging point
    dist: dict[str, float]  # weight from the hanging point
    size: dict[str, int]  # hosts in the subtree
    down: dict[str, float]  # Σ distance from a node to the hosts of its subtree
    total: dict[str, float]  # Σ distance from a node to every host


def _rooted(nodes: list[str], tree: frozenset[Edge], w: dict[Edge, float]) -> _Rooted:
    adj = adjacency(nodes, tree)
    top = nodes[0]
    parent: dict[str, str | None] = {top: None}
    order = [top]
    depth, dist = {top: 0}, {top: 0.0}
    for node in order:
        for nb in adj[node]:
            if nb not in parent:
                parent[nb] = node
                depth[nb] = depth[node] + 1
                dist[nb] = dist[node] + w[edge(node, nb)]
                order.append(nb)
    size = dict.fromkeys(nodes, 1)
    down = dict.fromkeys(nodes, 0.0)
    for node in reversed(order[1:]):
        up = parent[node]
        assert up is not None
        size[up] += size[node]
        down[up] += down[node] + size[node] * w[edge(node, up)]
    n = len(nodes)
    total = {top: down[top]}
    for node in order[1:]:
        up = parent[node]
        assert up is not None
        total[node] = total[up] + w[edge(node, up)] * (n - 2 * size[node])
    return _Rooted(parent, order, depth, dist, size, down, total)


def swap_scores(
    nodes: list[str], tree: frozenset[Edge], w: dict[Edge, float], limit: int | None = None
) -> dict[Edge, list[tuple[float, Edge]]] | None:
    """For every tree wire e, the non-tree wires f that reconnect the tree without it, each
    with routing_cost(tree − e + f) up to a constant per e (so they compare within one cut).

    With the tree hung from a node, cutting e = (c, parent c) leaves A = subtree(c) and B =
    the rest; the swapped tree's routing cost is RC(A) + RC(B) + |A||B|·w(f) + |B|·D_A(a) +
    |A|·D_B(b), where a, b are f's ends in A and B and D_X(x) is the sum of distances from x
    to the hosts of X. Each term is O(1) from subtree sums, so the whole table costs the total
    length of the non-tree wires' tree cycles. None when that exceeds `limit`."""
    n = len(nodes)
    r = _rooted(nodes, tree, w)
    parent, depth, dist, size, down, total = r.parent, r.depth, r.dist, r.size, r.down, r.total
    out: dict[Edge, list[tuple[float, Edge]]] = {e: [] for e in tree}
    budget = limit
    for f in sorted(w):
        if f in tree:
            continue
        u, v = f
        # Walk both ends up to their lowest common ancestor, noting each cut child and which
        # end of f hangs below it.
        below: list[tuple[str, str, str]] = []  # (child c, end in subtree(c), other end)
        x, y = u, v
        while x != y:
            if depth[x] >= depth[y]:
                below.append((x, u, v))
                px = parent[x]
                assert px is not None
                x = px
            else:
                below.append((y, v, u))
                py = parent[y]
                assert py is not None
                y = py
            if budget is not None:
                budget -= 1
                if budget < 0:
                    return None
        lca = x
        for c, a, b in below:
            p = parent[c]
            assert p is not None
            we = w[edge(c, p)]
            s_a = size[c]
            s_b = n - s_a
            up_p = total[p] - (s_a * we + down[c])  # Σ d(p, y) over y in B
            d_a = total[a] - (s_b * (dist[a] - dist[c] + we) + up_p)
            d_bp = dist[b] + dist[p] - 2 * dist[lca]
            d_b = total[b] - (s_a * (d_bp + we) + down[c])
            score = s_a * s_b * w[f] + s_b * d_a + s_a * d_b
            out[edge(c, p)].append((score, f))
    return out


def failover_order(
    nodes: list[str], tree: frozenset[Edge], w: dict[Edge, float]
) -> tuple[dict[Edge, int], dict[Edge, Edge]]:
    """Levels for the non-tree wires, and the replacement wanted for each tree wire.

    For each tree wire the best replacement is the crossing wire whose swap gives the least
    routing cost (see swap_scores). It must come first among the wires crossing that cut:
    "f* before f" constraints. Cuts are taken by regret (how much worse the runner-up is)
    and a constraint that would close a cycle is dropped; the wires' levels are then their
    longest constraint chains. Empty when the mesh is too big to analyse."""
    scores = swap_scores(nodes, tree, w, FAILOVER_ANALYSIS_LIMIT)
    if scores is None:
        return {}, {}
    wanted: dict[Edge, Edge] = {}
    cuts: list[tuple[float, Edge, Edge, list[Edge]]] = []
    for e, cands in scores.items():
        if not cands:
            continue
        ranked = sorted(cands, key=lambda sf: (round(sf[0], 6), w[sf[1]], sf[1]))
        best = ranked[0][1]
        wanted[e] = best
        if len(ranked) > 1:
            regret = ranked[1][0] - ranked[0][0]
            cuts.append((-regret, e, best, [f for _, f in ranked[1:]]))
    after: dict[Edge, set[Edge]] = {}

    def reaches(src: Edge, dst: Edge) -> bool:
        stack, seen = [src], {src}
        while stack:
            cur = stack.pop()
            if cur == dst:
                return True
            for nxt in after.get(cur, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    for _, _, best, others in sorted(cuts):
        for f in others:
            if f not in after.get(best, set()) and not reaches(f, best):
                after.setdefault(best, set()).add(f)
    level = {f: 0 for f in w if f not in tree}
    indeg = dict.fromkeys(level, 0)
    for succ in after.values():
        for f in succ:
            indeg[f] += 1
    ready = sorted(f for f, d in indeg.items() if d == 0)
    while ready:
        cur = ready.pop()
        for nxt in after.get(cur, ()):
            level[nxt] = max(level[nxt], level[cur] + 1)
            indeg[nxt] -= 1
            if indeg[nxt] == 0:
                ready.append(nxt)
    return level, wanted


def _far(nodes: list[str], tree: Iterable[Edge], cost: dict[Edge, int], src: str) -> dict[str, int]:
    adj = adjacency(nodes, tree)
    dist = {src: 0}
    stack = [src]
    while stack:
        cur = stack.pop()
        for nb in adj[cur]:
            if nb not in dist:
                dist[nb] = dist[cur] + cost[edge(cur, nb)]
                stack.append(nb)
    return dist


def _costs(
    nodes: list[str],
    tree: frozenset[Edge],
    w: dict[Edge, float],
    explicit: dict[Edge, int],
    level: dict[Edge, int],
    root: str,
) -> dict[Edge, int]:
    """Port costs. Tree wires cost their latency. With H the tree's height from the root, X
    the longest two tree paths that share no wire can be together (the least of the tree's
    total cost and H + its diameter) and M the largest non-tree latency (all in cost units),
    a non-tree wire f costs base + level(f) × step + latency(f), with step = X + M and
    base = X + 1 + L_max × step + M (H + 1 when no wire has a level above 0), so that:

    - any path over a non-tree wire costs more than H: the tree stands while it is whole;
    - after one tree wire is cut, every host cut off reaches the root through the crossing wire
      of lowest level: two levels apart differ by more than the root-side distance of one
      wire's end plus the far-side distance between the two wires' ends (two tree paths with
      no wire in common), so the whole far side agrees on that one wire;
    - a path over two non-tree wires costs more than any path over one.

    Everything is scaled down together if the largest cost would pass 65535; if even tree
    costs of 1 leave no room, the levels are dropped (non-tree wires in latency order only)."""
    tree_raw = {e: float(explicit.get(e) or w[e]) for e in tree}
    other = [e for e in w if e not in tree]
    top = max((level.get(e, 0) for e in other), default=0)
    raw_w = max(1.0, sum(tree_raw.values()))
    raw_m = max((w[e] for e in other), default=0.0)
    scale = min(1.0, TREE_COST_BUDGET / raw_w)
    if top:
        # H, D ≤ W: a first guess that the loop below corrects.
        span = raw_w * (2 + 3 * top) + raw_m * (2 + 2 * top) + 2 * top + 2
        scale = min(scale, (MAX_COST - 2 * top - 2) / span)
    cost: dict[Edge, int] = {}
    for _ in range(100):
        cost = {e: max(1, round(v * scale)) for e, v in tree_raw.items()}
        lat = {e: max(1, round(w[e] * scale)) for e in other}
        from_root = _far(nodes, tree, cost, root)
        height = max(from_root.values())
        far_end = max(from_root, key=lambda x: from_root[x])
        diameter = max(_far(nodes, tree, cost, far_end).values())
        big_m = max(lat.values(), default=0)
        # Two tree paths that share no wire are at most X long together.
        x = min(sum(cost.values()), height + diameter)
        step = x + big_m
        base = height + 1 if not top else x + 1 + top * step + big_m
        for e in other:
            cost[e] = base + level.get(e, 0) * step + lat[e]
        if max(cost.values(), default=0) <= MAX_COST:
            return cost
        if top and all(c == 1 for e, c in cost.items() if e in tree):
            break
        scale *= 0.8
    if top:
        return _costs(nodes, tree, w, explicit, {}, root)
    return {e: min(MAX_COST, c) for e, c in cost.items()}


def leaf_weights(mesh: Mesh, w: dict[Edge, float]) -> dict[Edge, float]:
    """The weights the tree and the failover order are chosen by: every wire of a `transit:
    false` host weighs more than all others together, times every pair it could carry, so
    that the least-cost tree gives such a host one tree wire wherever another path joins the
    rest (it stays a leaf), and that no cut is bridged through it while another wire can.
    Port costs and reported latencies keep the real weights."""
    leaves = {h.name for h in mesh.hosts if not h.transit}
    if not leaves:
        return w
    n = len(mesh.hosts)
    heavy = (sum(w.values()) + 1) * n * n
    return {e: v + heavy if set(e) & leaves else v for e, v in w.items()}


def plan_tree(mesh: Mesh, macs: dict[str, str]) -> TreePlan:
    nodes = [h.name for h in mesh.hosts]
    w = weights_of(mesh)
    search = leaf_weights(mesh, w)
    tree, method = best_tree(nodes, search)
    medians = _medians(nodes, tree, search)
    root = mesh.stp.root or medians[0]
    backup = next((n for n in medians if n != root), None)
    priority = dict.fromkeys(nodes, DEFAULT_PRIORITY)
    priority[root] = ROOT_PRIORITY
    if backup:
        priority[backup] = BACKUP_PRIORITY
    explicit = {edge(lk.a, lk.b): lk.cost for lk in mesh.links if lk.cost is not None}
    level, replacement = failover_order(nodes, tree, search)
    cost = _costs(nodes, tree, w, explicit, level, root)
    port_cost: dict[tuple[str, str], int] = {}
    for (a, b), c in cost.items():
        port_cost[(a, b)] = c
        port_cost[(b, a)] = c
    expected = simulate(nodes, list(w), priority, macs, port_cost)
    return TreePlan(
        weights=w,
        tree=tree,
        method=method,
        root=root,
        backup=backup,
        mac=macs,
        priority=priority,
        port_cost=port_cost,
        expected=expected,
        routing_cost_ms=routing_cost(nodes, tree, w),
        replacement=replacement,
    )


def after_cut(plan: TreePlan, nodes: list[str], cut: Edge) -> Outcome:
    edges = [e for e in plan.weights if e != cut]
    return simulate(nodes, edges, plan.priority, plan.mac, plan.port_cost)
