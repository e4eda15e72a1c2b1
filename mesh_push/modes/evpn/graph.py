"""evpn mode's picture: every link of the routed underlay with its latency, VNI and OSPF cost,
the route reflectors in bold; with `--cut`, that link dotted; from `status`, each link
coloured by its handshake, OSPF adjacency and BFD session. Pure (modes/picture.py draws)."""

from __future__ import annotations

import graphviz

from mesh_push.modes import picture
from mesh_push.modes.base import Plan
from mesh_push.modes.evpn.plan import own
from mesh_push.modes.judgement import Judgement
from mesh_push.modes.picture import Drawn
from mesh_push.modes.topology import Edge, edge

STATES = {
    "healthy": "healthy",
    "stale": "stale or no handshake",
    "port": "OSPF or BFD not up",
    "unreachable": "an end unreachable",
}


def graph(plan: Plan, j: Judgement | None, cut: Edge | None) -> graphviz.Graph:
    p = own(plan)
    live = {tuple(w["hosts"]): w for w in j.wires} if j is not None else {}
    links = []
    for lk in p.mesh.links:
        w = live.get(lk.hosts)
        links.append(
            Drawn(
                lk,
                True,
                cut=edge(lk.a, lk.b) == cut,
                state=None if j is None else picture.link_state(w),
                problems=tuple(w["problems"]) if w else (),
                extra=(f"cost {p.underlay.cost[edge(lk.a, lk.b)]}",),
            )
        )
    if j is None:
        title = f"mesh {p.mesh.name} (evpn): plan"
        if cut:
            title += f", after cutting {cut[0]}–{cut[1]}"
    else:
        title = f"mesh {p.mesh.name} (evpn): status, {'healthy' if j.healthy else 'UNHEALTHY'}"
    roles = {name: ("route reflector", "3") for name in p.underlay.reflectors}
    legend = [
        ("bold outline", "BGP route reflector"),
        ("line", "link, routed by OSPF"),
        ("label", "latency, VNI, OSPF cost"),
    ]
    if cut:
        legend.append(("dotted grey", "the cut link"))
    return picture.graph(title, p, links, roles, legend, j, STATES, "link")
