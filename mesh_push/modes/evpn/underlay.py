"""evpn mode's underlay as OSPF will compute it (docs/evpn.md): OSPF costs from latency, the
shortest path of every pair with its equal-cost next hops, and the two route reflectors. Pure:
FRR computes the real routes; this says what they must come to."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from mesh_push.core.model import Link, Mesh
from mesh_push.modes.topology import DEFAULT_WEIGHT, Edge, adjacency, edge

LINK_NET = IPv4Address("169.254.0.0")
# OSPF costs are whole numbers: tenths of a millisecond keep close latencies apart.
COST_PER_MS = 10
MAX_COST = 65535
REFLECTORS = 2


@dataclass(frozen=True)
class Underlay:
    """The routed underlay as OSPF will compute it, from the same costs."""

    hosts: tuple[str, ...]
    cost: Mapping[Edge, int]
    latency: Mapping[Edge, float]
    reflectors: tuple[str, ...]
    dist: Mapping[str, Mapping[str, int]]  # shortest cost from each host to each host
    # (host, destination) → the neighbours that start a shortest path (OSPF's ECMP set)
    next_hops: Mapping[tuple[str, str], frozenset[str]]
    # `transit: false` hosts: stub routers (RFC 6987), whose links all cost MAX_COST to
    # leave by, so that a path runs through one only where no other path is left.
    leaves: frozenset[str] = frozenset()

    def path(self, a: str, b: str) -> list[str]:
        """The shortest path a → b; among equal ones, the one through the first names."""
        path = [a]
        while path[-1] != b:
            hops = self.next_hops.get((path[-1], b))
            if not hops:
                return []
            path.append(min(hops))
        return path

    def latency_of(self, path: list[str]) -> float:
        return sum(self.latency[edge(x, y)] for x, y in itertools.pairwise(path))

    def pairs(self) -> Iterator[tuple[str, str, list[str]]]:
        for i, a in enumerate(self.hosts):
            for b in self.hosts[i + 1 :]:
                yield a, b, self.path(a, b)


def ospf_cost(link: Link) -> int:
    if link.cost is not None:
        return link.cost
    ms = link.latency_ms if link.latency_ms is not None else DEFAULT_WEIGHT
    return max(1, min(MAX_COST, round(ms * COST_PER_MS)))


def link_addresses(link: Link) -> tuple[IPv4Address, IPv4Address]:
    """The /31 of a link: its first address for `link.a`, the second for `link.b`."""
    base = LINK_NET + 2 * link.vni
    return base, base + 1


def underlay(mesh: Mesh) -> Underlay:
    names = tuple(h.name for h in mesh.hosts)
    cost = {edge(lk.a, lk.b): ospf_cost(lk) for lk in mesh.links}
    latency = {
        edge(lk.a, lk.b): lk.latency_ms if lk.latency_ms is not None else float(ospf_cost(lk))
        for lk in mesh.links
    }
    leaves = frozenset(h.name for h in mesh.hosts if not h.transit)
    dist, next_hops = _routes(names, cost, leaves)
    # Closeness: the least total cost to every other host; names break ties.
    central = sorted(names, key=lambda n: (sum(dist[n].values()), n))
    reflectors = tuple(central[:REFLECTORS])
    return Underlay(names, cost, latency, reflectors, dist, next_hops, leaves)


def after_cut(u: Underlay, cut: Edge) -> Underlay:
    """What OSPF converges to without link `cut` (BFD tells it within a second); the route
    reflectors stay where they are configured."""
    cost = {e: c for e, c in u.cost.items() if e != cut}
    dist, next_hops = _routes(u.hosts, cost, u.leaves)
    return Underlay(u.hosts, cost, u.latency, u.reflectors, dist, next_hops, u.leaves)


def _routes(
    names: tuple[str, ...], cost: Mapping[Edge, int], leaves: frozenset[str] = frozenset()
) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], frozenset[str]]]:
    """Every host's shortest cost to every host it can reach, and the neighbours that start a
    shortest path (OSPF's equal-cost next hops). A link is left at the cost its near end
    advertises: MAX_COST from a stub router (`leaves`)."""
    adj = adjacency(names, cost)

    def out(a: str, b: str) -> int:
        return MAX_COST if a in leaves else cost[edge(a, b)]

    dist = {n: _dijkstra(n, adj, out) for n in names}
    next_hops: dict[tuple[str, str], frozenset[str]] = {}
    for src in names:
        for dst, d in dist[src].items():
            if dst != src:
                next_hops[(src, dst)] = frozenset(
                    nb for nb in adj[src] if dst in dist[nb] and out(src, nb) + dist[nb][dst] == d
                )
    return dist, next_hops


def _dijkstra(
    src: str, adj: Mapping[str, list[str]], cost: Callable[[str, str], int]
) -> dict[str, int]:
    dist = {src: 0}
    heap = [(0, src)]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist[node]:
            continue
        for nb in adj[node]:
            nd = d + cost(node, nb)
            if nd < dist.get(nb, math.inf):
                dist[nb] = nd
                heapq.heappush(heap, (nd, nb))
    return dist
