"""The evpn mode's plan (docs/evpn.md): per link a WireGuard interface with its own port and
/31, OSPF costs from latency, the shortest underlay path of every pair, and the two route
reflectors. Pure: FRR computes the real routes; this says what they must come to."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from mesh_push.core.model import Host, Link, Mesh
from mesh_push.modes.stp.tree import DEFAULT_WEIGHT, Edge, edge

LINK_NET = IPv4Address("169.254.0.0")
# OSPF costs are whole numbers: tenths of a millisecond keep close latencies apart.
COST_PER_MS = 10
MAX_COST = 65535
KEEPALIVE_S = 25
REFLECTORS = 2


@dataclass(frozen=True)
class LinkEnd:
    """One end of a link: this host's WireGuard interface to `peer`."""

    name: str  # the interface: WG-VNI
    vni: int
    port: int  # this interface's listen port (both ends use the same)
    address: IPv4Interface  # this end's /31
    peer: str
    peer_address: IPv4Address  # the other end's address on the /31
    public_key: str | None  # the peer's
    endpoint: str | None  # only a static peer can be dialled
    keepalive: int | None  # set where this end has no static address
    cost: int
    latency_ms: float | None


@dataclass(frozen=True)
class EvpnHost:
    vtep: IPv4Address  # router id, BGP source, VXLAN local address
    links: tuple[LinkEnd, ...]
    reflector: bool
    neighbors: tuple[tuple[str, IPv4Address], ...]  # BGP sessions: (host, its VTEP)


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
    adj: dict[str, list[str]] = {n: [] for n in names}
    for a, b in cost:
        adj[a].append(b)
        adj[b].append(a)
    dist = {n: _dijkstra(n, adj, cost) for n in names}
    next_hops: dict[tuple[str, str], frozenset[str]] = {}
    for src in names:
        for dst, d in dist[src].items():
            if dst != src:
                next_hops[(src, dst)] = frozenset(
                    nb
                    for nb in adj[src]
                    if dst in dist[nb] and cost[edge(src, nb)] + dist[nb][dst] == d
                )
    # Closeness: the least total cost to every other host; names break ties.
    central = sorted(names, key=lambda n: (sum(dist[n].values()), n))
    return Underlay(names, cost, latency, tuple(central[:REFLECTORS]), dist, next_hops)


def _dijkstra(src: str, adj: Mapping[str, list[str]], cost: Mapping[Edge, int]) -> dict[str, int]:
    dist = {src: 0}
    heap = [(0, src)]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist[node]:
            continue
        for nb in adj[node]:
            nd = d + cost[edge(node, nb)]
            if nd < dist.get(nb, math.inf):
                dist[nb] = nd
                heapq.heappush(heap, (nd, nb))
    return dist


def vtep(mesh: Mesh, host: Host) -> IPv4Address:
    return mesh.wg_network.network_address + host.number


def host_plan(mesh: Mesh, u: Underlay, host: Host, public_keys: Mapping[str, str]) -> EvpnHost:
    by_name = {h.name: h for h in mesh.hosts}
    ends: list[LinkEnd] = []
    for lk in mesh.links_of(host.name):
        other = by_name[lk.other(host.name)]
        first, second = link_addresses(lk)
        mine, theirs = (first, second) if lk.a == host.name else (second, first)
        port = mesh.wg_port + lk.vni
        ends.append(
            LinkEnd(
                name=f"{mesh.wg_interface}-{lk.vni}",
                vni=lk.vni,
                port=port,
                address=IPv4Interface(f"{mine}/31"),
                peer=other.name,
                peer_address=theirs,
                public_key=public_keys.get(other.name),
                endpoint=_endpoint(other, port),
                keepalive=None if host.endpoint == "static" else KEEPALIVE_S,
                cost=u.cost[edge(lk.a, lk.b)],
                latency_ms=lk.latency_ms,
            )
        )
    reflector = host.name in u.reflectors
    peers = [h for h in mesh.hosts if h.name != host.name]
    if not reflector:
        peers = [h for h in peers if h.name in u.reflectors]
    return EvpnHost(
        vtep=vtep(mesh, host),
        links=tuple(sorted(ends, key=lambda e: e.vni)),
        reflector=reflector,
        neighbors=tuple((h.name, vtep(mesh, h)) for h in peers),
    )


def _endpoint(host: Host, port: int) -> str | None:
    if host.endpoint != "static" or host.address is None or isinstance(host.address, str):
        return None  # DNS names are refused in evpn mode (inventory._evpn_limits)
    if host.address.version == 6:
        return f"[{host.address}]:{port}"
    return f"{host.address}:{port}"
