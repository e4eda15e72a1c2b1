"""Stage Verify: after applying, the one judge (`status`'s) on the hosts worked on and, once it
is satisfied, one ping from each host to the bridges the mode says it reaches; polled until
both hold or the mode's convergence bound has passed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mesh_push import modes
from mesh_push.engine import gather, ssh
from mesh_push.engine.outcome import Outcome
from mesh_push.engine.session import HostError, Progress, Session
from mesh_push.host import programs
from mesh_push.host.state import HostState
from mesh_push.modes.base import Plan


@dataclass
class Verification:
    ok: bool
    seconds: float
    problems: list[str]
    states: dict[str, HostState]
    pinged: bool = False  # pings cross the bridges only after something was applied
    # What the verdict speaks for, and the hosts of the run it cannot speak for.
    hosts: list[str] = field(default_factory=list)
    not_verified: list[str] = field(default_factory=list)


def verify(
    session: Session, p: Plan, first: dict[str, HostState], progress: Progress
) -> Verification:
    """`first`: the states gathered at connect time, current where nothing was applied."""
    mode = modes.of(p.mesh)
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
        if mode.judge(p, states, scope=names).healthy:
            return Verification(True, time.monotonic() - start, [], states, False, names, away)
    deadline = start + mode.convergence_bound(p.mesh)
    while True:
        polled = time.monotonic()
        states = gather.poll(session, names)
        took = time.monotonic() - polled
        verdict = mode.judge(p, states, scope=names)
        problems = [f"{n}: {r}" for n, v in verdict.hosts.items() for r in v.reasons]
        problems += verdict.reasons
        # The judge sees the control plane (sessions, VTEPs, tree); a frame crossing the
        # bridge also needs what it installs (a VTEP's route, a MAC), a moment later: the
        # pings are part of convergence, within the same bound, not a second chance.
        pinged = not problems
        if pinged:
            problems = _ping(session, p, names)
        if not problems or time.monotonic() > deadline:
            break
        # Each poll is a session per host; the mode says how fast it can move. A host slow to
        # answer (a small ARM board, a guest under emulation) is left as long again: polling
        # must not take the CPU that what it waits for (FRR, a handshake) needs.
        time.sleep(max(mode.poll_interval(p.mesh), took))
    for problem in problems:
        progress("verify", problem)
    return Verification(
        not problems, time.monotonic() - start, problems, states, pinged, names, away
    )


def _ping(session: Session, p: Plan, names: list[str]) -> list[str]:
    mode = modes.of(p.mesh)
    healthy = set(names)
    problems: list[str] = []

    def one(name: str) -> None:
        peers = [
            (other, str(p.host(other).bridge_address.ip))
            for other in mode.ping_peers(p, name)
            if other in healthy and other != name
        ]
        if not peers:
            return
        res = session.run(name, programs.ping(peers), timeout=programs.READ_TIMEOUT_S)
        silent = set(res.stdout.split())
        asked = {other for other, _ in peers}
        for peer in sorted(silent & asked):
            problems.append(f"{name}: no ping across the bridge to {peer}")
        if silent - asked:  # the host's own words, never shown: it may be anything
            problems.append(f"{name}: the ping program printed names it was not given")

    def failed(name: str, err: HostError) -> None:
        # An unexpected error's text names the host already.
        problems.append(f"{name}: {err.why}" if isinstance(err.error, ssh.SshError) else err.why)

    session.each(names, one, failed)
    return problems
