"""The one judge: the plan and what the hosts have now → is the mesh healthy, and why not.

`status` shows its verdict; `up` asks it twice: before applying (a host whose state differs
from its plan is repaired even when its script has not changed) and after (verify). Pure.

Each finding is either `config`, something the host script sets and so repairs (a missing
wire, a changed MTU, a lost address), or `runtime`, something only time or the other hosts
can change (a handshake not made yet, a port still learning, a tree that differs).
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from mesh_push.core import model
from mesh_push.host import state as observe
from mesh_push.modes import plan

REJECT_AFTER_TIME_S = 180  # WireGuard: a session older than this is dead


class Kind(enum.Enum):
    CONFIG = "config"
    RUNTIME = "runtime"


@dataclass(frozen=True)
class Finding:
    kind: Kind
    text: str


@dataclass
class HostVerdict:
    name: str
    reachable: bool
    healthy: bool | None  # None: unknown (unreachable)
    findings: list[Finding] = field(default_factory=list)
    state: observe.HostState | None = None

    @property
    def reasons(self) -> list[str]:
        return [f.text for f in self.findings]

    @property
    def drift(self) -> list[str]:
        """What the host script would put right."""
        return [f.text for f in self.findings if f.kind is Kind.CONFIG]

    def config(self, text: str) -> None:
        self.findings.append(Finding(Kind.CONFIG, text))

    def runtime(self, text: str) -> None:
        self.findings.append(Finding(Kind.RUNTIME, text))


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
    errors: dict[str, str] | None = None,
    scope: Collection[str] | None = None,
) -> Judgement:
    """`states`: what could be read; `errors`: why a host could not be. `scope`: the hosts to
    judge (all by default); peers and wires towards hosts outside it are not judged, so a
    run on some hosts is not failed by the others."""
    if p.mesh.mode == "evpn":
        from mesh_push.modes.evpn import judge as evpn_judge  # it builds on this module's types

        return evpn_judge.judge(p, states, errors, scope)
    verdicts, inside = start(p, states, errors, scope)
    roots: dict[str, str | None] = {}
    for name, v in verdicts.items():
        if v.state is not None:
            roots[name] = _judge_host(p, p.host(name), v.state, v, inside)

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

    wires, tree_ok = _wires(p, states, verdicts, roots, inside)
    if tree_ok is False:
        overall.append("the spanning tree differs from the plan")
    return conclude(verdicts, wires, "wire", overall, tree_ok)


def start(
    p: plan.Plan,
    states: dict[str, observe.HostState],
    errors: dict[str, str] | None,
    scope: Collection[str] | None,
) -> tuple[dict[str, HostVerdict], set[str]]:
    """A verdict per host in scope: unreachable ones settled, the others healthy until a
    finding says otherwise (each with its state); and the names in scope."""
    names = [hp.name for hp in p.hosts if scope is None or hp.name in scope]
    verdicts: dict[str, HostVerdict] = {}
    for name in names:
        st = states.get(name)
        if st is None:
            why = (errors or {}).get(name) or "state unknown"
            gone = Finding(Kind.RUNTIME, f"unreachable: {why}")
            verdicts[name] = HostVerdict(name, False, None, [gone])
        else:
            verdicts[name] = HostVerdict(name, True, True, state=st)
    return verdicts, set(names)


def conclude(
    verdicts: dict[str, HostVerdict],
    wires: list[dict[str, Any]],
    what: str,
    overall: list[str],
    tree_ok: bool | None,
) -> Judgement:
    """A problem of a wire (`what`: "wire", "link") is a finding at both its ends."""
    for w in wires:
        for problem in w["problems"]:
            for end in w["hosts"]:
                if end in verdicts and verdicts[end].reachable:
                    verdicts[end].runtime(f"{what} {'–'.join(w['hosts'])}: {problem}")
    for v in verdicts.values():
        if v.reachable:
            v.healthy = not v.findings
    healthy = all(v.healthy for v in verdicts.values()) and not overall
    return Judgement(healthy, verdicts, wires, overall, tree_ok)


def _judge_host(
    p: plan.Plan, hp: plan.HostPlan, st: observe.HostState, v: HostVerdict, inside: set[str]
) -> str | None:
    """Findings of one host; returns the root it sees (a host name where known)."""
    mesh = p.mesh
    # An interface of a planned name that this mesh did not make: the host script refuses to
    # touch it (and so to go on), and what it holds says nothing about this mesh.
    foreign = [
        name
        for name in (mesh.wg_interface, mesh.bridge, *(w.name for w in hp.wires))
        if (link := st.links.get(name)) is not None
        and link.alias is not None
        and link.alias not in (mesh.mark, model.LEGACY_MARK)
    ]
    for name in foreign:
        v.config(f"{name} exists and was not made by mesh {mesh.name}")
    if foreign:
        return None
    wg = st.links.get(mesh.wg_interface)
    if wg is None:
        v.config(f"{mesh.wg_interface} missing")
    else:
        if not wg.up:
            v.config(f"{mesh.wg_interface} down")
        if wg.mtu != mesh.mtu.wireguard:
            v.config(f"{mesh.wg_interface} MTU {wg.mtu}, planned {mesh.mtu.wireguard}")
        if str(hp.wg_address) not in wg.addresses:
            v.config(f"{mesh.wg_interface} lacks its address {hp.wg_address}")
        if st.listen_port is not None and st.listen_port != mesh.wg_port:
            v.config(f"{mesh.wg_interface} listens on {st.listen_port}, planned {mesh.wg_port}")
        if hp.public_key and st.public_key and st.public_key != hp.public_key:
            v.config(f"{mesh.wg_interface} has another key than the planned one")
    for peer in hp.peers:
        if peer.public_key is None or peer.name not in inside:
            continue
        if peer.public_key not in st.allowed_ips:
            v.config(f"peer {peer.name} not configured")
            continue
        if st.allowed_ips[peer.public_key] != str(peer.allowed_ip):
            v.config(f"peer {peer.name} allowed-ips {st.allowed_ips[peer.public_key]}")
        keepalive = st.keepalives.get(peer.public_key)
        if keepalive is not None and keepalive != str(peer.keepalive or "off"):
            v.config(f"peer {peer.name} keepalive {keepalive}")
        _judge_psk(peer, st.psks.get(peer.public_key), v)
        age = st.handshake_age(peer.public_key)
        if age is None:
            v.runtime(f"no handshake with {peer.name}")
        elif age > REJECT_AFTER_TIME_S:
            v.runtime(f"handshake with {peer.name} is {age:.0f} s old")
    planned_keys = {pe.public_key for pe in hp.peers}
    if None not in planned_keys and any(key not in planned_keys for key in st.allowed_ips):
        v.config(f"{mesh.wg_interface} has a peer that is not planned")
    if st.boot_unit is False:
        v.config("boot unit missing")

    br = st.links.get(mesh.bridge)
    root: str | None = None
    if br is None or st.stp is None:
        v.config(f"bridge {mesh.bridge} missing")
    else:
        if not br.up:
            v.config(f"bridge {mesh.bridge} down")
        if br.mtu != mesh.mtu.bridge:
            v.config(f"bridge MTU {br.mtu}, planned {mesh.mtu.bridge}")
        if str(hp.bridge_address) not in br.addresses:
            v.config(f"bridge lacks its address {hp.bridge_address}")
        if br.stp_on is False:
            v.config("bridge has STP off")
        s = mesh.stp
        planned = {
            "hello_time": s.hello * 100,
            "forward_delay": s.forward_delay * 100,
            "max_age": s.max_age * 100,
            "ageing_time": s.ageing * 100,
        }
        for timer, value in br.timers.items():
            if value != planned[timer]:
                v.config(f"bridge {timer} {value / 100:g} s, planned {planned[timer] / 100:g} s")
        if br.priority is not None and br.priority != hp.bridge_priority:
            v.config(f"bridge priority {br.priority}, planned {hp.bridge_priority}")
        if br.mac and br.mac != hp.bridge_mac:
            v.config(f"bridge address {br.mac}, planned {hp.bridge_mac}")
        root = root_seen(p, st)
    for wire in hp.wires:
        if wire.name not in inside:
            continue
        link = st.links.get(wire.name)
        if link is None:
            v.config(f"wire {wire.name} missing")
            continue
        plugged = judge_vxlan(v, f"wire {wire.name}", link, mesh, wire.vni, wire.local, wire.remote)
        if plugged and link.cost is not None and link.cost != wire.cost:
            v.config(f"wire {wire.name} cost {link.cost}, planned {wire.cost}")
    return root


def judge_vxlan(
    v: HostVerdict,
    label: str,
    link: observe.Link,
    mesh: model.Mesh,
    vni: int,
    local: object,
    remote: object | None = None,
) -> bool:
    """A VXLAN device against its plan: up, VNI, ends, UDP port, MTU, and a port of the
    mesh's bridge (returned)."""
    if not link.up:
        v.config(f"{label} down")
    if link.vni != vni:
        v.config(f"{label} has VNI {link.vni}, planned {vni}")
    if link.local is not None and link.local != str(local):
        v.config(f"{label} leaves from {link.local}, planned {local}")
    if remote is not None and link.remote is not None and link.remote != str(remote):
        v.config(f"{label} goes to {link.remote}, planned {remote}")
    if link.port is not None and link.port != mesh.vxlan_port:
        v.config(f"{label} on UDP {link.port}, planned {mesh.vxlan_port}")
    if link.mtu != mesh.mtu.bridge:
        v.config(f"{label} MTU {link.mtu}, planned {mesh.mtu.bridge}")
    if link.master != mesh.bridge:
        v.config(f"{label} not plugged into {mesh.bridge}")
        return False
    return True


def _judge_psk(peer: plan.Peer, have: str | None, v: HostVerdict) -> None:
    """`have`: the fingerprint of the pre-shared key `wg` uses with `peer`, "none", or None
    (not read). The key is never known here, only whether it is the planned one."""
    if have is None:
        return
    if peer.psk and have == "none":
        v.config(f"peer {peer.name} has no pre-shared key")
    elif peer.psk and peer.psk_fp and have != peer.psk_fp:
        v.config(f"peer {peer.name} has another pre-shared key than the planned one")
    elif not peer.psk and have != "none":
        v.config(f"peer {peer.name} has a pre-shared key, none planned")


def root_seen(p: plan.Plan, st: observe.HostState) -> str | None:
    """The root as a host sees it: a host of the plan by name, else its bridge id as the host
    reported it (None without a bridge)."""
    if st.stp is None:
        return None
    root_id = st.root_id or observe.normalise_bridge_id(st.stp.designated_root)
    return _host_of(p, root_id) or root_id


def _host_of(p: plan.Plan, bridge_id: str) -> str | None:
    mac = bridge_id.partition(".")[2] if bridge_id else ""
    for hp in p.hosts:
        if hp.bridge_mac.replace(":", "") == mac:
            return hp.name
    return None


def _wires(
    p: plan.Plan,
    states: dict[str, observe.HostState],
    verdicts: dict[str, HostVerdict],
    roots: dict[str, str | None],
    inside: set[str],
) -> tuple[list[dict[str, Any]], bool | None]:
    expected = p.tree.expected
    tree_ok: bool | None = True
    unknown = False  # an end we could not read: the tree can only be said to differ
    out = []
    for lk in p.mesh.links:
        if lk.a not in inside and lk.b not in inside:
            continue
        ends: dict[str, dict[str, Any] | None] = {}
        problems = []
        psks: dict[str, str] = {}  # each end's pre-shared key, as a fingerprint or "none"
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            st = states.get(here) if here in verdicts and verdicts[here].reachable else None
            if st is None:
                ends[here] = None
                unknown = True
                continue
            key = p.host(there).public_key
            link = st.links.get(there)
            port = st.stp.ports.get(there) if st.stp else None
            planned = "blocking" if (here, there) in expected.blocking else "forwarding"
            actual = port.state if port else None
            if key and (psk := st.psks.get(key)) is not None:
                psks[here] = psk
            ends[here] = {
                "handshake_age_s": st.handshake_age(key) if key else None,
                "vxlan_up": bool(link and link.up),
                "stp_state": actual,
                "planned_stp_state": planned,
                "mtu": link.mtu if link else None,
                "preshared_key": psks[here] != "none" if here in psks else None,
            }
            if actual is not None and actual in ("forwarding", "blocking") and actual != planned:
                problems.append(f"{here} end is {actual}, planned {planned}")
                tree_ok = False
            if actual in ("listening", "learning"):
                problems.append(f"{here} end still {actual}")
        # Two ends with different pre-shared keys never complete a handshake: said at once,
        # not 180 s later when the last session is dead.
        if len(psks) == 2 and psks[lk.a] != psks[lk.b]:
            if "none" in psks.values():
                only = lk.a if psks[lk.b] == "none" else lk.b
                problems.append(f"pre-shared key at {only} only: no handshake can succeed")
            else:
                problems.append("the ends have different pre-shared keys: no handshake can succeed")
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
    actual_roots = {r for r in roots.values() if r}
    if actual_roots and actual_roots != {expected.root}:
        tree_ok = False
    return out, (None if tree_ok and unknown else tree_ok)
