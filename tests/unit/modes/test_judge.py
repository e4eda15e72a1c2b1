"""The one judge, as data: each case breaks one thing in a copy of the real captured states
(tests/data/observe) and says what the verdict must be: healthy or not, which hosts, the finding
and its kind (config: the host script repairs it; runtime: only time or the other hosts can).
Then that `status` and both of `up`'s looks (before applying, and verify) ask this judge."""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import pytest

from mesh_push import cli, inventory, modes
from mesh_push.core.model import Mesh
from mesh_push.engine import changes, connect, gather, verify
from mesh_push.engine import keys as mesh_keys
from mesh_push.engine.outcome import HostReport, Outcome
from mesh_push.engine.session import Access, Session, quiet
from mesh_push.host.boot import Seen
from mesh_push.host.facts import Facts, Gathered
from mesh_push.host.state import HostState, WgIf
from mesh_push.modes.base import Plan
from mesh_push.modes.judgement import REJECT_AFTER_TIME_S, Judgement, Kind
from mesh_push.modes.stp.judge import StpJudgement
from mesh_push.modes.stp.observe import StpBridge, StpSeen
from mesh_push.modes.stp.plan import StpPlan, own
from tests.kit import OBSERVED, ROOT, plan, state

HOSTS = ["bob", "rho", "vorke", "epsilon", "pi0"]
CONFIG, RUNTIME = Kind.CONFIG, Kind.RUNTIME
LAB = ROOT / "inventory/lab.yaml"
States = dict[str, HostState]


@functools.cache
def lab_mesh() -> Mesh:
    # The captures (tests/data/observe) were made before the lab's bridges had IPv6.
    return dataclasses.replace(inventory.load(LAB), bridge_network6=None)


@functools.cache
def captured() -> States:
    return {h: state((OBSERVED / f"{h}.txt").read_text(), lab_mesh()) for h in HOSTS}


def keys() -> dict[str, str]:
    return {h: wg0(st).public_key for h, st in captured().items()}


@functools.cache
def lab_plan() -> StpPlan:
    return own(plan(lab_mesh(), keys()))


def states() -> States:
    """A fresh deep copy of the healthy captured mesh, for one case to break."""
    return copy.deepcopy(captured())


def wg0(st: HostState) -> WgIf:
    """The host's one WireGuard interface (stp mode), as read."""
    return st.wg[lab_mesh().wg_interface]


def stp_of(st: HostState) -> StpBridge:
    """The host's bridge as its STP reports it (stp mode's part of the state)."""
    seen = st.mode_state
    assert isinstance(seen, StpSeen) and seen.stp is not None
    return seen.stp


def judge(
    p: Plan,
    states: States,
    errors: dict[str, str] | None = None,
    scope: Collection[str] | None = None,
) -> StpJudgement:
    """The one judge, as the engine asks it: through the mesh's mode."""
    j = modes.of(p.mesh).judge(p, states, errors, scope)
    assert isinstance(j, StpJudgement)
    return j


# What to break. Each takes the states (and may remove a host's state).


def link(host: str, name: str, **changed: Any) -> Callable[[States], None]:
    def mutate(s: States) -> None:
        for attr, value in changed.items():
            assert hasattr(s[host].links[name], attr)
            setattr(s[host].links[name], attr, value)

    return mutate


def port(host: str, name: str, state: str) -> Callable[[States], None]:
    def mutate(s: States) -> None:
        stp_of(s[host]).ports[name].state = state

    return mutate


def holds_root(host: str, name: str, root: str) -> Callable[[States], None]:
    def mutate(s: States) -> None:
        mac = lab_plan().host(root).bridge_mac.replace(":", "")
        stp_of(s[host]).ports[name].designated_root = f"8000.{mac}"

    return mutate


def deaf(host: str, name: str) -> Callable[[States], None]:
    """`host`'s port `name` names its own bridge as the designated one: it hears no BPDU."""

    def mutate(s: States) -> None:
        mac = lab_plan().host(host).bridge_mac.replace(":", "")
        stp_of(s[host]).ports[name].designated_bridge = f"8000.{mac}"

    return mutate


def both(*fns: Callable[[States], None]) -> Callable[[States], None]:
    def mutate(s: States) -> None:
        for fn in fns:
            fn(s)

    return mutate


def handshake(host: str, peer: str, age: int | None) -> Callable[[States], None]:
    """bob's last handshake with `peer` `age` seconds ago (None: never)."""

    def mutate(s: States) -> None:
        st = s[host]
        wg0(st).handshakes[keys()[peer]] = 0 if age is None else st.now - age

    return mutate


def peer_removed(host: str, peer: str) -> Callable[[States], None]:
    def mutate(s: States) -> None:
        del wg0(s[host]).allowed_ips[keys()[peer]]

    return mutate


def wire_removed(host: str, wire: str) -> Callable[[States], None]:
    def mutate(s: States) -> None:
        del s[host].links[wire]
        del stp_of(s[host]).ports[wire]  # a deleted interface leaves its bridge too

    return mutate


def boot_unit_missing(s: States) -> None:
    s["bob"].boot = Seen("systemd", (), True)


def unreachable(s: States) -> None:
    del s["pi0"]


@dataclass(frozen=True)
class Case:
    mutate: Callable[[States], None] | None
    unhealthy: set[str] = field(default_factory=set)  # hosts whose verdict is not healthy
    host: str = "bob"  # the host that must carry the finding
    text: str = ""  # a fragment of that finding
    kind: Kind = CONFIG
    tree_matches_plan: bool | None = True
    errors: dict[str, str] | None = None


CASES = {
    "healthy": Case(None),
    # The tree: vorke's ports to bob (planned blocking) and epsilon (forwarding) swapped.
    "tree differs from plan": Case(
        both(port("vorke", "bob", "forwarding"), port("vorke", "epsilon", "blocking")),
        {"vorke", "bob", "epsilon"},
        "vorke",
        "wire vorke–bob: vorke end is forwarding, planned blocking",
        RUNTIME,
        tree_matches_plan=False,
    ),
    "port still learning": Case(
        port("rho", "bob", "learning"),
        {"rho", "bob"},
        "rho",
        "wire bob–rho: rho end still learning",
        RUNTIME,
    ),
    # Every bridge names the same root, but a port still holds an older root's BPDU, which
    # can move the tree again until it ages out: not settled yet.
    "port holds an old root": Case(
        holds_root("rho", "bob", "pi0"),
        {"rho", "bob"},
        "rho",
        "wire bob–rho: rho end still holds root pi0's information",
        RUNTIME,
    ),
    # A cut wire: both ends' BPDUs aged out, each end claims it (one always hears the other).
    "wire cut": Case(
        both(deaf("rho", "bob"), deaf("bob", "rho")),
        {"rho", "bob"},
        "rho",
        "wire bob–rho: no BPDU crosses it",
        RUNTIME,
    ),
    "one end designated": Case(deaf("bob", "rho")),
    "wg0 down": Case(link("bob", "wg0", up=False), {"bob"}, text="wg0 down"),
    "bridge down": Case(link("bob", "internet", up=False), {"bob"}, text="bridge internet down"),
    "wire down": Case(link("bob", "rho", up=False), {"bob"}, text="wire rho down"),
    "peer missing": Case(peer_removed("bob", "rho"), {"bob"}, text="peer rho not configured"),
    # A stale or absent handshake is the wire's problem too, so both its ends are unhealthy.
    "handshake stale": Case(
        handshake("bob", "rho", 400),
        {"bob", "rho"},
        text="handshake with rho is 400 s old",
        kind=RUNTIME,
    ),
    "handshake just fresh": Case(handshake("bob", "rho", REJECT_AFTER_TIME_S)),
    "handshake never": Case(
        handshake("bob", "rho", None), {"bob", "rho"}, text="no handshake with rho", kind=RUNTIME
    ),
    "wg0 MTU": Case(link("bob", "wg0", mtu=1420), {"bob"}, text="wg0 MTU 1420, planned 1550"),
    "bridge MTU": Case(
        link("bob", "internet", mtu=1400), {"bob"}, text="bridge MTU 1400, planned 1500"
    ),
    "wire MTU": Case(link("bob", "rho", mtu=1400), {"bob"}, text="wire rho MTU 1400, planned 1500"),
    "port cost": Case(link("bob", "rho", cost=77), {"bob"}, text="wire rho cost 77, planned 12"),
    "wire missing": Case(wire_removed("bob", "rho"), {"bob"}, text="wire rho missing"),
    "wire detached": Case(
        link("bob", "rho", master=None), {"bob"}, text="wire rho not plugged into internet"
    ),
    "wire VNI": Case(link("bob", "rho", vni=66), {"bob"}, text="wire rho has VNI 66, planned 6"),
    "bridge address removed": Case(
        link("bob", "internet", addresses=[]),
        {"bob"},
        text="bridge lacks its address 10.99.99.1/24",
    ),
    "wg0 address removed": Case(
        link("bob", "wg0", addresses=[]), {"bob"}, text="wg0 lacks its address 10.88.88.1/24"
    ),
    "bridge priority": Case(
        link("bob", "internet", priority=32768),
        {"bob"},
        text="bridge priority 32768, planned 4096",
    ),
    "STP off": Case(link("bob", "internet", stp_on=False), {"bob"}, text="bridge has STP off"),
    "boot unit missing": Case(boot_unit_missing, {"bob"}, text="boot unit missing (systemd)"),
    # The captures carry the mark of before meshes had names (`mesh-push`): still this mesh's
    # ("healthy" above); its own mark is too. One it did not make is never judged as its own.
    "marked by this mesh": Case(link("bob", "wg0", alias="mesh-push:lab")),
    "wg0 not this mesh's": Case(
        link("bob", "wg0", alias=""), {"bob"}, text="wg0 exists and was not made by mesh lab"
    ),
    "wire of another mesh": Case(
        link("bob", "rho", alias="mesh-push:other"),
        {"bob"},
        text="rho exists and was not made by mesh lab",
    ),
    # The tree cannot be judged without pi0: it is unknown, not wrong.
    "host unreachable": Case(
        unreachable,
        {"pi0"},
        "pi0",
        "unreachable: ssh: connection refused",
        RUNTIME,
        tree_matches_plan=None,
        errors={"pi0": "ssh: connection refused"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_judge(name: str) -> None:
    case = CASES[name]
    s = states()
    if case.mutate is not None:
        case.mutate(s)
    j = judge(lab_plan(), s, case.errors)

    everything = (j.reasons, {h: v.reasons for h, v in j.hosts.items()})
    assert j.healthy is not bool(case.unhealthy), everything
    assert {h for h, v in j.hosts.items() if v.healthy is not True} == case.unhealthy, everything
    assert j.tree_matches_plan is case.tree_matches_plan, everything
    if not case.text:
        assert not any(v.findings for v in j.hosts.values()) and not j.reasons, everything
        return
    verdict = j.hosts[case.host]
    found = [f for f in verdict.findings if case.text in f.text]
    assert found, (case.text, verdict.reasons)
    assert {f.kind for f in found} == {case.kind}, found
    # What `up` repairs before applying is exactly the config findings.
    assert verdict.drift == [f.text for f in verdict.findings if f.kind is CONFIG]
    if case.kind is RUNTIME:
        assert not verdict.drift, verdict.findings


def test_unreachable_host_verdict() -> None:
    s = states()
    unreachable(s)
    j = judge(lab_plan(), s, {"pi0": "ssh: connection refused"})
    pi0 = j.hosts["pi0"]
    assert (pi0.reachable, pi0.healthy, pi0.state) == (False, None, None)
    assert any("ssh: connection refused" in r for r in pi0.reasons)
    # rho's peer and wire towards pi0 are not held against rho: its end is fine.
    assert j.hosts["rho"].healthy
    assert not judge(lab_plan(), s).hosts["pi0"].reachable  # no message: still a verdict


def test_tree_differs_is_said_for_the_whole_mesh() -> None:
    s = states()
    port("vorke", "bob", "forwarding")(s)
    port("vorke", "epsilon", "blocking")(s)
    j = judge(lab_plan(), s)
    assert "the spanning tree differs from the plan" in j.reasons
    wire = next(w for w in j.wires if set(w["hosts"]) == {"vorke", "bob"})
    assert wire["ends"]["vorke"]["stp_state"] == "forwarding"
    assert wire["ends"]["vorke"]["planned_stp_state"] == "blocking"


def test_scope_leaves_out_what_lies_outside() -> None:
    """A run on every host but pi0, with pi0 not read: rho's peer and wire towards pi0 are not
    judged, so the run is healthy; without the scope the same states are not."""
    s = states()
    unreachable(s)
    scope = [h for h in HOSTS if h != "pi0"]
    scoped = judge(lab_plan(), s, scope=scope)
    assert scoped.healthy, (scoped.reasons, {h: v.reasons for h, v in scoped.hosts.items()})
    assert set(scoped.hosts) == set(scope) and scoped.tree_matches_plan is None
    unscoped = judge(lab_plan(), s)
    assert not unscoped.healthy and unscoped.hosts["pi0"].healthy is None


def test_scope_still_judges_what_lies_inside() -> None:
    s = states()
    peer_removed("rho", "bob")(s)
    unreachable(s)
    j = judge(lab_plan(), s, scope=[h for h in HOSTS if h != "pi0"])
    assert not j.healthy and j.hosts["rho"].drift == ["peer bob not configured"]


# One judge: `up` (before applying, and its verify) and `status` all call judge.judge.


class Recorder:
    """Every call of the mesh's mode's judge (the one Mode.judge), with its hosts and scope."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[tuple[str, ...], list[str] | None]] = []
        mode = modes.of(lab_mesh())
        real = mode.judge

        def recording(
            p: Plan,
            states: States,
            errors: dict[str, str] | None = None,
            scope: Any = None,
        ) -> Judgement:
            self.calls.append((tuple(sorted(states)), None if scope is None else list(scope)))
            return real(p, states, errors, scope)

        monkeypatch.setattr(mode, "judge", recording)


def facts(applied: str) -> Facts:
    return Facts("", applied, False, True, True, True)


def test_up_decides_with_the_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before applying: every script is what its host last applied, but bob's wire to rho is
    gone. Only bob is applied, with the judge's config findings as its drift."""
    rec = Recorder(monkeypatch)
    s = states()
    wire_removed("bob", "rho")(s)
    handshake("vorke", "bob", 400)(s)  # runtime only: no reason to apply vorke
    scripts = {h: f"script of {h}" for h in HOSTS}
    applied = {h: changes.digest(text) for h, text in scripts.items()}
    todo = changes.decide(lab_plan(), scripts, Gathered({h: facts(applied[h]) for h in HOSTS}, s))
    assert rec.calls == [(tuple(sorted(HOSTS)), HOSTS)]
    assert todo.to_apply == ["bob"] and todo.drift == {"bob": ["wire rho missing"]}
    assert sorted(todo.unchanged) == sorted(h for h in HOSTS if h != "bob")


def fake_session(outcomes: dict[str, Outcome]) -> Session:
    session = Session(lab_mesh(), Access())
    for name, outcome in outcomes.items():
        session.reports[name] = HostReport(name, outcome)
        if outcome.ok and outcome is not Outcome.EXCLUDED:
            session.conns[name] = object()  # type: ignore[assignment]  # never used: no I/O
    return session


def test_verify_asks_the_judge_and_needs_no_round_trip_when_nothing_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder(monkeypatch)

    def no_poll(*_args: Any) -> States:
        raise AssertionError("nothing was applied and the states are healthy: no poll")

    monkeypatch.setattr(gather, "poll", no_poll)
    outcomes = dict.fromkeys(HOSTS, Outcome.UNCHANGED) | {"pi0": Outcome.EXCLUDED}
    result = verify.verify(fake_session(outcomes), lab_plan(), states(), quiet)
    worked_on = [h for h in HOSTS if h != "pi0"]
    assert result.ok and not result.problems and not result.pinged
    assert sorted(result.hosts) == sorted(worked_on) and result.not_verified == []
    assert rec.calls == [(tuple(sorted(worked_on)), worked_on)]


def test_verify_judges_fresh_states_after_an_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """An applied host: verify polls and judges until healthy (here at once), then pings."""
    rec = Recorder(monkeypatch)
    monkeypatch.setattr(gather, "poll", lambda _session, names: {n: states()[n] for n in names})
    monkeypatch.setattr(verify, "_ping", lambda *_args: [])
    outcomes = dict.fromkeys(HOSTS, Outcome.UNCHANGED) | {"bob": Outcome.CHANGED}
    result = verify.verify(fake_session(outcomes), lab_plan(), {}, quiet)
    assert result.ok and result.pinged
    assert rec.calls == [(tuple(sorted(HOSTS)), HOSTS)]


def test_verify_polls_again_while_a_ping_fails_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The judge satisfied but a ping not yet through (a VTEP's route a moment behind its
    session): verify polls again, judge and pings, until both hold; past the bound, the
    pings' problems are the verdict."""
    Recorder(monkeypatch)
    polls: list[int] = []

    def poll(_session: Any, names: list[str]) -> States:
        polls.append(1)
        return {n: states()[n] for n in names}

    monkeypatch.setattr(gather, "poll", poll)
    monkeypatch.setattr(verify.time, "sleep", lambda _s: None)
    answers = [["bob: no ping across the bridge to rho"], []]
    monkeypatch.setattr(verify, "_ping", lambda *_args: answers.pop(0))
    outcomes = dict.fromkeys(HOSTS, Outcome.UNCHANGED) | {"bob": Outcome.CHANGED}
    result = verify.verify(fake_session(outcomes), lab_plan(), {}, quiet)
    assert result.ok and result.pinged and len(polls) == 2

    monkeypatch.setattr(verify, "_ping", lambda *_args: ["bob: no ping across the bridge to rho"])
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(verify.time, "monotonic", lambda: float(next(clock)))
    result = verify.verify(fake_session(outcomes), lab_plan(), {}, quiet)
    assert not result.ok and result.problems == ["bob: no ping across the bridge to rho"]


def test_status_asks_the_judge(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """`status` with the captured mesh as what the hosts print, pi0 unreachable."""
    import json

    rec = Recorder(monkeypatch)

    def open_all(mesh: Any, access: Any, first: str | None, *_args: Any) -> Session:
        assert first == gather.first_command(mesh)
        session = fake_session(dict.fromkeys(HOSTS, Outcome.PENDING))
        for h in HOSTS:
            if h == "pi0":
                session.reports[h].fail(Outcome.UNREACHABLE, "connect", "connection refused")
            else:
                session.outputs[h] = (OBSERVED / f"{h}.txt").read_text()
        return session

    monkeypatch.setattr(connect, "open_all", open_all)
    monkeypatch.setattr(mesh_keys, "public_keys", lambda _mesh, **_kw: keys())
    assert cli.main(["status", "-i", str(LAB), "--json"]) == cli.EXIT_FAILED
    out = json.loads(capsys.readouterr().out)
    assert rec.calls == [(tuple(sorted(h for h in HOSTS if h != "pi0")), None)]
    verdicts = {h["name"]: h["healthy"] for h in out["hosts"]}
    assert verdicts == dict.fromkeys(HOSTS, True) | {"pi0": None}
    pi0 = next(h for h in out["hosts"] if h["name"] == "pi0")
    assert pi0["reasons"] == ["unreachable: connect: connection refused"]


def test_check_predicts_what_a_tree_change_costs() -> None:
    """`up --check`'s reconvergence (issue 29): nothing on the planned tree; a wire end that
    the plan moves from blocking to forwarding costs 2 × forward_delay to the paths over it."""
    p, mode = lab_plan(), modes.of(lab_mesh())
    assert mode.reconvergence(p, states()).as_json() == {"seconds": 0, "changes": []}
    moved = states()
    end, peer = next(iter(p.tree.expected.blocking))
    port = stp_of(moved[end]).ports[peer]
    port.state = "forwarding"
    cost = mode.reconvergence(p, moved)
    assert cost.changes == [f"{end}'s end of {end}–{peer}: forwarding → blocking"]
    assert cost.seconds == 2 * lab_mesh().stp.forward_delay
    evpn = modes.named("evpn")
    assert evpn.reconvergence(p, moved).changes == []
