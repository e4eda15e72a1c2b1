"""stp mode's judge: the shared checks (modes/checks.py), then the bridge's STP settings, each
wire, the root every host sees, and each wire's STP state at both ends against the planned
tree. Pure."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from mesh_push.core.model import Link
from mesh_push.host.state import HostState
from mesh_push.modes import checks, names
from mesh_push.modes.base import Plan
from mesh_push.modes.judgement import HostVerdict, Judgement, conclude, start
from mesh_push.modes.stp.observe import StpSeen, normalise_bridge_id
from mesh_push.modes.stp.plan import StpHost, StpPlan, own


@dataclass
class StpJudgement(Judgement):
    # The root and every port's state as planned (None: an end could not be read).
    tree_matches_plan: bool | None = None


def seen(st: HostState) -> StpSeen:
    return st.mode_state if isinstance(st.mode_state, StpSeen) else StpSeen(None, "")


def interfaces(p: StpPlan, hp: StpHost) -> list[str]:
    return [p.mesh.wg_interface, p.mesh.bridge, *(w.name for w in hp.wires)]


def judge(
    plan: Plan,
    states: dict[str, HostState],
    errors: dict[str, str] | None = None,
    scope: Collection[str] | None = None,
) -> StpJudgement:
    """`states`: what could be read; `errors`: why a host could not be. `scope`: the hosts to
    judge (all by default); peers and wires towards hosts outside it are not judged, so a
    run on some hosts is not failed by the others."""
    p = own(plan)
    verdicts = start([hp.name for hp in p.hosts], states, errors, scope)
    inside = set(verdicts)
    roots: dict[str, str | None] = {}
    block = names.hosts_block(p)  # the same on every host
    for name, v in verdicts.items():
        if v.state is not None:
            roots[name] = _judge_host(p, p.stp_host(name), v.state, v, inside, block)

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
                verdicts[n].runtime(f"sees root {r}, the others {majority}")

    expected = p.tree.expected
    tree_ok = [True]
    # The ends whose port names its own bridge as the wire's designated bridge: it has heard
    # no better BPDU through the wire. One end of a live wire always hears the other's.
    deaf: set[tuple[str, str, str]] = set()

    def fields(
        lk: Link, here: str, there: str, st: HostState, problems: list[str]
    ) -> dict[str, Any]:
        wire = p.mesh.stp.wire_prefix + there
        link = st.links.get(wire)
        s = seen(st).stp
        port = s.ports.get(wire) if s else None
        planned = "blocking" if (here, there) in expected.blocking else "forwarding"
        actual = port.state if port else None
        if actual is not None and actual in ("forwarding", "blocking") and actual != planned:
            problems.append(f"{here} end is {actual}, planned {planned}")
            tree_ok[0] = False
        if actual in ("listening", "learning"):
            problems.append(f"{here} end still {actual}")
        # A port still holding an old root's BPDU (not yet aged out at max_age) can hand it
        # on again and move the tree after every bridge already named the new root: the
        # tree has settled only when every live port carries the root its bridge sees.
        held = held_root(p, port.designated_root) if port and actual != "disabled" else None
        if held and roots.get(here) and held != roots[here]:
            problems.append(f"{here} end still holds root {held}'s information")
        designated = normalise_bridge_id(port.designated_bridge) if port else ""
        if actual not in (None, "disabled") and host_of(p, designated) == here:
            deaf.add((lk.a, lk.b, here))
        return {
            "vxlan_up": bool(link and link.up),
            "stp_state": actual,
            "planned_stp_state": planned,
            "mtu": link.mtu if link else None,
        }

    def whole(lk: Link, _ends: dict[str, dict[str, Any] | None], problems: list[str]) -> None:
        # A dead wire shows fastest in STP: its far end stops hearing BPDUs and picks
        # another root, long before the 180 s of a stale handshake.
        ra, rb = roots.get(lk.a), roots.get(lk.b)
        if ra and rb and ra != rb:
            problems.append(f"ends disagree about the root ({lk.a}: {ra}, {lk.b}: {rb})")
        # A cut wire shows here first: each end's BPDUs age out (max_age) and both ends claim
        # the wire, well before its handshakes are 180 s old.
        elif all((lk.a, lk.b, h) in deaf for h in lk.hosts):
            problems.append("no BPDU crosses it: each end is the designated bridge (cut?)")

    wires = checks.links(p, states, verdicts, fields, whole)
    unknown = any(e is None for w in wires for e in w["ends"].values())
    actual_roots = {r for r in roots.values() if r}
    if actual_roots and actual_roots != {expected.root}:
        tree_ok[0] = False
    matches = None if tree_ok[0] and unknown else tree_ok[0]
    if matches is False:
        overall.append("the spanning tree differs from the plan")
    j = conclude(verdicts, wires, "wire", overall)
    return StpJudgement(j.healthy, j.hosts, j.wires, j.reasons, matches)


def _judge_host(
    p: StpPlan, hp: StpHost, st: HostState, v: HostVerdict, inside: set[str], block: str
) -> str | None:
    """Findings of one host; returns the root it sees (a host name where known)."""
    mesh = p.mesh
    if checks.foreign(mesh, interfaces(p, hp), st, v):
        return None
    checks.wireguard(mesh, hp, st, v, inside)
    checks.boot(hp.host, st, v)
    checks.names(block, st, v)
    s = seen(st)
    root: str | None = None
    br = None
    if s.stp is None or mesh.bridge not in st.links:
        v.config(f"bridge {mesh.bridge} missing")
    else:
        br = checks.bridge(mesh, hp, st, v, hp.bridge_addresses)
    if br is not None:
        if br.stp_on is False:
            v.config("bridge has STP off")
        t = mesh.stp
        planned = {
            "hello_time": t.hello * 100,
            "forward_delay": t.forward_delay * 100,
            "max_age": t.max_age * 100,
            "ageing_time": t.ageing * 100,
        }
        for timer, value in br.timers.items():
            if value != planned[timer]:
                v.config(f"bridge {timer} {value / 100:g} s, planned {planned[timer] / 100:g} s")
        if br.priority is not None and br.priority != hp.bridge_priority:
            v.config(f"bridge priority {br.priority}, planned {hp.bridge_priority}")
        root = root_seen(p, st)
    for wire in hp.wires:
        if wire.peer not in inside:
            continue
        link = st.links.get(wire.name)
        if link is None:
            v.config(f"wire {wire.name} missing")
            continue
        label = f"wire {wire.name}"
        tx = (hp.host.tx_checksum, st.tx_checksum.get(wire.name))
        plugged = checks.vxlan(v, label, link, mesh, wire.vni, wire.local, wire.remote, tx)
        if plugged and link.cost is not None and link.cost != wire.cost:
            v.config(f"wire {wire.name} cost {link.cost}, planned {wire.cost}")
    return root


def root_seen(p: StpPlan, st: HostState) -> str | None:
    """The root as a host sees it: a host of the plan by name, else its bridge id as the host
    reported it (None without a bridge)."""
    s = seen(st)
    if s.stp is None:
        return None
    return held_root(p, s.root_id or s.stp.designated_root) or ""


def held_root(p: Plan, designated_root: str) -> str | None:
    """The root a port's stored BPDU names: a host of the plan by name, else its id."""
    root_id = normalise_bridge_id(designated_root)
    return (host_of(p, root_id) or root_id) if root_id else None


def host_of(p: Plan, bridge_id: str) -> str | None:
    mac = bridge_id.partition(".")[2] if bridge_id else ""
    for hp in p.hosts:
        if hp.bridge_mac.replace(":", "") == mac:
            return hp.name
    return None
