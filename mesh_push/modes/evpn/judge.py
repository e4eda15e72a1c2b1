"""evpn mode's judge: the shared checks (modes/checks.py), then the bridge (STP off, the VTEP's
address), the VXLAN device and the FRR instance per host; per link its OSPF adjacency and BFD
session at both ends. Pure."""

from __future__ import annotations

from collections.abc import Collection
from ipaddress import IPv4Network
from typing import Any

from mesh_push.core import model
from mesh_push.core.model import Link
from mesh_push.host.state import HostState
from mesh_push.modes import checks, names
from mesh_push.modes.base import Plan
from mesh_push.modes.evpn.observe import FrrState
from mesh_push.modes.evpn.plan import EvpnHost, EvpnPlan, mesh_routes, own, vtep, vxlan_name
from mesh_push.modes.judgement import HostVerdict, Judgement, conclude, start

DAEMONS = ("watchfrr", "zebra", "bgpd", "ospfd", "bfdd")


def frr_of(st: HostState) -> FrrState | None:
    return st.mode_state if isinstance(st.mode_state, FrrState) else None


def interfaces(p: EvpnPlan, hp: EvpnHost) -> list[str]:
    return [p.mesh.bridge, vxlan_name(p.mesh), *(end.name for end in hp.links)]


def judge(
    plan: Plan,
    states: dict[str, HostState],
    errors: dict[str, str] | None = None,
    scope: Collection[str] | None = None,
) -> Judgement:
    p = own(plan)
    verdicts = start([hp.name for hp in p.hosts], states, errors, scope)
    inside = set(verdicts)
    block = names.hosts_block(p)  # the same on every host
    for name, v in verdicts.items():
        if v.state is not None:
            _judge_host(p, p.evpn_host(name), v.state, v, inside, block)

    def fields(
        lk: Link, here: str, there: str, st: HostState, problems: list[str]
    ) -> dict[str, Any]:
        end = next(x for x in p.evpn_host(here).links if x.peer == there)
        link = st.links.get(end.name)
        frr = frr_of(st)
        ospf = frr.ospf.get(str(vtep(p.mesh, p.host(there).host))) if frr else None
        bfd = frr.bfd.get(str(end.peer_address)) if frr else None
        if frr is not None and frr.daemons:
            if ospf != "Full":
                problems.append(f"OSPF at {here} {ospf or 'no neighbour'}")
            if bfd != "up":
                problems.append(f"BFD at {here} {bfd or 'no session'}")
        return {
            "interface": end.name,
            "up": bool(link and link.up),
            "mtu": link.mtu if link else None,
            "ospf": ospf,
            "bfd": bfd,
        }

    overall = _judge_announcements(p, states, verdicts)
    return conclude(verdicts, checks.links(p, states, verdicts, fields), "link", overall)


def _judge_announcements(
    p: EvpnPlan, states: dict[str, HostState], verdicts: dict[str, HostVerdict]
) -> list[str]:
    """What each router announces in OSPF, against what is its own: its VTEP's /32 and its
    links' /31s (and no external route at all: no host redistributes). zebra's filter keeps
    anything else out of the kernels (frr.conf.j2), but not another host's VTEP announced as
    a stub, which draws that host's VXLAN traffic (docs/security.md#evpn-routes): this is
    where that lie shows. Every host has the same database; the union of those read counts."""
    own: dict[str, set[IPv4Network]] = {}
    label: dict[IPv4Network, str] = {}
    by_router: dict[str, str] = {}
    for hp in p.hosts:
        e = p.evpn_host(hp.name)
        vtep_net = IPv4Network(f"{e.vtep}/32")
        nets = {vtep_net, *(end.address.network for end in e.links)}
        own[hp.name] = nets
        by_router[str(e.vtep)] = hp.name
        label[vtep_net] = f"{vtep_net} ({hp.name}'s VTEP)"
    mesh_nets = set(mesh_routes(p.mesh))
    stubs: dict[str, set[IPv4Network]] = {}
    external: dict[str, set[IPv4Network]] = {}
    for st in states.values():
        frr = frr_of(st)
        for seen, into in ((frr.announced, stubs), (frr.external, external)) if frr else ():
            for router, nets in seen.items():
                into.setdefault(router, set()).update(nets)
    lies: dict[str, set[IPv4Network]] = {}
    for router, nets in stubs.items():
        host = by_router.get(router)
        # A router that is no host's (a stale LSA of a removed host ages out within the
        # hour) is judged only for what belongs to the mesh.
        lies[router] = nets - own[host] if host else nets & mesh_nets
    for router, nets in external.items():
        lies[router] = lies.get(router, set()) | (nets if router in by_router else nets & mesh_nets)
    overall: list[str] = []
    for router, nets in sorted(lies.items()):
        if not nets:
            continue
        what = ", ".join(label.get(n, str(n)) for n in sorted(nets))
        host = by_router.get(router)
        text = f"announces in OSPF what is not its own: {what}"
        if host in verdicts:
            verdicts[host].runtime(text)
        else:
            overall.append(f"{host or f'OSPF router {router} (no host of the mesh)'} {text}")
    return overall


def _judge_host(
    p: EvpnPlan, hp: EvpnHost, st: HostState, v: HostVerdict, inside: set[str], block: str
) -> None:
    mesh = p.mesh
    if checks.foreign(mesh, interfaces(p, hp), st, v):
        return
    checks.wireguard(mesh, hp, st, v, inside)
    checks.boot(hp.host, st, v)
    checks.names(block, st, v)
    br = checks.bridge(mesh, hp, st, v, [*hp.bridge_addresses, f"{hp.vtep}/32"])
    if br is not None and br.stp_on:
        v.config("bridge has STP on (evpn mode has no loops to break)")
    vx = vxlan_name(mesh)
    link = st.links.get(vx)
    if link is None:
        v.config(f"vxlan {vx} missing")
    else:
        tx = (hp.host.tx_checksum, st.tx_checksum.get(vx))
        checks.vxlan(v, f"vxlan {vx}", link, mesh, mesh.evpn.vni, hp.vtep, tx=tx)
    _judge_vtep_routing(p, hp, st, v)
    _judge_frr(p, hp, st, v, inside)


def _judge_vtep_routing(p: EvpnPlan, hp: EvpnHost, st: HostState, v: HostVerdict) -> None:
    """The VTEPs' network unreachable but for OSPF's /32s, and VXLAN from this VTEP kept
    inside it (host.sh.j2 step "vtep routes"): as `ip -o` prints them."""
    frr = frr_of(st)
    if frr is None or frr.vtep_route is None:
        return  # not read
    vteps, proto, pref = p.mesh.wg_network, model.NOROUTE_PROTO, model.VTEP_RULE_PREF
    if frr.vtep_route != f"unreachable {vteps} proto {proto}":
        v.config(f"the VTEPs' network {vteps} is not unreachable (VXLAN without a route "
                 "would leave by the default route)")  # fmt: skip
    rules = {
        f"{pref}: from {hp.vtep} to {vteps} lookup main proto {proto}": f"only to {vteps}",
        f"{pref + 1}: from {hp.vtep} unreachable proto {proto}": "nowhere else",
    }
    for rule, what in rules.items():
        if rule not in frr.rules:
            v.config(f"ip rule missing: VXLAN from {hp.vtep} {what}")


def _judge_frr(p: EvpnPlan, hp: EvpnHost, st: HostState, v: HostVerdict, inside: set[str]) -> None:
    frr = frr_of(st)
    if frr is None:
        return  # not read: nothing to say
    missing = [d for d in DAEMONS if d not in frr.daemons]
    if missing:
        v.config(f"FRR {p.mesh.frr_pathspace} not running ({', '.join(missing)} missing)")
        return
    for name, addr in hp.neighbors:
        if name not in inside:
            continue
        state = frr.bgp.get(str(addr))
        if state is None:
            v.config(f"BGP session with {name} ({addr}) not configured")
        elif state != "Established":
            v.runtime(f"BGP session with {name} {state}")
    want = {str(vtep(p.mesh, p.host(n).host)) for n in inside if n != hp.name}
    have = frr.remote_vteps.get(p.mesh.evpn.vni)
    if have is None:
        v.runtime(f"EVPN has no VNI {p.mesh.evpn.vni} yet")
    elif lacking := sorted(want - have):
        v.runtime(f"EVPN lacks remote VTEPs {', '.join(lacking)}")
