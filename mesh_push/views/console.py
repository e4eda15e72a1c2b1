"""Printing for people and machines: rich on a terminal, plain text past a few hundred rows,
strict JSON. Every value from an inventory or a host that reaches the terminal goes through
`safe_text` here (docs/security.md): control characters shown as escapes, rich markup escaped.
The views are the only modules that import rich."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from mesh_push.core.problems import printable
from mesh_push.modes.reports import Line, Report, Styled, Table, Text

PLAIN_TABLE_ROWS = 200  # longer tables are printed as plain aligned text (see _table)
STYLE = {"strong": "bold", "good": "green", "bad": "red", "warn": "yellow", "dim": "dim"}


def console(stderr: bool = False) -> Console:
    # NO_COLOR is honoured by rich itself; never colour what is not a terminal.
    stream = sys.stderr if stderr else sys.stdout
    return Console(
        stderr=stderr,
        no_color="NO_COLOR" in os.environ or None,
        # Tables piped to a file or a CI log would otherwise be cut at 80 columns.
        width=None if stream.isatty() else 160,
        emoji=False,  # ":warning:" in a host's output stays that text
    )


def safe_text(value: object, multiline: bool = True) -> str:
    """Any value that came from an inventory or a host, ready for rich: its control
    characters shown as escapes (ESC as \\x1b: no ANSI sequence reaches the terminal; newline
    and tab kept when `multiline`) and its rich markup escaped (`[red]` stays that text).
    Every such value printed through rich goes through here."""
    return escape(printable(str(value), "\n\t" if multiline else ""))


def name(value: object) -> str:
    return safe_text(value, multiline=False)


def _strict(data: Any) -> Any:
    """JSON has no Infinity or NaN: a non-finite number is null (unknown)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _strict(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_strict(v) for v in data]
    return data


def print_json(data: Any, lines: bool = False) -> None:
    """One indented document; with `lines`, one document per line (JSON Lines, for --watch)."""
    json.dump(
        _strict(data), sys.stdout, indent=None if lines else 2, sort_keys=False, allow_nan=False
    )
    sys.stdout.write("\n")
    sys.stdout.flush()


def markup(t: Text) -> str:
    """One piece of a report as rich markup, its text made safe."""
    if isinstance(t, Styled):
        style = STYLE[t.style]
        return f"[{style}]{safe_text(t.text)}[/]"
    return safe_text(t)


def plain(t: Text) -> str:
    return printable(t.text if isinstance(t, Styled) else t)


def show(report: Report, out: Console) -> None:
    """A mode's report (modes/reports.py): its lines and tables."""
    for block in report:
        if isinstance(block, Line):
            out.print("".join(markup(p) for p in block.parts))
        else:
            _table(out, block)


def _table(out: Console, t: Table) -> None:
    """A rich table up to PLAIN_TABLE_ROWS rows, else aligned plain text: rich's tables cost
    about 2 ms a row, which made `plan` of 2,000 hosts take 8 s in its host and link tables
    alone. A table given as a stream with its widths is printed as it comes, 1,000 lines at a
    time (`plan --all-pairs` of a 400-host ring prints 240 MB)."""
    count = t.count
    rows: Iterable[Sequence[Text]] = t.rows
    if count is None:
        rows = list(rows)
        count = len(rows)
    if count <= PLAIN_TABLE_ROWS:
        table = RichTable(title=safe_text(t.title), title_justify="left")
        for col in t.columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*(markup(cell) for cell in row))
        out.print(table)
        return
    if t.widths:
        head = "  ".join(c.ljust(w) for c, w in zip(t.columns, t.widths, strict=True))
        out.out(f"{printable(t.title)}\n{head.rstrip()}", highlight=False)
        chunk: list[str] = []
        for row in rows:
            cells = [plain(c).ljust(w) for c, w in zip(row, t.widths, strict=True)]
            chunk.append("  ".join(cells).rstrip())
            if len(chunk) >= 1000:
                out.out("\n".join(chunk), highlight=False)
                chunk = []
        if chunk:
            out.out("\n".join(chunk), highlight=False)
        return
    grid: list[list[str]] = [list(t.columns), *([plain(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in grid) for i in range(len(t.columns))]
    lines = [printable(t.title)]
    for i, r in enumerate(grid):
        lines.append("  ".join(c.ljust(wd) for c, wd in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    out.out("\n".join(lines), highlight=False)
