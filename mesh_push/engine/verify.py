"""Stage Verify: after applying, the one judge (`status`'s) on the hosts worked on, polled
until it is satisfied or STP has had time to converge; then one ping over every wire."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mesh_push.core.model import Mesh
from mesh_push.engine import gather, ssh
from mesh_push.engine.connect import READ_TIMEOUT_S, Progress, Session, parallel
from mesh_push.engine.outcome import Outcome, unexpected
from mesh_push.host import programs as hostcmd
from mesh_push.host import state as observe
from mesh_push.modes import judge, plan

EVPN_CONVERGENCE_S = 60.0


@dataclass
class Verification:
    ok: bool
    seconds: float
    problems: list[str]
    states: dict[str, observe.HostState]
    pinged: bool = False  # pings cross the wires only after something was applied
    # What the verdict speaks for, and the hosts of the run it cannot speak for.
    hosts: list[str] = field(default_factory=list)
    not_verified: list[str] = field(default_factory=list)


def convergence_bound(mesh: Mesh) -> float:
    """Listening then learning (2 × forward_delay) after a root change is learnt (max_age),
    plus a hello or two of slack for the handshakes that BPDUs themselves trigger."""
    if mesh.mode == "evpn":
        # OSPF adjacencies (hellos every second), then BGP sessions (retried every 5 s), then
        # the EVPN routes: seconds, with room for a loaded host.
        return EVPN_CONVERGENCE_S
    s = mesh.stp
    return s.max_age + 2 * s.forward_delay + 2 * s.hello + 5


def verify(
    session: Session, p: plan.Plan, first: dict[str, observe.HostState], progress: Progress
) -> Verification:
    """`first`: the states gathered at connect time, current where nothing was applied."""
    mesh = session.mesh
    names = [n for n in session.conns if session.reports[n].ok]
    away = [
        n
        for n, r in session.reports.items()
        if n not in names and r.outcome is not Outcome.EXCLUDED
    ]
    start = time.monotonic()
    if not names:
        problem = "no host could be verified: none was worked on"
        return Verification(False, 0.0, [problem], {}, not_verified=away)
    if all(session.reports[n].outcome is Outcome.UNCHANGED for n in names):
        states = {n: st for n, st in first.items() if n in names}
        if judge.judge(p, states, scope=names).healthy:
            return Verification(True, time.monotonic() - start, [], states, False, names, away)
    deadline = start + convergence_bound(mesh)
    while True:
        states = gather.poll(session, names)
        verdict = judge.judge(p, states, scope=names)
        if verdict.healthy or time.monotonic() > deadline:
            break
        # Each poll is a session per host; STP moves no faster than its hello time.
        time.sleep(1.0 if mesh.mode == "evpn" else max(0.5, mesh.stp.hello))
    problems = [f"{n}: {r}" for n, v in verdict.hosts.items() for r in v.reasons]
    problems += verdict.reasons
    pinged = not problems
    if pinged:
        problems = _ping_wires(session, p, names)
    for problem in problems:
        progress("verify", problem)
    return Verification(
        not problems, time.monotonic() - start, problems, states, pinged, names, away
    )


def _ping_wires(session: Session, p: plan.Plan, names: list[str]) -> list[str]:
    healthy = set(names)
    problems: list[str] = []

    def one(name: str) -> None:
        # Over the wires in stp mode; in evpn mode every host is one hop away on the segment.
        near = [w.name for w in p.host(name).wires] if p.underlay is None else p.underlay.hosts
        peers = [
            (other, str(p.host(other).bridge_address.ip))
            for other in near
            if other in healthy and other != name
        ]
        if not peers:
            return
        try:
            res = session.run(name, hostcmd.ping(peers), timeout=READ_TIMEOUT_S)
        except ssh.SshError as e:
            problems.append(f"{name}: {e}")
            return
        except Exception as e:
            problems.append(f"{name}: {unexpected(e)}")
            return
        for peer in res.stdout.split():
            problems.append(f"{name}: no ping across the bridge to {peer}")

    parallel(names, one)
    return problems
