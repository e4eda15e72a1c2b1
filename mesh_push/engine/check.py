"""Stage Check, in place of Apply for `up --check`, `rotate-keys --check` and `down --check`:
every connected host runs the script it would be given in that script's own read-only mode
(MESH_PUSH_CHECK=1, templates/check.sh.j2), all at once. What a host says it would change are
the very "changed:" lines the real run prints, from the same code: the check is not a second
implementation that could disagree. Nothing is stored on a host, and no host lock is taken.

Keys not made yet (a fresh host with `keys: host`, a host not in the keystore with `keys:
controller`, the hosts `rotate-keys --check` names) are stood in for (keys.for_check): the
hosts then say what they would do with a key they do not know yet, and the real key is never
made, staged or stored."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

from mesh_push.engine.apply import changed_lines, failed_step, refusals
from mesh_push.engine.outcome import Outcome
from mesh_push.engine.session import Progress, Session
from mesh_push.host import programs
from mesh_push.host.boot import Boot

# A check runs no lock and starts nothing: it ends as fast as the host can read its state.
CHECK_TIMEOUT_S = 120.0


def diff(host: str, applied: str | None, script: str) -> str:
    """The unified diff from the script the host last applied (none: an empty one) to
    `script`; empty when they are the same."""
    return "".join(
        difflib.unified_diff(
            (applied or "").splitlines(keepends=True),
            script.splitlines(keepends=True),
            f"{host}: applied" if applied is not None else f"{host}: (none applied)",
            f"{host}: new",
        )
    )


def check(
    session: Session,
    scripts: dict[str, str],
    progress: Progress,
    with_diff: bool = False,
    rotate: Collection[str] = (),
    down: bool = False,
    adopt: bool = False,
    boots: Mapping[str, type[Boot]] | None = None,
) -> None:
    """Fills each host's report: `would change` with the changes, `unchanged`, or `failed`
    (the script refused or failed, as the real run would have); with `with_diff`, the diff
    from the script the host last applied. `adopt`: as `up --adopt` would run them. `boots`:
    each host's boot hook (its backends), which a host script that ends well installs."""

    def one(name: str) -> None:
        rep = session.reports[name]
        progress(name, "checking")
        boot = (boots or {}).get(name)
        cmd = programs.check(session.mesh, with_diff, name in rotate, down, adopt, boot)
        res = session.run(name, cmd, scripts[name], CHECK_TIMEOUT_S + programs.READ_TIMEOUT_S)
        rep.seconds["check"] = res.seconds
        out, marker, applied = res.stdout.partition(programs.APPLIED_MARKER + "\n")
        if with_diff:
            rep.diff = diff(name, applied if marker and applied else None, scripts[name])
        rep.changes = changed_lines(out)
        if not res.ok:
            step = failed_step(res.stderr) or "check"
            why = "; ".join(refusals(res.stderr)) or "the script would fail"
            rep.fail(Outcome.FAILED, step, why, res.exit_code, out + res.stderr)
            progress(name, f"would fail at step {step!r}")
            return
        rep.outcome = Outcome.WOULD_CHANGE if rep.changes else Outcome.UNCHANGED
        progress(name, f"{len(rep.changes)} change(s) pending" if rep.changes else "no changes")

    names = [n for n in scripts if n in session.conns]
    session.each(names, one, session.failing("check", progress, drop=False))
