"""Planning the spanning tree, and predicting what 802.1D will do with it. Pure.

Any single spanning tree sends some host pairs the long way round; we choose which by taking
the tree with the least total path latency over all host pairs (the minimum routing-cost
spanning tree). Small meshes are searched exhaustively. Larger ones use the best
shortest-path tree over a set of candidate roots: a shortest-path tree rooted at the
graph's median is a 2-approximation of the optimum (Wong, 1980), and each candidate costs one
Dijkstra plus an O(n) routing-cost evaluation.

The tree is then pinned: its median is the root (priority 4096), the next best median the
backup (8192), tree wires cost their latency and every other wire costs more than the whole
tree, so that 802.1D can only converge to it, while the other wires stay ordered by latency
for failover.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from .model import Mesh

ROOT_PRIORITY, BACKUP_PRIORITY, DEFAULT_PRIORITY = 4096, 8192, 32768
DEFAULT_WEIGHT = 100.0  # a link with neither latency_ms nor cost
MAX_COST = 65535
TREE_COST_BUDGET = 30000  # leaves room above the tree for the non-tree wires
EXACT_SEARCH_LIMIT = 20000  # edge subsets tried by the exhaustive search
CANDIDATE_ROOTS = 16

Edge = tuple[str, str]  # sorted pair of host names


def edge(a: str, b: str) -> Edge:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class Outcome:
    """What 802.1D converges to: per host its root port; blocking ports as (host, wire)."""

    root: str
    root_port: dict[str, str | None]
    root_cost: dict[str, int]
    blocking: frozenset[tuple[str, str]]
    forwarding_edges: frozenset[Edge]


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


def weights_of(mesh: Mesh) -> dict[Edge, float]:
    out: dict[Edge, float] = {}
    for lk in mesh.links:
        w = lk.latency_ms if lk.latency_ms is not None else lk.cost
        out[edge(lk.a, lk.b)] = float(w) if w is not None else DEFAULT_WEIGHT
    return out


def _adjacency(nodes: Iterable[str], edges: Iterable[Edge]) -> dict[str, list[str]]:
    adj: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    return adj


def routing_cost(nodes: list[str], tree: Iterable[Edge], w: dict[Edge, float]) -> float:
    """Sum over unordered pairs of their tree path weight: each edge carries size × (n − size)."""
    n = len(nodes)
    if n < 2:
        return 0.0
    adj = _adjacency(nodes, tree)
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
    adj = _adjacency(nodes, w)
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
    if math.comb(len(edges), k) <= EXACT_SEARCH_LIMIT:
        best: tuple[float, tuple[Edge, ...]] | None = None
        for combo in itertools.combinations(edges, k):
            if _spanning(nodes, combo):
                cost = routing_cost(nodes, combo, w)
                if best is None or cost < best[0]:
                    best = (cost, combo)
        assert best is not None, "the inventory guarantees a connected link graph"
        return frozenset(best[1]), "exact"
    degree = _adjacency(nodes, w)
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
    adj = _adjacency(nodes, tree)
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


def _costs(
    tree: frozenset[Edge], w: dict[Edge, float], explicit: dict[Edge, int]
) -> dict[Edge, int]:
    tree_w = {e: explicit.get(e) or w[e] for e in tree}
    scale = min(1.0, TREE_COST_BUDGET / max(1.0, sum(tree_w.values())))
    cost = {e: max(1, round(v * scale)) for e, v in tree_w.items()}
    above = sum(cost.values()) + 1
    for e in w:
        if e not in tree:
            cost[e] = min(MAX_COST, above + max(1, round(w[e] * scale)))
    return cost


def plan_tree(mesh: Mesh, macs: dict[str, str]) -> TreePlan:
    nodes = [h.name for h in mesh.hosts]
    w = weights_of(mesh)
    tree, method = best_tree(nodes, w)
    medians = _medians(nodes, tree, w)
    root = mesh.stp.root or medians[0]
    backup = next((n for n in medians if n != root), None)
    priority = dict.fromkeys(nodes, DEFAULT_PRIORITY)
    priority[root] = ROOT_PRIORITY
    if backup:
        priority[backup] = BACKUP_PRIORITY
    explicit = {edge(lk.a, lk.b): lk.cost for lk in mesh.links if lk.cost is not None}
    cost = _costs(tree, w, explicit)
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
    )


def bridge_id(priority: int, mac: str) -> tuple[int, bytes]:
    return (priority, bytes.fromhex(mac.replace(":", "")))


def simulate(
    nodes: list[str],
    edges: list[Edge],
    priority: dict[str, int],
    macs: dict[str, str],
    port_cost: dict[tuple[str, str], int],
) -> Outcome:
    """802.1D's converged state. Port numbers follow the wire names in sorted order, as the
    rendered script enslaves them; ties break on bridge id, then port id, as the standard says."""
    adj = _adjacency(nodes, edges)
    port_no = {n: {wire: i + 1 for i, wire in enumerate(sorted(adj[n]))} for n in nodes}
    bid = {n: bridge_id(priority[n], macs[n]) for n in nodes}
    comp = _components(nodes, adj)
    root_of: dict[str, str] = {}
    root_port: dict[str, str | None] = {}
    cost: dict[str, int] = {}
    for members in comp:
        root = min(members, key=lambda n: bid[n])
        for n in members:
            root_of[n] = root
        cost[root] = 0
        root_port[root] = None
        heap: list[tuple[int, tuple[int, bytes], int, int, str, str]] = [
            (0, bid[root], 0, 0, root, "")
        ]
        done: set[str] = set()
        while heap:
            c, _, _, _, node, via = heapq.heappop(heap)
            if node in done:
                continue
            done.add(node)
            cost[node] = c
            root_port[node] = via or None
            for nb in adj[node]:
                if nb not in done:
                    entry = (
                        c + port_cost[(nb, node)],
                        bid[node],
                        port_no[node][nb],
                        port_no[nb][node],
                        nb,
                        node,
                    )
                    heapq.heappush(heap, entry)
    blocking: set[tuple[str, str]] = set()
    forwarding: set[Edge] = set()
    for a, b in edges:
        va = (cost[a], bid[a], port_no[a][b])
        vb = (cost[b], bid[b], port_no[b][a])
        loser, peer = (b, a) if va < vb else (a, b)
        if root_port[loser] == peer:
            forwarding.add(edge(a, b))
        else:
            blocking.add((loser, peer))
    roots = {root_of[n] for n in nodes}
    return Outcome(
        root=min(roots, key=lambda n: bid[n]),
        root_port=root_port,
        root_cost=cost,
        blocking=frozenset(blocking),
        forwarding_edges=frozenset(forwarding),
    )


def _components(nodes: list[str], adj: dict[str, list[str]]) -> list[list[str]]:
    seen: set[str] = set()
    out: list[list[str]] = []
    for n in nodes:
        if n in seen:
            continue
        seen.add(n)
        group = [n]
        for cur in group:
            for nb in adj[cur]:
                if nb not in seen:
                    seen.add(nb)
                    group.append(nb)
        out.append(group)
    return out


def after_cut(plan: TreePlan, nodes: list[str], cut: Edge) -> Outcome:
    edges = [e for e in plan.weights if e != cut]
    return simulate(nodes, edges, plan.priority, plan.mac, plan.port_cost)


def tree_path(outcome: Outcome, nodes: list[str], a: str, b: str) -> list[str]:
    adj = _adjacency(nodes, outcome.forwarding_edges)
    prev: dict[str, str | None] = {a: None}
    queue = [a]
    for cur in queue:
        if cur == b:
            break
        for nb in adj[cur]:
            if nb not in prev:
                prev[nb] = cur
                queue.append(nb)
    if b not in prev:
        return []
    path = [b]
    while (p := prev[path[-1]]) is not None:
        path.append(p)
    return path[::-1]


def path_latency(path: list[str], w: dict[Edge, float]) -> float:
    return sum(w[edge(x, y)] for x, y in itertools.pairwise(path))
