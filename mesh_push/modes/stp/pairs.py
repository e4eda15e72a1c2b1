"""Host pairs over a (forwarding) tree: each pair's path and latency, listed or summarised, and
how far a link's two hosts detour over the tree. Pure."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from mesh_push.modes.stp.simulate import Outcome
from mesh_push.modes.topology import Edge, adjacency, edge


def tree_path(outcome: Outcome, nodes: list[str], a: str, b: str) -> list[str]:
    adj = adjacency(nodes, outcome.forwarding_edges)
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


def tree_paths(outcome: Outcome, nodes: list[str]) -> Iterator[tuple[str, str, list[str]]]:
    """Every host pair (in `nodes` order) with its path over the forwarding tree ([] when cut
    off): one search per host, not one per pair."""
    adj = adjacency(nodes, outcome.forwarding_edges)
    for i, a in enumerate(nodes):
        prev: dict[str, str | None] = {a: None}
        queue = [a]
        for cur in queue:
            for nb in adj[cur]:
                if nb not in prev:
                    prev[nb] = cur
                    queue.append(nb)
        for b in nodes[i + 1 :]:
            if b not in prev:
                yield a, b, []
                continue
            path = [b]
            while (p := prev[path[-1]]) is not None:
                path.append(p)
            yield a, b, path[::-1]


DETOUR_LIMITS = (1.0, 1.5, 2.0, 4.0)  # pairs are counted by the first limit they are within


@dataclass(frozen=True)
class Detour:
    """A pair joined by a wire, and how much longer its path over the tree is."""

    a: str
    b: str
    wire_ms: float
    tree_ms: float
    path: list[str]

    @property
    def ratio(self) -> float | None:
        """tree ÷ wire; None for a wire of 0 ms with a longer path (no finite ratio)."""
        if self.wire_ms > 0:
            return self.tree_ms / self.wire_ms
        return 1.0 if self.tree_ms == 0 else None


@dataclass(frozen=True)
class PairSummary:
    """The host pairs over a (forwarding) tree in O(hosts + wires × path), for meshes too big
    to list every pair: n hosts have n(n-1)/2 pairs, each with a path of up to n hosts."""

    pairs: int
    cut_off: int  # pairs with no path: the tree is cut in pieces
    total_ms: float  # Σ of the path latencies of the pairs that have one
    longest: tuple[str, str, float, list[str]] | None  # the farthest pair, its latency, path
    linked: int  # pairs joined by a wire
    linked_cut_off: int
    by_detour: tuple[int, ...]  # linked pairs within each DETOUR_LIMITS, then the rest
    worst: tuple[Detour, ...]  # the linked pairs with the largest detours, worst first

    @property
    def mean_ms(self) -> float | None:
        reachable = self.pairs - self.cut_off
        return self.total_ms / reachable if reachable else None


def pair_summary(
    outcome: Outcome, nodes: list[str], w: dict[Edge, float], worst: int = 10
) -> PairSummary:
    adj = adjacency(nodes, outcome.forwarding_edges)
    parent: dict[str, str | None] = {}
    depth: dict[str, int] = {}
    dist: dict[str, float] = {}
    comp: dict[str, int] = {}
    sizes: list[int] = []
    total = 0.0
    longest: tuple[str, str, float, list[str]] | None = None
    for start in nodes:
        if start in comp:
            continue
        order = _hang(adj, w, start, parent, depth, dist)
        for node in order:
            comp[node] = len(sizes)
        size = dict.fromkeys(order, 1)
        for node in reversed(order[1:]):
            up = parent[node]
            assert up is not None
            size[up] += size[node]
            total += w[edge(node, up)] * size[node] * (len(order) - size[node])
        sizes.append(len(order))
        if len(order) > 1:
            # The farthest host from any host is one end of a longest path (weights ≥ 0).
            far = max(order, key=lambda x: dist[x])
            p2: dict[str, str | None] = {}
            d2: dict[str, float] = {}
            other = _hang(adj, w, far, p2, {}, d2)
            end = max(other, key=lambda x: d2[x])
            if longest is None or d2[end] > longest[2]:
                path = [end]
                while (p := p2[path[-1]]) is not None:
                    path.append(p)
                a, b = sorted((far, end))
                longest = (a, b, d2[end], path if path[0] == a else path[::-1])
    n = len(nodes)
    pairs = n * (n - 1) // 2
    cut_off = pairs - sum(s * (s - 1) // 2 for s in sizes)

    counts = [0] * (len(DETOUR_LIMITS) + 1)
    linked_cut_off = 0
    scored: list[tuple[float, float, Edge]] = []
    for e in sorted(w):
        a, b = e
        if comp[a] != comp[b]:
            linked_cut_off += 1
            continue
        if e in outcome.forwarding_edges:
            tree_ms = w[e]
        else:
            tree_ms = dist[a] + dist[b] - 2 * dist[_lca(a, b, parent, depth)]
        d = Detour(a, b, w[e], tree_ms, [])
        r = d.ratio
        slot = len(DETOUR_LIMITS)
        if r is not None:
            slot = next((i for i, lim in enumerate(DETOUR_LIMITS) if r <= lim + 1e-9), slot)
        counts[slot] += 1
        if slot > 0:
            scored.append((math.inf if r is None else r, tree_ms, e))
    top = heapq.nlargest(worst, scored, key=lambda s: (s[0], s[1], s[2]))
    detours = []
    for _r, tree_ms, (a, b) in top:
        detours.append(Detour(a, b, w[(a, b)], tree_ms, _climb(a, b, parent, depth)))
    return PairSummary(
        pairs=pairs,
        cut_off=cut_off,
        total_ms=total,
        longest=longest,
        linked=len(w),
        linked_cut_off=linked_cut_off,
        by_detour=tuple(counts),
        worst=tuple(detours),
    )


def _hang(
    adj: dict[str, list[str]],
    w: dict[Edge, float],
    start: str,
    parent: dict[str, str | None],
    depth: dict[str, int],
    dist: dict[str, float],
) -> list[str]:
    """Hang the tree holding `start` from it: fills parent, depth, dist; returns BFS order."""
    parent[start] = None
    depth[start] = 0
    dist[start] = 0.0
    order = [start]
    seen = {start}
    for node in order:
        for nb in adj[node]:
            if nb not in seen:
                seen.add(nb)
                parent[nb] = node
                depth[nb] = depth[node] + 1
                dist[nb] = dist[node] + w[edge(node, nb)]
                order.append(nb)
    return order


def _lca(a: str, b: str, parent: dict[str, str | None], depth: dict[str, int]) -> str:
    while depth[a] > depth[b]:
        a = cast(str, parent[a])
    while depth[b] > depth[a]:
        b = cast(str, parent[b])
    while a != b:
        a, b = cast(str, parent[a]), cast(str, parent[b])
    return a


def _climb(a: str, b: str, parent: dict[str, str | None], depth: dict[str, int]) -> list[str]:
    """The tree path from a to b."""
    up, down = [a], [b]
    while depth[up[-1]] > depth[down[-1]]:
        up.append(cast(str, parent[up[-1]]))
    while depth[down[-1]] > depth[up[-1]]:
        down.append(cast(str, parent[down[-1]]))
    while up[-1] != down[-1]:
        up.append(cast(str, parent[up[-1]]))
        down.append(cast(str, parent[down[-1]]))
    return up + down[-2::-1]
