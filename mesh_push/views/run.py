"""What the commands that work on hosts show: live progress per host while they work, the
changes about to be applied, and a table of results at the end (or `--json`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from mesh_push.engine.outcome import Outcome
from mesh_push.views.console import console, safe_text
from mesh_push.views.console import name as text_of

if TYPE_CHECKING:
    from mesh_push.engine.changes import Changes
    from mesh_push.engine.commands import Run


class Progress:
    """Live per-host lines on stderr while hosts are worked on (quiet under --json)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.start = time.monotonic()
        self.out = console(stderr=True)

    def host(self, name: str, message: str) -> None:
        if self.enabled:
            elapsed = time.monotonic() - self.start
            self.out.print(
                f"[dim]{elapsed:6.2f}s[/] [bold]{text_of(name):<12}[/] {safe_text(message)}"
            )


def show_changes(todo: Changes) -> None:
    out = console(stderr=True)
    for name, peers in todo.missing_keys.items():
        missing = text_of(", ".join(peers))
        out.print(f"[yellow]{text_of(name)}: no public key yet for {missing}: left out[/]")
    for name, found in todo.drift.items():
        out.print(f"[yellow]{text_of(name)} drifted: {safe_text('; '.join(found))}[/]")
    if todo.to_apply:
        out.print(f"will apply to: {safe_text(', '.join(todo.to_apply))}")
    if todo.unchanged:
        out.print(f"no changes: {safe_text(', '.join(todo.unchanged))}")


def run_json(run: Run) -> dict[str, Any]:
    v = run.verification
    return {
        "ok": run.ok,
        "cancelled": run.cancelled,
        "hosts": [r.as_json() for r in run.reports.values()],
        "rollout": run.rollout.as_json() if run.rollout else None,
        "verify": None
        if v is None
        else {
            "ok": v.ok,
            "seconds": round(v.seconds, 2),
            "problems": v.problems,
            "pinged": v.pinged,
            "hosts": v.hosts,
            "not_verified": v.not_verified,
        },
    }


def check_json(run: Run) -> dict[str, Any]:
    """`up/rotate-keys/down --check --json`: per host what would change (docs/json.md#check)."""
    out = run_json(run)
    for entry, r in zip(out["hosts"], run.reports.values(), strict=True):
        entry["diff"] = r.diff
    cost = run.reconvergence.as_json() if run.reconvergence else None
    return {**out, "check": True, "pending": run.pending, "reconvergence": cost}


STATUS_STYLE = {
    Outcome.WOULD_CHANGE: "yellow",
    Outcome.CHANGED: "green",
    Outcome.UNCHANGED: "green",
    Outcome.FAILED: "red",
    Outcome.UNREACHABLE: "red",
    Outcome.SKIPPED: "yellow",
    Outcome.NOT_ATTEMPTED: "yellow",
    Outcome.ROLLED_BACK: "yellow",
    Outcome.EXCLUDED: "dim",
}


def show_run(run: Run, out: Console | None = None) -> None:
    out = out or console()
    if run.checked:
        _show_check(run, out)
        return
    table = Table(title="Result", title_justify="left")
    for col in ("host", "result", "changes", "details"):
        table.add_column(col)
    for r in run.reports.values():
        style = STATUS_STYLE.get(r.outcome, "default")
        changes = "no changes" if r.ok and not r.changes else str(len(r.changes) or "")
        table.add_row(
            text_of(r.name), f"[{style}]{r.outcome.value}[/]", changes, safe_text(r.details)
        )
    out.print(table)
    verification = run.verification
    if run.cancelled:
        out.print("[yellow]cancelled[/]: nothing was applied")
    if verification is not None:
        if verification.ok:
            pings = ", a ping crosses every wire" if verification.pinged else ""
            scope = ""
            if verification.not_verified:
                scope = f" on {len(verification.hosts)} host(s) only"
            out.print(
                f"[green]verified[/]{scope} in {verification.seconds:.1f} s: every peer has a "
                f"handshake, every bridge has converged{pings}"
            )
            if verification.not_verified:
                out.print(
                    "[yellow]not verified[/] (not reached or failed): "
                    + safe_text(", ".join(verification.not_verified))
                )
        else:
            out.print(f"[red]verification failed[/] after {verification.seconds:.1f} s:")
            for problem in verification.problems:
                out.print(f"  {safe_text(problem)}")


def _show_check(run: Run, out: Console) -> None:
    """One row per change (the host named on its first), then the diffs asked for."""
    table = Table(title="Check: nothing was changed", title_justify="left")
    for col in ("host", "would", "change"):
        table.add_column(col)
    for r in run.reports.values():
        style = STATUS_STYLE.get(r.outcome, "default")
        lines = r.changes if r.changes else [r.details or ("" if r.ok else r.outcome.value)]
        for i, line in enumerate(lines):
            first = i == 0
            table.add_row(
                text_of(r.name) if first else "",
                f"[{style}]{r.outcome.value}[/]" if first else "",
                safe_text(line),
            )
    out.print(table)
    for r in run.reports.values():
        if r.diff:
            out.print(safe_text(r.diff), highlight=False)
    cost = run.reconvergence
    if cost is not None and cost.changes:
        out.print(
            f"[yellow]traffic moves[/]: paths over these carry none for up to {cost.seconds:g} s "
            "while the network reconverges:"
        )
        for line in cost.changes:
            out.print(f"  {safe_text(line)}")
    if not run.ok:
        out.print("[red]some hosts could not be checked, or their script would fail[/]")
    elif run.pending:
        pending = [r.name for r in run.reports.values() if r.outcome is Outcome.WOULD_CHANGE]
        out.print(
            f"[yellow]changes pending[/] on {len(pending)} host(s): {text_of(', '.join(pending))}"
        )
    else:
        out.print("[green]nothing would change[/]")
