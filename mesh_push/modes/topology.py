"""The mesh as a graph of hosts and links, as both modes plan over it. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from mesh_push.core.model import Link, Mesh

Edge = tuple[str, str]  # a link by its hosts, sorted
DEFAULT_WEIGHT = 100.0  # a link with neither latency_ms nor cost


def edge(a: str, b: str) -> Edge:
    return (a, b) if a <= b else (b, a)


def link_weight(link: Link) -> float:
    """A link's length for planning: its latency, else its cost, else DEFAULT_WEIGHT."""
    w = link.latency_ms if link.latency_ms is not None else link.cost
    return float(w) if w is not None else DEFAULT_WEIGHT


def weights_of(mesh: Mesh) -> dict[Edge, float]:
    return {edge(lk.a, lk.b): link_weight(lk) for lk in mesh.links}


def adjacency(nodes: Iterable[str], edges: Iterable[Edge]) -> dict[str, list[str]]:
    adj: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    return adj
