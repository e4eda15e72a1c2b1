"""`mesh-push measure`: the round trip of every link, measured over its WireGuard tunnel, and
(with --write) written back into the inventory's `latency_ms` values.

One SSH command per host pings every peer's WireGuard address at once; a link's figure is
the average of its two ends' median round trips (one end alone if the other could not be
asked). The inventory is edited textually at the positions YAML reports for each link, so
the user's comments, order and layout stay; the result is checked to load as the same
inventory with only the latencies changed, then written atomically.

Only argparse at import time: the rest loads when the command runs.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesh_push.cli import become_password, ssh_args

if TYPE_CHECKING:
    from mesh_push.core.model import Mesh
    from mesh_push.modes.plan import Plan

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MARK = "=== mesh-push measure "
TIME_RE = re.compile(r"time[=<]([0-9.]+) ?ms")
SENT_RE = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


class MeasureUsageError(Exception):
    """A mistake of the user's: exit 2."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = (
        "Ping every link's far end over WireGuard from both ends and show (or --write into "
        "the inventory) the median round trips as latency_ms."
    )
    p = sub.add_parser(
        "measure",
        help=summary,
        description=f"{summary}\n\nexample:\n  mesh-push measure -i inventory/lab.yaml --write",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-i", "--inventory", required=True, type=Path, metavar="FILE", help="inventory YAML file"
    )
    p.add_argument("--count", type=int, default=10, metavar="N", help="pings per link end (10)")
    p.add_argument(
        "--write", action="store_true", help="rewrite the links' latency_ms in the inventory"
    )
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of tables")
    ssh_args(p)
    p.set_defaults(handler=run)


# --------------------------------------------------------------------------- pure parts


@dataclass
class End:
    host: str
    sent: int = 0
    received: int = 0
    times_ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None


@dataclass
class LinkResult:
    a: str
    b: str
    vni: int
    inventory_ms: float | None
    ends: dict[str, End]

    @property
    def measured_ms(self) -> float | None:
        meds = [m for e in self.ends.values() if (m := e.median_ms) is not None]
        return statistics.fmean(meds) if meds else None

    def as_json(self) -> dict[str, Any]:
        return {
            "hosts": [self.a, self.b],
            "vni": self.vni,
            "inventory_ms": self.inventory_ms,
            "measured_ms": _round(self.measured_ms),
            "ends": {
                name: {
                    "median_ms": _round(e.median_ms),
                    "sent": e.sent,
                    "received": e.received,
                    "error": e.error,
                }
                for name, e in self.ends.items()
            },
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def ping_command(targets: list[tuple[str, str]], count: int) -> str:
    """All pings at once (each into its own file), then their outputs one after the other,
    each under a marker line naming the peer."""
    from mesh_push.host import programs as hostcmd

    return hostcmd.measure(targets, count, MARK)


def parse_pings(text: str) -> dict[str, End]:
    out: dict[str, End] = {}
    cur: End | None = None
    for line in text.splitlines():
        if line.startswith(MARK):
            name = line[len(MARK) :].strip()
            cur = out[name] = End(name)
            continue
        if cur is None:
            continue
        if m := TIME_RE.search(line):
            cur.times_ms.append(float(m.group(1)))
        elif m := SENT_RE.search(line):
            cur.sent, cur.received = int(m.group(1)), int(m.group(2))
    for end in out.values():
        if not end.times_ms:
            end.error = "no reply"
    return out


def format_ms(v: float) -> str:
    """Two decimals, trailing zeros dropped, never 0 (0.01 at least)."""
    v = max(0.01, round(v, 2))
    return f"{v:.2f}".rstrip("0").rstrip(".")


def rewrite_latencies(text: str, new: dict[frozenset[str], str]) -> str:
    """The inventory text with each listed link's latency_ms set (or added), nothing else
    touched. Raises MeasureUsageError where the text cannot be edited safely."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise MeasureUsageError(f"cannot read the inventory as YAML: {e}") from None
    if not isinstance(root, yaml.MappingNode):
        raise MeasureUsageError("the inventory is not a YAML mapping")
    links = next((v for k, v in root.value if k.value == "links"), None)
    if not isinstance(links, yaml.SequenceNode):
        raise MeasureUsageError(
            "--write needs `links:` as a list of host pairs (links: full has nowhere to keep "
            "latencies: list the links)"
        )
    edits: list[tuple[int, int, str]] = []
    for item in links.value:
        if isinstance(item, yaml.SequenceNode):  # [a, b]
            names = [x.value for x in item.value]
            key = frozenset(names)
            if key not in new:
                continue
            if not item.flow_style:
                raise MeasureUsageError(
                    f"link {'-'.join(names)} (line {item.start_mark.line + 1}): write it as "
                    "{hosts: [a, b]} to let --write add its latency"
                )
            start, end = item.start_mark.index, item.end_mark.index
            edits.append((start, end, f"{{hosts: {text[start:end]}, latency_ms: {new[key]}}}"))
            continue
        if not isinstance(item, yaml.MappingNode):
            continue
        fields = {k.value: (k, v) for k, v in item.value}
        if "hosts" not in fields or not isinstance(fields["hosts"][1], yaml.SequenceNode):
            continue
        key = frozenset(x.value for x in fields["hosts"][1].value)
        if key not in new:
            continue
        if "latency_ms" in fields:
            v = fields["latency_ms"][1]
            edits.append((v.start_mark.index, v.end_mark.index, new[key]))
        elif item.flow_style:
            last = item.value[-1][1]
            pos = last.end_mark.index
            edits.append((pos, pos, f", latency_ms: {new[key]}"))
        else:
            first_key = item.value[0][0]
            indent = " " * first_key.start_mark.column
            last = item.value[-1][1]
            pos = last.end_mark.index
            # Block mapping: after the last value's end (before any comment on that line).
            edits.append((pos, pos, f"\n{indent}latency_ms: {new[key]}"))
    out = text
    for start, end, rep in sorted(edits, reverse=True):
        out = out[:start] + rep + out[end:]
    return out


def check_rewrite(old: str, new_text: str, new: dict[frozenset[str], str]) -> None:
    """The new text must mean the old one with only those latencies changed."""
    import yaml

    before = yaml.safe_load(old)
    after = yaml.safe_load(new_text)
    expected = before
    for i, item in enumerate(expected["links"]):
        pair = item["hosts"] if isinstance(item, dict) else item
        key = frozenset(pair)
        if key in new:
            if not isinstance(item, dict):
                item = expected["links"][i] = {"hosts": pair}
            item["latency_ms"] = yaml.safe_load(new[key])
    if after != expected:
        raise MeasureUsageError(
            "editing the inventory would change more than the latencies (anchors or aliases "
            "in links?): nothing written"
        )


# --------------------------------------------------------------------------- the command


def measure(
    mesh: Mesh, p: Plan, count: int, accept_new: bool, become_password: str | None = None
) -> tuple[list[LinkResult], dict[str, str]]:
    from mesh_push.engine import ssh
    from mesh_push.engine.connect import Access, open_all, parallel
    from mesh_push.engine.outcome import unexpected

    session = open_all(mesh, Access(accept_new, become_password), None)
    per_host: dict[str, dict[str, End]] = {}
    errors: dict[str, str] = {
        n: r.details for n, r in session.reports.items() if n not in session.conns
    }
    try:

        def one(name: str) -> None:
            hp = p.host(name)
            targets = [(pe.name, str(pe.allowed_ip.ip)) for pe in hp.peers]
            if not targets:
                return
            try:
                res = session.run(name, ping_command(targets, count), timeout=60)
            except ssh.SshError as e:
                errors[name] = str(e)
                return
            except Exception as e:
                errors[name] = f"{name}: {unexpected(e)}"
                return
            per_host[name] = parse_pings(res.stdout)

        parallel(list(session.conns), one)
    finally:
        session.close()
    results = []
    for lk in mesh.links:
        ends: dict[str, End] = {}
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            got = per_host.get(here, {}).get(there)
            if got is None:
                got = End(there, error=errors.get(here, "not measured"))
            got.host = here
            ends[here] = got
        results.append(LinkResult(lk.a, lk.b, lk.vni, lk.latency_ms, ends))
    return results, errors


def run(args: argparse.Namespace) -> int:
    from mesh_push import inventory
    from mesh_push.core.problems import InventoryError
    from mesh_push.engine import keys
    from mesh_push.modes import plan

    if args.count < 1 or args.count > 1000:
        print("mesh-push: --count must be between 1 and 1000", file=sys.stderr)
        return EXIT_USAGE
    try:
        mesh = inventory.load(args.inventory)
    except InventoryError as e:
        print(f"mesh-push: the inventory has {len(e.problems)} problem(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    text = args.inventory.read_text(encoding="utf-8")
    if args.write:
        try:  # refuse early what could not be written, before minutes of pinging
            rewrite_latencies(text, {})
        except MeasureUsageError as e:
            print(f"mesh-push: {e}", file=sys.stderr)
            return EXIT_USAGE
    p = plan.build(mesh, keys.public_keys(mesh))
    results, errors = measure(mesh, p, args.count, args.accept_new, become_password(args))
    ok = all(r.measured_ms is not None for r in results)
    written: str | None = None
    if args.write:
        new = {
            frozenset((r.a, r.b)): format_ms(r.measured_ms)
            for r in results
            if r.measured_ms is not None
        }
        try:
            written = _write(args.inventory, text, new)
        except MeasureUsageError as e:
            print(f"mesh-push: {e}", file=sys.stderr)
            return EXIT_USAGE
    if args.json:
        from mesh_push.views.report import print_json

        print_json(
            {
                "ok": ok,
                "count": args.count,
                "links": [r.as_json() for r in results],
                "unreachable": errors,
                "written": written,
            }
        )
    else:
        _show(results, errors, written)
    return EXIT_OK if ok else EXIT_FAILED


def _write(path: Path, text: str, new: dict[frozenset[str], str]) -> str | None:
    import os
    import stat

    from mesh_push import inventory
    from mesh_push.core.problems import InventoryError
    from mesh_push.files.fsutil import atomic_write

    new_text = rewrite_latencies(text, new)
    if new_text == text:
        return None
    check_rewrite(text, new_text, new)
    try:
        inventory.parse(new_text, path)
    except InventoryError as e:
        raise MeasureUsageError(f"the edited inventory would not load: {e}") from None
    atomic_write(path, new_text, mode=stat.S_IMODE(os.stat(path).st_mode))
    return str(path)


def _show(results: list[LinkResult], errors: dict[str, str], written: str | None) -> None:
    from rich.table import Table

    from mesh_push.views.report import console, safe_text

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
