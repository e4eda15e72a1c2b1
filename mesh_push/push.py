"""Push: facts from every host in one round trip, then apply wave by wave, then verify.

The only stage (with `observe`'s gathering) that talks to hosts. Per host it keeps one SSH
connection for the whole command.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import hostcmd, judge, keys, observe, plan, render, rollout, ssh
from .inventory import public_key_problem
from .model import Mesh

Progress = Callable[[str, str], None]

# Reading state takes milliseconds on a host; a read that has not answered in this long is
# stuck (seen on an overloaded 50-host lab), and a poll must not wait out the apply timeout.
READ_TIMEOUT_S = 30.0


@dataclass
class HostReport:
    name: str
    status: str = "pending"  # unreachable, skipped, failed, unchanged, changed
    step: str = ""
    message: str = ""
    changes: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # what was found wrong, then repaired
    exit_code: int | None = None
    stderr_tail: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("changed", "unchanged", "excluded")

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "ok": self.ok,
            "step": self.step or None,
            "message": self.message or None,
            "changes": self.changes,
            "drift": self.drift,
            "exit_code": self.exit_code,
            "stderr_tail": self.stderr_tail or None,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


@dataclass
class Session:
    """Open connections and what the hosts told us; closed once, at the end."""

    mesh: Mesh
    conns: dict[str, ssh.Remote] = field(default_factory=dict)
    reports: dict[str, HostReport] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # stdout of connect_all's command
    rollout: dict[str, Any] = field(default_factory=dict)  # batches and where it stopped
    become_password: str | None = None  # for sudo on hosts that ask; never printed

    @property
    def facts(self) -> dict[str, dict[str, str]]:
        return {name: parse_facts(out) for name, out in self.outputs.items()}

    def states(self) -> dict[str, observe.HostState]:
        return {n: observe.parse(out, self.mesh.bridge) for n, out in self.outputs.items()}

    def close(self) -> None:
        for remote in self.conns.values():
            # Closing a dead transport must not hide the real result.
            with contextlib.suppress(Exception):
                ssh.close(remote)


def facts_command(mesh: Mesh, generate_key: bool) -> str:
    """Facts and the observed state in one round trip: a host with nothing to change needs
    no other."""
    return hostcmd.facts(mesh, generate_key)


def parse_facts(text: str) -> dict[str, str]:
    out = {}
    for line in observe.sections(text).get("facts", "").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def apply_command(digest: str, arm: str = "") -> str:
    """Store the script (temp file, rename), run it detached from this SSH session so a
    dropped connection cannot stop it half way, wait, and hand back its log and status.
    `arm` (a rollback timer) runs first, while the old script is still in place."""
    return hostcmd.apply(digest, arm)


def digest(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()


def _parallel(names: Iterable[str], fn: Callable[[str], None], workers: int = 64) -> None:
    names = list(names)
    if not names:
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(names))) as pool:
        list(pool.map(fn, names))


def connect_all(
    mesh: Mesh,
    command: str | None,
    accept_new: bool,
    progress: Progress,
    only: Iterable[str] | None = None,
    become_password: str | None = None,
) -> Session:
    """Connect to every host in parallel and run `command` once on each, in the same thread
    right after its handshake, so no host waits for the slowest connection. (A jump host's
    own connection is reused by nobody: each host has its own chain.) Without a command, a
    host reached through sudo still runs `true`: sudo must have said yes before a script
    goes to it on stdin."""
    session = Session(mesh, become_password=become_password)
    cfg = ssh.load_config(mesh)
    names = list(only) if only is not None else [h.name for h in mesh.hosts]

    def one(name: str) -> None:
        rep = session.reports[name]
        start = time.monotonic()
        try:
            target = ssh.resolve(mesh, mesh.host(name), cfg)
            remote = ssh.connect(mesh, target, accept_new, become_password=become_password)
            rep.seconds["connect"] = time.monotonic() - start
            try:
                if command is not None or target.sudo:
                    res = ssh.run(remote, command or "true", timeout=READ_TIMEOUT_S)
                    rep.seconds["command"] = res.seconds
                    if command is not None:
                        session.outputs[name] = res.stdout
            except ssh.SshError:
                ssh.close(remote)
                raise
            session.conns[name] = remote
            progress(name, "connected")
        except ssh.BecomeError as e:
            rep.status, rep.step, rep.message = "failed", "sudo", str(e)
            progress(name, f"failed: {e}")
        except ssh.SshError as e:
            rep.status, rep.step, rep.message = "unreachable", "connect", str(e)
            progress(name, f"unreachable: {e}")

    for name in names:
        session.reports[name] = HostReport(name)
    _parallel(names, one)
    return session


def depends_on(mesh: Mesh, name: str) -> list[str]:
    """The jump hosts a host is reached through, nearest first."""
    chain = []
    via = mesh.host(name).ssh.via
    while via is not None:
        chain.append(via)
        via = mesh.host(via).ssh.via
    return chain


@dataclass
class Prepared:
    plan: plan.Plan
    scripts: dict[str, str]
    digests: dict[str, str]
    to_apply: list[str]
    unchanged: list[str]
    missing_keys: dict[str, list[str]]
    # Hosts whose script is what they last applied but whose state has drifted from it.
    drift: dict[str, list[str]] = field(default_factory=dict)


def prepare(session: Session, templates: Any, next_keys: dict[str, str] | None = None) -> Prepared:
    """From the facts: public keys (cached), the plan, each host's script and whether it
    differs from what the host last applied. `next_keys` (a rotation) wins over the facts,
    and its hosts are applied whatever their digest says."""
    mesh = session.mesh
    facts = session.facts
    if mesh.keys == "host":
        fresh = {
            n: f["public_key"]
            for n, f in facts.items()
            if f.get("public_key") and not public_key_problem(f["public_key"])
        }
        keys.save_public_keys(mesh, fresh)
    known = {**keys.public_keys(mesh, create=mesh.keys == "controller"), **(next_keys or {})}
    p = plan.build(mesh, known)
    private = keys.private_key_files(mesh) if mesh.keys == "controller" else {}
    scripts, digests, to_apply, unchanged = {}, {}, [], []
    missing: dict[str, list[str]] = {}
    # The one judge, on the state gathered with the facts: no further round trip.
    seen = judge.judge(p, session.states(), scope=list(session.conns))
    drift: dict[str, list[str]] = {}
    for hp in p.hosts:
        name = hp.name
        if name not in session.conns:
            continue
        absent = [pe.name for pe in hp.peers if pe.public_key is None]
        if absent:
            missing[name] = absent
        secret = private[name].read_text().strip() if name in private else None
        script = render.render_host(p, hp, templates, secret, allow_missing_peers=True)
        scripts[name], digests[name] = script, digest(script)
        same = facts.get(name, {}).get("applied") == digests[name]
        verdict = seen.hosts.get(name)
        if same and verdict is not None and verdict.drift:
            drift[name] = verdict.drift
        if same and name not in drift and name not in (next_keys or {}):
            unchanged.append(name)
        else:
            to_apply.append(name)
    return Prepared(p, scripts, digests, to_apply, unchanged, missing, drift)


def stage_rotation(session: Session, names: list[str], progress: Progress) -> dict[str, str]:
    """New key pairs for `names`; returns their public keys. In `keys: host` mode each host
    makes its next private key beside the current one (the apply moves it into place), so
    no private key ever leaves a host."""
    mesh = session.mesh
    if mesh.keys == "controller":
        return keys.rotate_controller_keys(mesh, names)
    cmd = hostcmd.rotate_key(mesh.key_file)
    out: dict[str, str] = {}

    def one(name: str) -> None:
        rep = session.reports[name]
        try:
            res = ssh.run(session.conns[name], cmd)
            pub, why = res.stdout.strip(), res.stderr_tail() or "could not make a new key pair"
        except ssh.SshError as e:
            pub, why = "", str(e)
        if public_key_problem(pub):
            rep.status, rep.step, rep.message = "failed", "rotate-keys", why
            progress(name, why)
        else:
            out[name] = pub

    _parallel([n for n in names if n in session.conns], one)
    return out


def apply(
    session: Session,
    prep: Prepared,
    progress: Progress,
    opts: rollout.Options | None = None,
    templates: Any = None,
) -> None:
    """Batch by batch (the first a canary), wave by wave inside a batch, hosts of a wave in
    parallel. Over the failure budget, the rollout stops before the next batch."""
    mesh = session.mesh
    opts = opts or rollout.Options()
    for name in prep.unchanged:
        session.reports[name].status = "unchanged"
    wave_of = {n: i for i, wave in enumerate(prep.plan.waves) for n in wave}
    ordered = sorted(prep.to_apply, key=lambda n: (wave_of[n], prep.to_apply.index(n)))
    groups = rollout.batches(ordered, opts.serial)
    # Hosts we could not even work on count against the budget like hosts that failed.
    away = [n for n, r in session.reports.items() if r.step in ("connect", "sudo")]
    budget = opts.budget(len(ordered) + len(away))
    fallback = render.render_down(prep.plan, templates, purge=False) if templates else ""
    session.rollout = {"batches": groups, "budget": budget, "stopped_before_batch": None}
    for number, batch in enumerate(groups, 1):
        failed = away + [
            n for n in ordered if session.reports[n].status in ("failed", "rolled back")
        ]
        if len(failed) > budget:
            rest = [n for g in groups[number - 1 :] for n in g]
            for name in rest:
                rep = session.reports[name]
                rep.status, rep.step = "not attempted", "rollout"
                rep.message = (
                    f"rollout stopped before batch {number} of {len(groups)}: "
                    f"{len(failed)} host(s) failed or unreachable, the budget is {budget}"
                )
            session.rollout.update(stopped_before_batch=number, failed=failed)
            progress("rollout", f"stopped before batch {number}: {', '.join(failed)} failed")
            return
        for wave in sorted({wave_of[n] for n in batch}):
            ready = []
            for name in (n for n in batch if wave_of[n] == wave):
                rep = session.reports[name]
                blocked = [j for j in depends_on(mesh, name) if not session.reports[j].ok]
                if blocked:
                    rep.status, rep.step = "skipped", "apply"
                    rep.message = f"not touched: it is reached through {blocked[0]}, which failed"
                    progress(name, rep.message)
                    continue
                ready.append(name)
            _parallel(ready, lambda n: _apply_one(session, prep, n, progress, opts, fallback))


def _apply_one(
    session: Session,
    prep: Prepared,
    name: str,
    progress: Progress,
    opts: rollout.Options,
    fallback: str,
) -> None:
    rep = session.reports[name]
    progress(name, "applying")
    token = secrets.token_hex(8) if opts.confirm_timeout else ""
    arm = rollout.arm_command(token, opts.confirm_timeout or 0, fallback) if token else ""
    try:
        # Past the confirmation window the host has rolled back anyway: stop listening.
        res = ssh.run(
            session.conns[name],
            apply_command(prep.digests[name], arm),
            prep.scripts[name],
            timeout=opts.confirm_timeout or 300,
        )
    except ssh.SshError as e:
        rep.status, rep.step, rep.message = "failed", "apply", str(e)
        progress(name, f"failed: {e}")
        if token:
            _settle(session, name, token, opts.confirm_timeout or 0, progress)
        return
    rep.seconds["apply"] = res.seconds
    rep.changes = _changes(res.stdout)
    if not res.ok:
        rep.status, rep.exit_code = "failed", res.exit_code
        rep.step = _failed_step(res.stdout) or "apply"
        rep.stderr_tail = "\n".join(res.stdout.strip().splitlines()[-8:])
        rep.message = f"step {rep.step!r} failed with exit code {res.exit_code}"
        progress(name, rep.message)
        return
    rep.status = "changed" if rep.changes else "unchanged"
    if name in prep.drift:
        rep.drift = prep.drift[name]
        rep.message = "repaired: " + "; ".join(rep.drift)
    progress(name, f"applied: {len(rep.changes)} change(s)")
    if token:
        _settle(session, name, token, opts.confirm_timeout or 0, progress)


def _settle(session: Session, name: str, token: str, seconds: float, progress: Progress) -> None:
    """Confirm over a fresh connection: proof that the new state still lets us in. Without
    it the host rolls back by itself; wait for that and say so."""
    mesh, rep = session.mesh, session.reports[name]
    target = ssh.resolve(mesh, mesh.host(name))
    try:
        fresh = ssh.connect(
            mesh,
            target,
            timeout=min(mesh.ssh.connect_timeout, 10),
            become_password=session.become_password,
        )
        try:
            if ssh.run(fresh, rollout.confirm_command(token), timeout=READ_TIMEOUT_S).ok:
                rep.message = "confirmed over a fresh connection"
                return
        finally:
            ssh.close(fresh)
    except ssh.SshError as e:
        progress(name, f"no confirmation ({e}): it rolls back by itself")
    deadline = time.monotonic() + seconds + 15
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            back = ssh.connect(mesh, target, timeout=5, become_password=session.become_password)
            try:
                if ssh.run(back, rollout.rolled_back_command(), timeout=10).stdout.strip():
                    rep.status, rep.step = "rolled back", "confirm"
                    rep.message = (
                        f"no confirmation within {seconds:g} s: the host went back to its "
                        "previous state by itself"
                    )
                    progress(name, rep.message)
                    return
            finally:
                ssh.close(back)
        except ssh.SshError:
            continue
    rep.status, rep.step = "failed", "confirm"
    rep.message = "no confirmation, and the host did not come back after its rollback"
    progress(name, rep.message)


def _changes(log: str) -> list[str]:
    """The scripts print one `changed: ...` line per thing they did."""
    return [ln.removeprefix("changed: ") for ln in log.splitlines() if ln.startswith("changed: ")]


def _failed_step(log: str) -> str | None:
    for line in reversed(log.splitlines()):
        if line.startswith('mesh-push: step "'):
            return line.split('"')[1]
    return None


# --------------------------------------------------------------------------- verify


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


def gather(session: Session, names: Iterable[str]) -> dict[str, observe.HostState]:
    mesh = session.mesh
    cmd = observe.gather_command(mesh.wg_interface, mesh.bridge)
    out: dict[str, observe.HostState] = {}

    def one(name: str) -> None:
        try:
            res = ssh.run(session.conns[name], cmd, timeout=READ_TIMEOUT_S)
            out[name] = observe.parse(res.stdout, mesh.bridge)
        except ssh.SshError:
            pass

    _parallel(names, one)
    return out


def convergence_bound(mesh: Mesh) -> float:
    """Listening then learning (2 × forward_delay) after a root change is learnt (max_age),
    plus a hello or two of slack for the handshakes that BPDUs themselves trigger."""
    s = mesh.stp
    return s.max_age + 2 * s.forward_delay + 2 * s.hello + 5


def verify(session: Session, p: plan.Plan, progress: Progress) -> Verification:
    """The judge `status` uses, on the hosts worked on, until it is satisfied or STP has had
    time to converge; then one ping over every wire."""
    mesh = session.mesh
    names = [n for n in session.conns if session.reports[n].ok]
    away = [n for n, r in session.reports.items() if n not in names and r.status != "excluded"]
    start = time.monotonic()
    if not names:
        problem = "no host could be verified: none was worked on"
        return Verification(False, 0.0, [problem], {}, not_verified=away)
    if all(session.reports[n].status == "unchanged" for n in names):
        # Nothing was applied: the state gathered with the facts is current, and judging it
        # costs no further round trip.
        states = {n: st for n, st in session.states().items() if n in names}
        if judge.judge(p, states, scope=names).healthy:
            return Verification(True, time.monotonic() - start, [], states, False, names, away)
    deadline = start + convergence_bound(mesh)
    while True:
        states = gather(session, names)
        verdict = judge.judge(p, states, scope=names)
        if verdict.healthy or time.monotonic() > deadline:
            break
        # Each poll is a session per host; STP moves no faster than its hello time.
        time.sleep(max(0.5, mesh.stp.hello))
    problems = [f"{n}: {r}" for n, v in verdict.hosts.items() for r in v.reasons]
    problems += verdict.reasons
    pinged = not problems
    if pinged:
        problems = _ping_wires(session, p, names)
    elapsed = time.monotonic() - start
    for problem in problems:
        progress("verify", problem)
    return Verification(not problems, elapsed, problems, states, pinged, names, away)


def _ping_wires(session: Session, p: plan.Plan, names: list[str]) -> list[str]:
    healthy = set(names)
    problems: list[str] = []

    def one(name: str) -> None:
        peers = [
            (w.name, str(p.host(w.name).bridge_address.ip))
            for w in p.host(name).wires
            if w.name in healthy
        ]
        if not peers:
            return
        cmd = hostcmd.ping(peers)
        try:
            res = ssh.run(session.conns[name], cmd, timeout=READ_TIMEOUT_S)
        except ssh.SshError as e:
            problems.append(f"{name}: {e}")
            return
        for peer in res.stdout.split():
            problems.append(f"{name}: no ping across the bridge to {peer}")

    _parallel(names, one)
    return problems


def down(session: Session, templates: Any, purge: bool, progress: Progress) -> None:
    p = plan.build(session.mesh, {})
    script = render.render_down(p, templates, purge)

    def one(name: str) -> None:
        rep = session.reports[name]
        try:
            res = ssh.run(session.conns[name], hostcmd.down(), script)
        except ssh.SshError as e:
            rep.status, rep.step, rep.message = "failed", "down", str(e)
            return
        rep.changes = _changes(res.stdout)
        if res.ok:
            rep.status = "changed" if rep.changes else "unchanged"
        else:
            rep.status, rep.step, rep.exit_code = "failed", "down", res.exit_code
            rep.stderr_tail = res.stderr_tail()
            rep.message = f"down failed with exit code {res.exit_code}"
        progress(name, rep.status)

    _parallel(list(session.conns), one)
