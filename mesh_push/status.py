"""`mesh-push status`: gather every host at once, judge against the plan, say why."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from . import keys, observe, plan, push
from .model import Mesh

REJECT_AFTER_TIME_S = 180  # WireGuard: a session older than this is dead


@dataclass
class HostVerdict:
    name: str
    reachable: bool
    healthy: bool | None  # None: unknown (unreachable)
    reasons: list[str] = field(default_factory=list)
    state: observe.HostState | None = None


@dataclass
class Judgement:
    healthy: bool
    hosts: dict[str, HostVerdict]
    wires: list[dict[str, Any]]
    reasons: list[str]
    tree_matches_plan: bool | None


def judge(
    p: plan.Plan,
    states: dict[str, observe.HostState],
    reachable: set[str],
    errors: dict[str, str] | None = None,
) -> Judgement:
    """`errors`: why a host could not be read, shown as its reason."""
    mesh = p.mesh
    mac_to_host = {hp.bridge_mac.replace(":", ""): hp.name for hp in p.hosts}

    def host_of(bridge_id: str) -> str | None:
        return mac_to_host.get(bridge_id.partition(".")[2]) if bridge_id else None

    verdicts: dict[str, HostVerdict] = {}
    roots: dict[str, str | None] = {}
    for hp in p.hosts:
        name = hp.name
        st = states.get(name)
        if name not in reachable or st is None:
            why = (errors or {}).get(name) or "state unknown"
            verdicts[name] = HostVerdict(name, False, None, [f"unreachable: {why}"])
            continue
        v = HostVerdict(name, True, True, state=st)
        verdicts[name] = v
        wg = st.links.get(mesh.wg_interface)
        if wg is None:
            v.reasons.append(f"{mesh.wg_interface} missing")
        elif wg.mtu < mesh.mtu.wireguard:
            v.reasons.append(f"{mesh.wg_interface} MTU {wg.mtu} < {mesh.mtu.wireguard}")
        for peer in hp.peers:
            if peer.public_key is None:
                continue
            if peer.public_key not in st.allowed_ips:
                v.reasons.append(f"peer {peer.name} not configured")
                continue
            age = st.handshake_age(peer.public_key)
            if age is None:
                v.reasons.append(f"no handshake with {peer.name}")
            elif age > REJECT_AFTER_TIME_S:
                v.reasons.append(f"handshake with {peer.name} is {age:.0f} s old")
        br = st.links.get(mesh.bridge)
        if br is None or st.stp is None:
            v.reasons.append(f"bridge {mesh.bridge} missing")
            roots[name] = None
        else:
            if br.mtu < mesh.mtu.bridge:
                v.reasons.append(f"bridge MTU {br.mtu} < {mesh.mtu.bridge}")
            root_id = st.root_id or observe.normalise_bridge_id(st.stp.designated_root)
            roots[name] = host_of(root_id) or root_id
        for wire in hp.wires:
            link = st.links.get(wire.name)
            if link is None:
                v.reasons.append(f"wire {wire.name} missing")
            elif not link.up:
                v.reasons.append(f"wire {wire.name} down")
            elif link.vni != wire.vni:
                v.reasons.append(f"wire {wire.name} has VNI {link.vni}, planned {wire.vni}")
            elif link.mtu < mesh.mtu.bridge:
                v.reasons.append(f"wire {wire.name} MTU {link.mtu} < {mesh.mtu.bridge}")
            elif link.master != mesh.bridge:
                v.reasons.append(f"wire {wire.name} not plugged into {mesh.bridge}")

    overall: list[str] = []
    seen_roots = {r for r in roots.values() if r is not None}
    if len(seen_roots) > 1:
        overall.append(
            "hosts disagree about the root: "
            + ", ".join(f"{n} sees {r}" for n, r in sorted(roots.items()) if r)
        )
        majority = max(seen_roots, key=lambda r: sum(1 for x in roots.values() if x == r))
        for n, r in roots.items():
            if r is not None and r != majority:
                verdicts[n].reasons.append(f"sees root {r}, the others {majority}")

    wires, tree_ok = _wires(p, states, verdicts, roots)
    for w in wires:
        for problem in w["problems"]:
            for end in w["hosts"]:
                if verdicts[end].reachable:
                    verdicts[end].reasons.append(f"wire {'–'.join(w['hosts'])}: {problem}")
    if tree_ok is False:
        overall.append("the spanning tree differs from the plan")
    for v in verdicts.values():
        if v.reachable:
            v.healthy = not v.reasons
    healthy = all(v.healthy for v in verdicts.values()) and not overall
    return Judgement(healthy, verdicts, wires, overall, tree_ok)


def _wires(
    p: plan.Plan,
    states: dict[str, observe.HostState],
    verdicts: dict[str, HostVerdict],
    roots: dict[str, str | None],
) -> tuple[list[dict[str, Any]], bool | None]:
    expected = p.tree.expected
    tree_ok: bool | None = True
    unknown = False  # an end we could not read: the tree can only be said to differ
    out = []
    for lk in p.mesh.links:
        ends: dict[str, dict[str, Any] | None] = {}
        problems = []
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            st = states.get(here) if verdicts[here].reachable else None
            if st is None:
                ends[here] = None
                unknown = True
                continue
            key = p.host(there).public_key
            link = st.links.get(there)
            port = st.stp.ports.get(there) if st.stp else None
            age = st.handshake_age(key) if key else None
            planned = "blocking" if (here, there) in expected.blocking else "forwarding"
            actual = port.state if port else None
            ends[here] = {
                "handshake_age_s": age,
                "vxlan_up": bool(link and link.up),
                "stp_state": actual,
                "planned_stp_state": planned,
                "mtu": link.mtu if link else None,
            }
            if actual is not None and actual in ("forwarding", "blocking") and actual != planned:
                problems.append(f"{here} end is {actual}, planned {planned}")
                tree_ok = False
            if actual in ("listening", "learning"):
                problems.append(f"{here} end still {actual}")
        # A dead wire shows fastest in STP: its far end stops hearing BPDUs and picks
        # another root, long before the 180 s of a stale handshake.
        ra, rb = roots.get(lk.a), roots.get(lk.b)
        if ra and rb and ra != rb:
            problems.append(f"ends disagree about the root ({lk.a}: {ra}, {lk.b}: {rb})")
        for here in (lk.a, lk.b):
            end = ends.get(here)
            if end is not None and end["handshake_age_s"] is None:
                problems.append(f"no handshake at {here}")
            elif end is not None and end["handshake_age_s"] > REJECT_AFTER_TIME_S:
                problems.append(f"handshake at {here} {end['handshake_age_s']:.0f} s old")
        out.append({"hosts": [lk.a, lk.b], "vni": lk.vni, "ends": ends, "problems": problems})
    planned_root = expected.root
    actual_roots = {r for r in roots.values() if r}
    if actual_roots and actual_roots != {planned_root}:
        tree_ok = False
    return out, (None if tree_ok and unknown else tree_ok)


def collect(
    mesh: Mesh, accept_new: bool, become_password: str | None = None
) -> tuple[plan.Plan, dict[str, observe.HostState], dict[str, str]]:
    """One SSH round trip per host after connecting, all hosts at once. Returns the plan,
    the states read and, for each host that could not be read, why."""
    command = observe.gather_command(mesh.wg_interface, mesh.bridge)
    session = push.connect_all(
        mesh, command, accept_new, lambda _n, _m: None, become_password=become_password
    )
    session.close()
    states = {n: observe.parse(out, mesh.bridge) for n, out in session.outputs.items()}
    p = plan.build(mesh, keys.public_keys(mesh))
    errors = {n: r.message for n, r in session.reports.items() if n not in states}
    return p, states, errors


def run(
    mesh: Mesh,
    as_json: bool,
    accept_new: bool,
    watch: float | None,
    become_password: str | None = None,
) -> int:
    from . import report

    while True:
        p, states, errors = collect(mesh, accept_new, become_password)
        j = judge(p, states, set(states), errors)
        if as_json:
            report.print_json(report.status_json(p, j))
        else:
            report.show_status(p, j, clear=watch is not None)
        if watch is None:
            return 0 if j.healthy else 1
        time.sleep(watch)
