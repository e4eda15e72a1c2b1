"""The judge of an evpn mesh (judge.judge hands it over): per host its link interfaces,
bridge, VXLAN device and FRR instance against the plan; per link its two ends' handshakes,
OSPF adjacency and BFD session. Pure, like judge.py, with the same kinds of finding."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from mesh_push.core import model
from mesh_push.host import state as observe
from mesh_push.modes import plan
from mesh_push.modes.evpn import underlay as evpn
from mesh_push.modes.judge import (
    REJECT_AFTER_TIME_S,
    HostVerdict,
    Judgement,
    conclude,
    judge_vxlan,
    start,
)

DAEMONS = ("watchfrr", "zebra", "bgpd", "ospfd", "bfdd")
ALL_ADDRESSES = "0.0.0.0/0"


def judge(
    p: plan.Plan,
    states: dict[str, observe.HostState],
    errors: dict[str, str] | None = None,
    scope: Collection[str] | None = None,
) -> Judgement:
    verdicts, inside = start(p, states, errors, scope)
    for name, v in verdicts.items():
        if v.state is not None:
            _judge_host(p, p.host(name), v.state, v, inside)
    return conclude(verdicts, _links(p, states, verdicts, inside), "link", [], None)


def _judge_host(
    p: plan.Plan, hp: plan.HostPlan, st: observe.HostState, v: HostVerdict, inside: set[str]
) -> None:
    mesh, e = p.mesh, hp.evpn
    assert e is not None
    vx = mesh.evpn_vxlan
    ends = [end for end in e.links if end.peer in inside]
    foreign = [
        name
        for name in (mesh.bridge, vx, *(end.name for end in e.links))
        if (link := st.links.get(name)) is not None
        and link.alias is not None
        and link.alias != mesh.mark
    ]
    for name in foreign:
        v.config(f"{name} exists and was not made by mesh {mesh.name}")
    if foreign:
        return
    for end in ends:
        _judge_link_end(mesh, end, st, v)
    if st.boot_unit is False:
        v.config("boot unit missing")

    br = st.links.get(mesh.bridge)
    if br is None:
        v.config(f"bridge {mesh.bridge} missing")
    else:
        if not br.up:
            v.config(f"bridge {mesh.bridge} down")
        if br.mtu != mesh.mtu.bridge:
            v.config(f"bridge MTU {br.mtu}, planned {mesh.mtu.bridge}")
        for want in (str(hp.bridge_address), f"{e.vtep}/32"):
            if want not in br.addresses:
                v.config(f"bridge lacks its address {want}")
        if br.stp_on:
            v.config("bridge has STP on (evpn mode has no loops to break)")
        if br.mac and br.mac != hp.bridge_mac:
            v.config(f"bridge address {br.mac}, planned {hp.bridge_mac}")
    link = st.links.get(vx)
    if link is None:
        v.config(f"vxlan {vx} missing")
    else:
        judge_vxlan(v, f"vxlan {vx}", link, mesh, mesh.evpn.vni, e.vtep)
    _judge_frr(p, hp, e, st, v, inside)


def _judge_link_end(
    mesh: model.Mesh, end: evpn.LinkEnd, st: observe.HostState, v: HostVerdict
) -> None:
    link = st.links.get(end.name)
    w = st.wg_ifs.get(end.name)
    if link is None or w is None:
        v.config(f"link interface {end.name} missing")
        return
    if not link.up:
        v.config(f"{end.name} down")
    if link.mtu != mesh.mtu.wireguard:
        v.config(f"{end.name} MTU {link.mtu}, planned {mesh.mtu.wireguard}")
    if str(end.address) not in link.addresses:
        v.config(f"{end.name} lacks its address {end.address}")
    if w.listen_port is not None and w.listen_port != end.port:
        v.config(f"{end.name} listens on {w.listen_port}, planned {end.port}")
    if end.public_key is None:
        return
    if set(w.allowed_ips) - {end.public_key}:
        v.config(f"{end.name} has a peer that is not planned")
    if end.public_key not in w.allowed_ips:
        v.config(f"{end.name}: peer {end.peer} not configured")
    elif w.allowed_ips[end.public_key] != ALL_ADDRESSES:
        v.config(f"{end.name}: peer {end.peer} allowed-ips {w.allowed_ips[end.public_key]}")


def _judge_frr(
    p: plan.Plan,
    hp: plan.HostPlan,
    e: evpn.EvpnHost,
    st: observe.HostState,
    v: HostVerdict,
    inside: set[str],
) -> None:
    frr = st.frr
    if frr is None:
        return  # not read (an older gather): nothing to say
    missing = [d for d in DAEMONS if d not in frr.daemons]
    if missing:
        v.config(f"FRR {p.mesh.frr_pathspace} not running ({', '.join(missing)} missing)")
        return
    for name, addr in e.neighbors:
        if name not in inside:
            continue
        state = frr.bgp.get(str(addr))
        if state is None:
            v.config(f"BGP session with {name} ({addr}) not configured")
        elif state != "Established":
            v.runtime(f"BGP session with {name} {state}")
    want = {str(evpn.vtep(p.mesh, p.host(n).host)) for n in inside if n != hp.name}
    have = frr.remote_vteps.get(p.mesh.evpn.vni)
    if have is None:
        v.runtime(f"EVPN has no VNI {p.mesh.evpn.vni} yet")
    elif lacking := sorted(want - have):
        v.runtime(f"EVPN lacks remote VTEPs {', '.join(lacking)}")


def _links(
    p: plan.Plan,
    states: dict[str, observe.HostState],
    verdicts: dict[str, HostVerdict],
    inside: set[str],
) -> list[dict[str, Any]]:
    """Each link seen from both ends: handshake, OSPF adjacency and BFD session."""
    out = []
    for lk in p.mesh.links:
        if lk.a not in inside and lk.b not in inside:
            continue
        ends: dict[str, dict[str, Any] | None] = {}
        problems: list[str] = []
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            st = states.get(here) if here in verdicts and verdicts[here].reachable else None
            hp = p.host(here)
            end = next((x for x in hp.evpn.links if x.peer == there), None) if hp.evpn else None
            if st is None or end is None:
                ends[here] = None
                continue
            link = st.links.get(end.name)
            age = st.link_handshake_age(end.name, end.public_key)
            frr = st.frr
            peer_vtep = str(evpn.vtep(p.mesh, p.host(there).host))
            ospf = frr.ospf.get(peer_vtep) if frr else None
            bfd = frr.bfd.get(str(end.peer_address)) if frr else None
            ends[here] = {
                "interface": end.name,
                "handshake_age_s": age,
                "up": bool(link and link.up),
                "mtu": link.mtu if link else None,
                "ospf": ospf,
                "bfd": bfd,
            }
            if age is None:
                problems.append(f"no handshake at {here}")
            elif age > REJECT_AFTER_TIME_S:
                problems.append(f"handshake at {here} {age:.0f} s old")
            if frr is not None and frr.daemons:
                if ospf != "Full":
                    problems.append(f"OSPF at {here} {ospf or 'no neighbour'}")
                if bfd != "up":
                    problems.append(f"BFD at {here} {bfd or 'no session'}")
        out.append({"hosts": [lk.a, lk.b], "vni": lk.vni, "ends": ends, "problems": problems})
    return out
