"""What `plan`, `status` and `measure` show: the mode's own report (Mode.plan_report,
Mode.status_report) on a terminal, or its JSON for machines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from mesh_push import modes
from mesh_push.engine.measure import LinkResult, format_ms
from mesh_push.modes.base import Plan
from mesh_push.modes.judgement import Judgement
from mesh_push.modes.topology import Edge
from mesh_push.views.console import console, safe_text, show


def plan_json(p: Plan, cut: Edge | None = None, all_pairs: bool = False) -> dict[str, Any]:
    return modes.of(p.mesh).plan_json(p, cut, all_pairs)


def show_plan(
    p: Plan, cut: Edge | None = None, all_pairs: bool = False, out: Console | None = None
) -> None:
    show(modes.of(p.mesh).plan_report(p, cut, all_pairs), out or console())


def status_json(p: Plan, j: Judgement) -> dict[str, Any]:
    return modes.of(p.mesh).status_json(p, j)


def show_status(p: Plan, j: Judgement, clear: bool = False, out: Console | None = None) -> None:
    out = out or console()
    if clear:
        out.clear()
    show(modes.of(p.mesh).status_report(p, j), out)


def measure_json(
    results: list[LinkResult], errors: dict[str, str], count: int, written: str | None
) -> dict[str, Any]:
    return {
        "ok": all(r.measured_ms is not None for r in results),
        "count": count,
        "links": [r.as_json() for r in results],
        "unreachable": errors,
        "written": written,
    }


def show_measure(results: list[LinkResult], errors: dict[str, str], written: str | None) -> None:
    out = console()
    table = Table(title="Round trips over WireGuard (median per end)", title_justify="left")
    for col in ("link", "VNI", "inventory ms", "measured ms", "ends", "problems"):
        table.add_column(col)
    for r in results:
        ends = " / ".join(
            f"{safe_text(e.host)}: " + ("-" if e.median_ms is None else f"{e.median_ms:.3f}")
            for e in r.ends.values()
        )
        problems = "; ".join(
            f"{e.host}: {e.error}" + (f" ({e.received}/{e.sent})" if e.sent else "")
            for e in r.ends.values()
            if e.error
        )
        table.add_row(
            f"{safe_text(r.a)} – {safe_text(r.b)}",
            str(r.vni),
            "" if r.inventory_ms is None else f"{r.inventory_ms:g}",
            "[red]not measured[/]" if r.measured_ms is None else format_ms(r.measured_ms),
            ends,
            safe_text(problems),
        )
    out.print(table)
    for host, err in sorted(errors.items()):
        out.print(f"[red]{safe_text(host)}[/]: {safe_text(err)}")
    if written:
        out.print(f"latency_ms written to {safe_text(written)}")


def show_plan_changes(changes: list[str]) -> None:
    """`measure --diff`: what the measured latencies would change in the plan."""
    out = console()
    if not changes:
        out.print("[green]the plan would not change[/] with these latencies")
        return
    out.print("[yellow]with these latencies the plan would change[/] (measure --write, then up):")
    for line in changes:
        out.print(f"  {safe_text(line)}")
