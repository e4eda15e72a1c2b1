"""evpn mode's metric families: each BGP session and the EVPN routes it brought, each link's
OSPF adjacency and BFD session, and the remote VTEPs EVPN installed (docs/monitoring.md).
Pure."""

from __future__ import annotations

from prometheus_client.core import Metric

from mesh_push.modes.base import Plan
from mesh_push.modes.evpn.judge import DAEMONS, frr_of
from mesh_push.modes.evpn.plan import own, vtep
from mesh_push.modes.families import bit, gauge
from mesh_push.modes.judgement import Judgement
from mesh_push.modes.topology import edge


def families(plan: Plan, j: Judgement) -> list[Metric]:
    p = own(plan)
    mesh = p.mesh.name
    running = gauge(
        "frr_running",
        "1 when every daemon of the mesh's FRR instance runs on the host",
        ["mesh", "host"],
    )
    bgp = gauge(
        "bgp_session_up",
        "1 when the host's BGP session with the neighbour (a route reflector, or a client of "
        "one) is Established",
        ["mesh", "host", "neighbor"],
    )
    routes = gauge(
        "bgp_evpn_routes",
        "EVPN routes the host received from the BGP neighbour",
        ["mesh", "host", "neighbor"],
    )
    vteps = gauge(
        "evpn_remote_vteps",
        "remote VTEPs EVPN installed for the mesh's segment on the host",
        ["mesh", "host"],
    )
    link_labels = ["mesh", "host", "peer", "link"]
    ospf = gauge(
        "ospf_adjacency_full",
        "1 when the OSPF adjacency over the link (its end on host) is Full",
        link_labels,
    )
    bfd = gauge("bfd_session_up", "1 when the BFD session over the link is up", link_labels)
    names = {edge(lk.a, lk.b): f"{lk.a}-{lk.b}" for lk in p.mesh.links}
    router_id = {h.name: str(vtep(p.mesh, h)) for h in p.mesh.hosts}
    for hp in (p.evpn_host(h.name) for h in p.mesh.hosts):
        v = j.hosts.get(hp.name)
        frr = frr_of(v.state) if v is not None and v.state is not None else None
        if frr is None:
            continue  # outside the judge's scope, unreachable, or not read
        labels = [mesh, hp.name]
        running.add_metric(labels, bit(all(d in frr.daemons for d in DAEMONS)))
        for name, addr in hp.neighbors:
            bgp.add_metric([*labels, name], bit(frr.bgp.get(str(addr)) == "Established"))
            if (count := frr.bgp_prefixes.get(str(addr))) is not None:
                routes.add_metric([*labels, name], float(count))
        vteps.add_metric(labels, float(len(frr.remote_vteps.get(p.mesh.evpn.vni, ()))))
        for end in hp.links:
            at = [*labels, end.peer, names[edge(hp.name, end.peer)]]
            ospf.add_metric(at, bit(frr.ospf.get(router_id[end.peer]) == "Full"))
            bfd.add_metric(at, bit(frr.bfd.get(str(end.peer_address)) == "up"))
    return [running, bgp, routes, vteps, ospf, bfd]
