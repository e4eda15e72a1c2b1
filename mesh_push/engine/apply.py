"""Stage Apply: the rendered scripts onto the hosts, batch by batch (the first a canary), wave
by wave inside a batch (static hosts first, jump hosts before the hosts behind them), the hosts
of a wave in parallel; with a confirmation window, each host arms its own rollback. Also the
down script, the other thing that changes hosts."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from mesh_push.core.model import Mesh
from mesh_push.engine import keys, rollout, ssh
from mesh_push.engine.changes import Changes
from mesh_push.engine.outcome import Outcome, tail, unexpected
from mesh_push.engine.session import HostError, Progress, Session
from mesh_push.files.fsutil import LocalFileError
from mesh_push.host import programs
from mesh_push.host.facts import Backends
from mesh_push.modes.base import Plan

# How long the controller waits for a host's apply (or down) to answer, without a
# confirmation window, once the host lock is taken.
APPLY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Rollout:
    batches: list[list[str]]
    budget: int
    stopped_before_batch: int | None = None
    failed: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "batches": self.batches,
            "budget": self.budget,
            "stopped_before_batch": self.stopped_before_batch,
        }
        if self.stopped_before_batch is not None:
            out["failed"] = list(self.failed)
        return out


def depends_on(mesh: Mesh, name: str) -> list[str]:
    """The jump hosts a host is reached through, nearest first."""
    chain = []
    via = mesh.host(name).ssh.via
    while via is not None:
        chain.append(via)
        via = mesh.host(via).ssh.via
    return chain


def apply(
    session: Session,
    p: Plan,
    changes: Changes,
    backends: dict[str, Backends],
    progress: Progress,
    opts: rollout.Options,
    fallback: str,
    psks: Mapping[str, Mapping[str, str]] | None = None,
    adopt: bool = False,
) -> Rollout:
    """`fallback`: what a host rolls back to when it had no script before (the down script).
    `psks`: host → peer → the pre-shared key its apply installs (keys.Keys.deliveries).
    `adopt`: the scripts run as `up --adopt` (include/adopt.sh.j2)."""
    mesh = session.mesh
    for name in changes.unchanged:
        session.reports[name].outcome = Outcome.UNCHANGED
    wave_of = {n: i for i, wave in enumerate(p.waves) for n in wave}
    ordered = sorted(changes.to_apply, key=lambda n: (wave_of[n], changes.to_apply.index(n)))
    groups = rollout.batches(ordered, opts.serial)
    # Hosts we could not even work on count against the budget like hosts that failed.
    # (Not connected: unreachable, refused by sudo, or lacking what the host needs.)
    away = [
        n
        for n, r in session.reports.items()
        if n not in session.conns and r.outcome is not Outcome.EXCLUDED
    ]
    budget = opts.budget(len(ordered) + len(away))
    one = _Applier(session, changes, backends, progress, opts, fallback, psks or {}, adopt)
    for number, batch in enumerate(groups, 1):
        failed = away + [
            n
            for n in ordered
            if session.reports[n].outcome in (Outcome.FAILED, Outcome.ROLLED_BACK)
        ]
        if len(failed) > budget:
            why = (
                f"rollout stopped before batch {number} of {len(groups)}: "
                f"{len(failed)} host(s) failed or unreachable, the budget is {budget}"
            )
            for name in (n for g in groups[number - 1 :] for n in g):
                session.reports[name].fail(Outcome.NOT_ATTEMPTED, "rollout", why)
            progress("rollout", f"stopped before batch {number}: {', '.join(failed)} failed")
            return Rollout(groups, budget, number, tuple(failed))
        for wave in sorted({wave_of[n] for n in batch}):
            ready = []
            for name in (n for n in batch if wave_of[n] == wave):
                blocked = [j for j in depends_on(mesh, name) if not session.reports[j].ok]
                if blocked:
                    why = f"not touched: it is reached through {blocked[0]}, which failed"
                    session.reports[name].fail(Outcome.SKIPPED, "apply", why)
                    progress(name, why)
                    continue
                ready.append(name)
            session.each(ready, one.apply, one.failed)
    return Rollout(groups, budget)


class _Applier:
    """One host's apply, and what follows when it fails."""

    def __init__(
        self,
        session: Session,
        changes: Changes,
        backends: dict[str, Backends],
        progress: Progress,
        opts: rollout.Options,
        fallback: str,
        psks: Mapping[str, Mapping[str, str]],
        adopt: bool,
    ) -> None:
        self.session = session
        self.changes = changes
        self.backends = backends
        self.progress = progress
        self.opts = opts
        self.fallback = fallback
        self.psks = psks
        self.adopt = adopt
        self.tokens: dict[str, str] = {}

    def apply(self, name: str) -> None:
        session, mesh, progress = self.session, self.session.mesh, self.progress
        rep = session.reports[name]
        progress(name, "applying")
        # keys: controller: the private key goes first on stdin, on its own; then the
        # pre-shared keys to install, one a line; the script after them (stored on the host as
        # apply.sh, and as rollback.sh) never holds any.
        key_file = mesh.key_file if mesh.keys == "controller" else None
        given = self.psks.get(name, {})
        peers = sorted(given)
        try:
            stdin = "".join(f"{given[peer]}\n" for peer in peers) + self.changes.scripts[name]
            if key_file:
                stdin = keys.read_private_key(mesh, name) + "\n" + stdin
        except LocalFileError as e:  # keys.KeystoreError, or a key file that is not safe
            session.fail(name, "keys", str(e), progress, drop=False)
            return
        seconds = self.opts.confirm_timeout or 0
        token = self.tokens[name] = secrets.token_hex(8) if seconds else ""
        arm = programs.arm(mesh, token, seconds, self.fallback) if token else ""
        command = programs.apply(
            mesh,
            self.changes.digests[name],
            arm,
            self.backends[name].boot,
            key_file is not None,
            peers,
            self.adopt,
        )
        # With a confirmation window, an apply that outlasts it is given up on (a host that
        # cut us off never answers); the host's timer waits for the apply's end all the same.
        res = session.run(
            name, command, stdin, timeout=programs.LOCK_WAIT_S + (seconds or APPLY_TIMEOUT_S)
        )
        rep.seconds["apply"] = res.seconds
        if refused := host_refusal(res, programs.EXIT_LOCKED, programs.EXIT_BAD_DIGEST):
            # Nothing ran: the host lock was held by another run, or the script arrived damaged.
            step = "lock" if res.exit_code == programs.EXIT_LOCKED else "upload"
            rep.fail(Outcome.FAILED, step, refused, res.exit_code)
            progress(name, f"failed: {refused}")
            return
        rep.changes += changed_lines(res.stdout)  # after the key handover's, if any
        if not res.ok:
            step = failed_step(res.stdout) or "apply"
            # Its refusals, or else the last thing it said on stderr (a full disk says so there).
            why = "; ".join(refusals(res.stdout)) or tail(res.stderr, 1) or "the host script failed"
            rep.fail(Outcome.FAILED, step, why, res.exit_code, res.stdout + res.stderr)
            progress(name, f"failed at step {step!r} with exit code {res.exit_code}")
            return
        rep.outcome = Outcome.CHANGED if rep.changes else Outcome.UNCHANGED
        if name in self.changes.drift:
            rep.drift = self.changes.drift[name]
            rep.message = "repaired: " + "; ".join(rep.drift)
        progress(name, f"applied: {len(rep.changes)} change(s)")
        if token:
            _settle(session, name, token, seconds, progress)

    def failed(self, name: str, err: HostError) -> None:
        self.session.fail(name, "apply", err.why, self.progress, drop=False)
        if token := self.tokens.get(name):
            _settle(self.session, name, token, self.opts.confirm_timeout or 0, self.progress)


def _settle(session: Session, name: str, token: str, seconds: float, progress: Progress) -> None:
    """Confirm over a fresh connection: proof that the new state still lets us in. Without
    it the host rolls back by itself; wait for that and say so."""
    rep = session.reports[name]
    try:
        fresh = session.reconnect(name, min(session.mesh.ssh.connect_timeout, 10))
        try:
            res = ssh.run(
                fresh,
                programs.confirm(session.mesh, token),
                timeout=programs.LOCK_WAIT_S + programs.READ_TIMEOUT_S,
            )
            if res.ok:
                confirmed = "confirmed over a fresh connection"
                rep.message = f"{rep.message}; {confirmed}" if rep.message else confirmed
                return
            progress(name, f"not confirmed: {tail(res.stderr, 1) or res.exit_code}")
        finally:
            ssh.close(fresh)
    except Exception as e:
        why = str(e) if isinstance(e, ssh.SshError) else unexpected(e)
        progress(name, f"no confirmation ({why}): it rolls back by itself")
    # The timer counts from the apply's end, and waits for the host lock to roll back.
    deadline = time.monotonic() + seconds + programs.LOCK_WAIT_S + 15
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            back = session.reconnect(name, 5)
            try:
                became = ssh.run(
                    back, programs.rolled_back(session.mesh, token), timeout=10
                ).stdout.strip()
            finally:
                ssh.close(back)
        except Exception:  # whatever it was, the host is not back yet: ask again
            continue
        if became == "rolled-back":
            why = (
                f"no confirmation within {seconds:g} s: the host went back to its "
                "previous state by itself"
            )
            rep.fail(Outcome.ROLLED_BACK, "confirm", why)
            progress(name, why)
            return
        if became == "superseded":
            why = "not confirmed, and a later mesh-push run on this host superseded its rollback"
            rep.fail(Outcome.FAILED, "confirm", why)
            progress(name, why)
            return
    why = "no confirmation, and the host did not come back after its rollback"
    rep.fail(Outcome.FAILED, "confirm", why)
    progress(name, why)


def host_refusal(res: ssh.Result, *codes: int) -> str | None:
    """A wrapper's own refusal (lock held, script damaged): one of its exit `codes` with its
    `mesh-push: ...` line on stderr (the host script's output comes on stdout, so a script
    that happens to exit with the same code is not taken for one). The message, or None."""
    if res.exit_code not in codes:
        return None
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("mesh-push: ")]
    return lines[-1].removeprefix("mesh-push: ") if lines else None


def changed_lines(log: str) -> list[str]:
    """The scripts print one `changed: ...` line per thing they did."""
    return [ln.removeprefix("changed: ") for ln in log.splitlines() if ln.startswith("changed: ")]


def refusals(log: str) -> list[str]:
    """What the host script refused to touch (its first step: an interface, a port or a
    VXLAN id that another mesh, or someone else, has), as it said it."""
    return [
        ln.removeprefix("mesh-push: ")
        for ln in log.splitlines()
        if ln.startswith("mesh-push: ") and ": refusing to touch it; " in ln
    ]


def failed_step(log: str) -> str | None:
    for line in reversed(log.splitlines()):
        if line.startswith('mesh-push: step "'):
            return line.split('"')[1]
    return None


def down(session: Session, script: str, progress: Progress) -> None:
    """The down script on every connected host, all at once."""

    def one(name: str) -> None:
        rep = session.reports[name]
        res = session.run(
            name, programs.down(session.mesh), script, programs.LOCK_WAIT_S + APPLY_TIMEOUT_S
        )
        if refused := host_refusal(res, programs.EXIT_LOCKED):
            rep.fail(Outcome.FAILED, "lock", refused, res.exit_code)
            progress(name, f"failed: {refused}")
            return
        rep.changes = changed_lines(res.stdout)
        if res.ok:
            rep.outcome = Outcome.CHANGED if rep.changes else Outcome.UNCHANGED
        else:
            why = f"down failed with exit code {res.exit_code}"
            rep.fail(Outcome.FAILED, "down", why, res.exit_code, res.stdout + res.stderr)
        progress(name, rep.outcome.value)

    session.each(list(session.conns), one, session.failing("down", progress, drop=False))
