"""stp mode's picture: the spanning tree's wires thick, blocked wires dashed with a bar at the
blocking end, the root and backup root in bold; from `status`, each wire's ports as the hosts
have them. Pure (modes/picture.py draws)."""

from __future__ import annotations

from typing import Any

import graphviz

from mesh_push.core.model import Link
from mesh_push.modes import picture
from mesh_push.modes.base import Plan
from mesh_push.modes.judgement import Judgement
from mesh_push.modes.picture import Drawn
from mesh_push.modes.stp import tree as stp
from mesh_push.modes.stp.plan import StpPlan, own
from mesh_push.modes.topology import Edge, edge

STATES = {
    "healthy": "healthy",
    "stale": "stale or no handshake",
    "port": "STP port not as planned",
    "unreachable": "an end unreachable",
}


def graph(plan: Plan, j: Judgement | None, cut: Edge | None) -> graphviz.Graph:
    """The planned mesh (with `cut`, the tree 802.1D converges to without that wire), or, with
    the judgement, the mesh as `status` found it: each host and wire coloured by the verdict,
    the tree as the hosts' ports have it (as planned where an end could not be read)."""
    p = own(plan)
    if j is None:
        names = [h.name for h in p.mesh.hosts]
        shown = stp.after_cut(p.tree, names, cut) if cut else p.tree.expected
        links = [
            Drawn(
                lk,
                edge(lk.a, lk.b) in shown.forwarding_edges,
                frozenset(h for h in lk.hosts if (h, lk.other(h)) in shown.blocking),
                cut=edge(lk.a, lk.b) == cut,
            )
            for lk in p.mesh.links
        ]
        title = f"mesh {p.mesh.name}: plan"
        if cut:
            title += f", after cutting {cut[0]}–{cut[1]}"
    else:
        live = {tuple(w["hosts"]): w for w in j.wires}
        links = [_live(p, lk, live.get(lk.hosts)) for lk in p.mesh.links]
        title = f"mesh {p.mesh.name}: status, {'healthy' if j.healthy else 'UNHEALTHY'}"
    roles = {p.tree.expected.root: ("root", "3")}
    if p.tree.backup:
        roles[p.tree.backup] = ("backup root", "2")
    legend = [
        ("bold outline", "root (thickest), backup root"),
        ("thick line", "tree wire (forwarding)"),
        ("dashed line", "blocked wire; a bar marks the blocking end"),
        ("label", "latency, VNI"),
    ]
    if cut:
        legend.append(("dotted grey", "the cut wire"))
    return picture.graph(title, p, links, roles, legend, j, STATES, "wire")


def _live(p: StpPlan, lk: Link, w: dict[str, Any] | None) -> Drawn:
    expected = p.tree.expected
    planned = {h: (h, lk.other(h)) in expected.blocking for h in lk.hosts}
    if w is None:  # outside the judge's scope: as planned, state unknown
        return Drawn(lk, not any(planned.values()), _blocking(planned), state="unreachable")
    ends: dict[str, dict[str, Any] | None] = w["ends"]
    # An end's port as its host reports it; where unread or unknown, as planned.
    blocks = {
        h: planned[h] if not e or e["stp_state"] is None else e["stp_state"] != "forwarding"
        for h, e in ((h, ends.get(h)) for h in lk.hosts)
    }
    return Drawn(
        lk,
        not any(blocks.values()),
        _blocking(blocks),
        state=picture.link_state(w),
        problems=tuple(w["problems"]),
    )


def _blocking(ends: dict[str, bool]) -> frozenset[str]:
    return frozenset(h for h, blocks in ends.items() if blocks)
