"""What 802.1D converges to, given the bridges' priorities and MACs and the ports' costs: the
kernel's election, replayed. Pure."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from mesh_push.modes.topology import Edge, adjacency, edge


@dataclass(frozen=True)
class Outcome:
    """What 802.1D converges to: per host its root port; blocking ports as (host, wire)."""

    root: str
    root_port: dict[str, str | None]
    root_cost: dict[str, int]
    blocking: frozenset[tuple[str, str]]
    forwarding_edges: frozenset[Edge]


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
    adj = adjacency(nodes, edges)
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
