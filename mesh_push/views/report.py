"""What the user sees: rich tables on a terminal, JSON for machines. The only module
(with the live progress of the commands) that imports rich."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mesh_push.core.problems import printable
from mesh_push.engine.outcome import Outcome
from mesh_push.modes.plan import Plan
from mesh_push.modes.stp import tree as stp

if TYPE_CHECKING:
    from mesh_push.engine.changes import Changes
    from mesh_push.engine.commands import Run


PAIR_TABLE_HOSTS = 50  # past this many hosts `plan` summarises the host pairs (--all-pairs)
WORST_PAIRS = 10
PATH_SHOWN = 8  # hosts of a long path shown in the summary's tables
PLAIN_TABLE_ROWS = 200  # longer tables are printed as plain aligned text (see _table)


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


def _name(value: object) -> str:
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


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def plan_json(p: Plan, cut: stp.Edge | None = None, all_pairs: bool = False) -> dict[str, Any]:
    """The plan for machines. Every host pair with its path is listed in tree.pairs up to
    PAIR_TABLE_HOSTS hosts or with `all_pairs` (null otherwise: n hosts have n(n-1)/2 pairs,
    each with a path of up to n hosts); tree.pair_summary always."""
    m = p.mesh
    names = [h.name for h in m.hosts]
    outcome = stp.after_cut(p.tree, names, cut) if cut else p.tree.expected
    evpn = None
    if p.underlay is not None:
        from mesh_push.modes.evpn import report as report_evpn  # it builds on this module's helpers

        evpn = report_evpn.plan_json(p, all_pairs)
    return {
        "mesh": m.name,
        "mode": m.mode,
        "evpn": evpn,
        "wireguard": {"interface": m.wg_interface, "port": m.wg_port, "network": str(m.wg_network)},
        "bridge": {"name": m.bridge, "network": str(m.bridge_network)},
        "vxlan_port": m.vxlan_port,
        "mtu": {"policy": m.mtu.policy, "wireguard": m.mtu.wireguard, "bridge": m.mtu.bridge},
        "stp": {
            "hello": m.stp.hello,
            "forward_delay": m.stp.forward_delay,
            "max_age": m.stp.max_age,
        },
        "waves": [list(w) for w in p.waves],
        "hosts": [
            {
                "name": hp.name,
                "endpoint": hp.host.endpoint,
                "address": str(hp.host.address) if hp.host.address else None,
                "wave": hp.wave,
                "wg_address": str(hp.wg_address),
                "bridge_address": str(hp.bridge_address),
                "bridge_mac": hp.bridge_mac,
                "bridge_priority": hp.bridge_priority,
                "public_key": hp.public_key,
                "peers": [
                    {
                        "name": pe.name,
                        "allowed_ip": str(pe.allowed_ip),
                        "endpoint": pe.endpoint,
                        "keepalive": pe.keepalive,
                    }
                    for pe in hp.peers
                ],
                "wires": [
                    {"name": w.name, "vni": w.vni, "remote": str(w.remote), "cost": w.cost}
                    for w in hp.wires
                ],
            }
            for hp in p.hosts
        ],
        "links": [
            {
                "hosts": [lk.a, lk.b],
                "vni": lk.vni,
                "latency_ms": lk.latency_ms,
                "in_tree": stp.edge(lk.a, lk.b) in outcome.forwarding_edges,
                "psk": lk.psk,
            }
            for lk in m.links
        ],
        "tree": _tree_json(p, outcome, names, cut, all_pairs or len(names) <= PAIR_TABLE_HOSTS),
    }


def _tree_json(
    p: Plan, outcome: stp.Outcome, names: list[str], cut: stp.Edge | None, all_pairs: bool
) -> dict[str, Any]:
    summary = stp.pair_summary(outcome, names, p.tree.weights, WORST_PAIRS)
    pairs = None
    if all_pairs:
        pairs = [
            {
                "hosts": [a, b],
                "path": path,
                "latency_ms": _finite(stp.path_latency(path, p.tree.weights)) if path else None,
            }
            for a, b, path in stp.tree_paths(outcome, names)
        ]
    return {
        "method": p.tree.method,
        "cut": list(cut) if cut else None,
        "root": outcome.root,
        "backup_root": p.tree.backup,
        "root_ports": outcome.root_port,
        "blocking": sorted([h, w] for h, w in outcome.blocking),
        # the tree shown: after a cut, what 802.1D converges to (None if a pair is cut off)
        "routing_cost_ms": None if summary.cut_off else _finite(summary.total_ms),
        "planned_routing_cost_ms": _finite(p.tree.routing_cost_ms),
        "failover": [
            {"cut": list(e), "replacement": list(f)} for e, f in sorted(p.tree.replacement.items())
        ],
        "pairs": pairs,
        "pair_summary": _summary_json(summary),
    }


def _summary_json(s: stp.PairSummary) -> dict[str, Any]:
    limits: list[float | None] = [*stp.DETOUR_LIMITS, None]
    return {
        "pairs": s.pairs,
        "cut_off": s.cut_off,
        "total_latency_ms": _finite(s.total_ms),
        "mean_latency_ms": _finite(s.mean_ms),
        "longest": None
        if s.longest is None
        else {
            "hosts": [s.longest[0], s.longest[1]],
            "latency_ms": _finite(s.longest[2]),
            "path": s.longest[3],
        },
        "linked": {
            "pairs": s.linked,
            "cut_off": s.linked_cut_off,
            "by_detour": [
                {"at_most": lim, "pairs": n} for lim, n in zip(limits, s.by_detour, strict=True)
            ],
            "worst": [
                {
                    "hosts": [d.a, d.b],
                    "wire_ms": _finite(d.wire_ms),
                    "tree_ms": _finite(d.tree_ms),
                    "detour": None if d.ratio is None else _finite(d.ratio),
                    "path": d.path,
                }
                for d in s.worst
            ],
        },
    }


def _path_text(path: list[str], most: int | None = PATH_SHOWN) -> str:
    if not path:
        return "unreachable"
    if most is not None and len(path) > most:
        path = [*path[:3], f"… {len(path) - 6} more …", *path[-3:]]
    return " → ".join(path)


def _ms(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def _table(out: Console, title: str, columns: tuple[str, ...], rows: list[list[str]]) -> None:
    """A table of plain values (anything from an inventory or a host: made safe here). Past
    PLAIN_TABLE_ROWS rows it is printed as aligned text: rich's tables cost about 2 ms a row,
    which made `plan` of 2,000 hosts take 8 s in its host and link tables alone."""
    if len(rows) <= PLAIN_TABLE_ROWS:
        table = Table(title=safe_text(title), title_justify="left")
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*(safe_text(cell) for cell in row))
        out.print(table)
        return
    cells = [list(columns), *([printable(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [printable(title)]
    for i, r in enumerate(cells):
        lines.append("  ".join(c.ljust(wd) for c, wd in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    out.out("\n".join(lines), highlight=False)


def show_plan(
    p: Plan, cut: stp.Edge | None = None, all_pairs: bool = False, out: Console | None = None
) -> None:
    out = out or console()
    if p.underlay is not None:
        from mesh_push.modes.evpn import report as report_evpn

        report_evpn.show_plan(p, out, all_pairs)
        return
    data = plan_json(p, cut)  # the pairs, when listed, are streamed below
    m = p.mesh
    out.print(
        f"[bold]mesh {_name(m.name)}[/]: {len(m.hosts)} hosts, {len(m.links)} links; "
        f"WireGuard {_name(m.wg_interface)} {m.wg_network} port {m.wg_port}; "
        f"bridge {_name(m.bridge)} {m.bridge_network}; VXLAN port {m.vxlan_port}; "
        f"MTU {m.mtu.policy}: wg {m.mtu.wireguard}, wires and bridge {m.mtu.bridge}"
    )
    _table(
        out,
        "Hosts",
        ("host", "endpoint", "wave", "wg address", "bridge address", "priority", "peers"),
        [
            [
                h["name"],
                h["endpoint"] + (f" {h['address']}" if h["address"] else ""),
                str(h["wave"] + 1),
                h["wg_address"],
                h["bridge_address"],
                str(h["bridge_priority"]),
                ", ".join(pe["name"] for pe in h["peers"]),
            ]
            for h in data["hosts"]
        ],
    )
    blocking = {(a, b) for a, b in data["tree"]["blocking"]}
    forwarding = _forwarding(data)
    takes_over: dict[stp.Edge, list[str]] = {}
    for e, f in p.tree.replacement.items():
        takes_over.setdefault(f, []).append("–".join(e))
    rows = []
    for lk in m.links:
        blocked = [f"blocked at {a}" for a, b in ((lk.a, lk.b), (lk.b, lk.a)) if (a, b) in blocking]
        state = "forwarding" if stp.edge(lk.a, lk.b) in forwarding else ", ".join(blocked)
        if cut and stp.edge(lk.a, lk.b) == cut:
            state = "cut"
        rows.append(
            [
                f"{lk.a} – {lk.b}",
                str(lk.vni),
                "" if lk.latency_ms is None else f"{lk.latency_ms:g}",
                str(p.tree.port_cost[(lk.a, lk.b)]),
                state,
                ", ".join(sorted(takes_over.get(stp.edge(lk.a, lk.b), []))),
            ]
        )
    _table(
        out,
        "Links (one WireGuard peer pair and one VXLAN wire each)",
        ("link", "VNI", "latency ms", "cost", "tree", "takes over when cut"),
        rows,
    )
    tree = data["tree"]
    after = ", after cutting " + "–".join(_name(x) for x in cut) if cut else ""
    total = tree["routing_cost_ms"]
    planned = ""
    if cut:
        planned = f" (planned tree: {_ms(tree['planned_routing_cost_ms'])} ms)"
    out.print(
        f"Spanning tree ({tree['method']} search{after})"
        f": root [bold]{_name(tree['root'])}[/], backup root {_name(tree['backup_root'])}, "
        "total pair latency "
        + ("n/a: some pairs are cut off" if total is None else f"{total:g} ms")
        + planned
    )
    if all_pairs or len(m.hosts) <= PAIR_TABLE_HOSTS:
        names = [h.name for h in m.hosts]
        outcome = stp.after_cut(p.tree, names, cut) if cut else p.tree.expected
        _show_pairs(out, p, stp.tree_paths(outcome, names), len(names) * (len(names) - 1) // 2)
    else:
        _show_pair_summary(out, tree["pair_summary"])
    if len(m.hosts) <= PLAIN_TABLE_ROWS:
        waves = "  then  ".join(", ".join(_name(x) for x in w) for w in p.waves)
    else:
        waves = "  then  ".join(f"{len(w):,} hosts" for w in p.waves) + " (the column wave above)"
    out.print("Push waves: " + waves)


def _show_pairs(
    out: Console, p: Plan, pairs: Iterator[tuple[str, str, list[str]]], count: int
) -> None:
    """Every pair and its path: a rich table when short, else streamed as plain lines (their
    text grows as hosts³: --all-pairs on a 400-host ring prints 240 MB)."""
    title = "Host pairs over the tree"
    columns = ("pair", "latency ms", "path")

    def row(a: str, b: str, path: list[str]) -> list[str]:
        lat = _finite(stp.path_latency(path, p.tree.weights)) if path else None
        return [f"{a} ↔ {b}", _ms(lat), _path_text(path, None)]

    if count <= PLAIN_TABLE_ROWS:
        _table(out, title, columns, [row(*pair) for pair in pairs])
        return
    width = 3 + 2 * max((len(printable(h.name)) for h in p.mesh.hosts), default=1)
    out.out(f"{title}\n{'pair':<{width}}  {'latency ms':>12}  path", highlight=False)
    chunk: list[str] = []
    for pair in pairs:
        cells = [printable(c) for c in row(*pair)]
        chunk.append(f"{cells[0]:<{width}}  {cells[1]:>12}  {cells[2]}")
        if len(chunk) >= 1000:
            out.out("\n".join(chunk), highlight=False)
            chunk = []
    if chunk:
        out.out("\n".join(chunk), highlight=False)


def _show_pair_summary(out: Console, s: dict[str, Any]) -> None:
    longest = s["longest"]
    far = ""
    if longest is not None:
        a, b = longest["hosts"]
        far = (
            f"; the farthest apart: {_name(a)} ↔ {_name(b)}, {_ms(longest['latency_ms'])} ms "
            f"over {len(longest['path']) - 1} wires"
        )
    mean = s["mean_latency_ms"]
    out.print(
        f"Host pairs over the tree: {s['pairs']:,}"
        + (f", {s['cut_off']:,} cut off" if s["cut_off"] else "")
        + ("" if mean is None else f"; {mean:,.1f} ms on average")
        + far
        + " (too many to list: `plan --all-pairs` lists every pair)"
    )
    linked = s["linked"]
    labels = ["1× (over their wire)", "up to 1.5×", "up to 2×", "up to 4×", "more than 4×"]
    rows = [[lab, f"{r['pairs']:,}"] for lab, r in zip(labels, linked["by_detour"], strict=True)]
    if linked["cut_off"]:
        rows.append(["cut off", f"{linked['cut_off']:,}"])
    _table(
        out,
        "Linked pairs by detour (tree path ÷ their wire)",
        ("detour", "pairs"),
        rows,
    )
    if linked["worst"]:
        _table(
            out,
            "The worst detour"
            if len(linked["worst"]) == 1
            else f"The {len(linked['worst'])} worst detours",
            ("pair", "wire ms", "tree ms", "detour", "path"),
            [
                [
                    " ↔ ".join(d["hosts"]),
                    _ms(d["wire_ms"]),
                    _ms(d["tree_ms"]),
                    "∞" if d["detour"] is None else f"{d['detour']:.2f}×",
                    _path_text(d["path"]),
                ]
                for d in linked["worst"]
            ],
        )


def _forwarding(data: dict[str, Any]) -> set[stp.Edge]:
    return {stp.edge(*lk["hosts"]) for lk in data["links"] if lk["in_tree"]}


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
                f"[dim]{elapsed:6.2f}s[/] [bold]{_name(name):<12}[/] {safe_text(message)}"
            )


def show_changes(todo: Changes) -> None:
    out = console(stderr=True)
    for name, peers in todo.missing_keys.items():
        out.print(
            f"[yellow]{_name(name)}: no public key yet for {_name(', '.join(peers))}: left out[/]"
        )
    for name, found in todo.drift.items():
        out.print(f"[yellow]{_name(name)} drifted: {safe_text('; '.join(found))}[/]")
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
    return {**out, "check": True, "pending": run.pending}


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
            _name(r.name), f"[{style}]{r.outcome.value}[/]", changes, safe_text(r.details)
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
                _name(r.name) if first else "",
                f"[{style}]{r.outcome.value}[/]" if first else "",
                safe_text(line),
            )
    out.print(table)
    for r in run.reports.values():
        if r.diff:
            out.print(safe_text(r.diff), highlight=False)
    if not run.ok:
        out.print("[red]some hosts could not be checked, or their script would fail[/]")
    elif run.pending:
        pending = [r.name for r in run.reports.values() if r.outcome is Outcome.WOULD_CHANGE]
        out.print(
            f"[yellow]changes pending[/] on {len(pending)} host(s): {_name(', '.join(pending))}"
        )
    else:
        out.print("[green]nothing would change[/]")


def _age(age: float | None) -> str:
    return "never" if age is None else f"{age:.0f}s"


def status_json(p: Plan, j: Any) -> dict[str, Any]:
    if p.underlay is not None:
        from mesh_push.modes.evpn import report as report_evpn

        return report_evpn.status_json(p, j)
    mac_to_host = {hp.bridge_mac.replace(":", ""): hp.name for hp in p.hosts}
    hosts = []
    for hp in p.hosts:
        v = j.hosts[hp.name]
        st = v.state
        entry: dict[str, Any] = {
            "name": hp.name,
            "reachable": v.reachable,
            "healthy": v.healthy,
            "reasons": v.reasons,
            "wireguard": None,
            "bridge": None,
        }
        if st is not None:
            entry["wireguard"] = {
                "interface": p.mesh.wg_interface,
                "public_key": st.public_key,
                "listen_port": st.listen_port,
                "peers": [
                    {
                        "name": pe.name,
                        "public_key": pe.public_key,
                        "latest_handshake_age_s": st.handshake_age(pe.public_key)
                        if pe.public_key
                        else None,
                        "endpoint": st.endpoints.get(pe.public_key or ""),
                        "transfer_rx_tx": st.transfer.get(pe.public_key or ""),
                        # Whether `wg` has a pre-shared key for it (None: not read); the key
                        # itself never reaches the controller (gather.sh.j2).
                        "preshared_key": _psk_set(st.psks.get(pe.public_key or "")),
                        "preshared_key_planned": pe.psk,
                    }
                    for pe in hp.peers
                ],
            }
            if st.stp is not None:
                root_id = st.root_id or st.stp.designated_root
                entry["bridge"] = {
                    "name": p.mesh.bridge,
                    "bridge_id": st.stp.bridge_id,
                    "root_id": root_id,
                    "root_host": mac_to_host.get(root_id.partition(".")[2]),
                    "root_port": st.stp.root_port,
                    "path_cost": st.stp.path_cost,
                    "ports": [
                        {"name": port.name, "state": port.state, "path_cost": port.path_cost}
                        for port in st.stp.ports.values()
                    ],
                }
        hosts.append(entry)
    return {
        "healthy": j.healthy,
        "reasons": j.reasons,
        "tree_matches_plan": j.tree_matches_plan,
        "planned_root": p.tree.expected.root,
        "hosts": hosts,
        "wires": j.wires,
    }


def both_ends(wire: dict[str, Any], key: str, fmt: Any = str) -> str:
    """A wire's or link's `key` at its two ends, as "a / b" ("?" for an end not read)."""
    ends = [wire["ends"].get(h) for h in wire["hosts"]]
    return " / ".join("?" if e is None else _name(fmt(e[key])) for e in ends)


def show_verdict(out: Console, data: dict[str, Any]) -> None:
    verdict = "[green]HEALTHY[/]" if data["healthy"] else "[red]UNHEALTHY[/]"
    out.print(f"verdict: {verdict}" + "".join(f"\n  {safe_text(r)}" for r in data["reasons"]))


def _psk_set(fingerprint: str | None) -> bool | None:
    return None if fingerprint is None else fingerprint != "none"


def show_status(p: Plan, j: Any, clear: bool = False, out: Console | None = None) -> None:
    out = out or console()
    if clear:
        out.clear()
    if p.underlay is not None:
        from mesh_push.modes.evpn import report as report_evpn

        report_evpn.show_status(p, j, out)
        return
    data = status_json(p, j)
    hosts = Table(title=f"mesh {_name(p.mesh.name)}: hosts", title_justify="left")
    for col in ("host", "reachable", "peers up", "oldest handshake", "bridge id", "root",
                "root port", "cost", "fwd/blk", "verdict"):  # fmt: skip
        hosts.add_column(col)
    for h in data["hosts"]:
        if not h["reachable"]:
            why = safe_text("; ".join(h["reasons"]))
            hosts.add_row(_name(h["name"]), "[red]no[/]", *[""] * 7, f"[yellow]unknown[/]: {why}")
            continue
        peers = h["wireguard"]["peers"] if h["wireguard"] else []
        ages = [pe["latest_handshake_age_s"] for pe in peers]
        up = [a for a in ages if a is not None and a <= 180]
        oldest = "never" if None in ages else _age(max(ages, default=None))
        br = h["bridge"] or {}
        ports = br.get("ports", [])
        fwd = sum(1 for x in ports if x["state"] == "forwarding")
        blk = sum(1 for x in ports if x["state"] == "blocking")
        verdict = (
            "[green]healthy[/]"
            if h["healthy"]
            else "[red]unhealthy[/]: " + safe_text("; ".join(h["reasons"]))
        )
        # Everything under "bridge" was read from the host: printed as text only.
        hosts.add_row(
            _name(h["name"]),
            "yes",
            f"{len(up)}/{len(peers)}",
            oldest,
            _name(br.get("bridge_id", "")),
            _name(br.get("root_host") or br.get("root_id", "")),
            _name(br.get("root_port", "")),
            _name(br.get("path_cost", "")),
            f"{fwd}/{blk}",
            verdict,
        )
    out.print(hosts)
    wires = Table(title="wires", title_justify="left")
    for col in ("wire", "VNI", "handshake age", "VXLAN up", "STP state", "MTU", "PSK", "problems"):
        wires.add_column(col)
    for w in data["wires"]:
        a, b = w["hosts"]

        def both(key: str, fmt: Any = str, w: Any = w) -> str:
            return both_ends(w, key, fmt)

        wires.add_row(
            f"{_name(a)} – {_name(b)}",
            str(w["vni"]),
            both("handshake_age_s", _age),
            both("vxlan_up", lambda x: "yes" if x else "no"),
            both("stp_state", lambda x: x or "-"),
            both("mtu"),
            both("preshared_key", lambda x: {True: "yes", False: "no", None: "?"}[x]),
            safe_text("; ".join(w["problems"])),
        )
    out.print(wires)
    tree = {True: "matches the plan", False: "DIFFERS from the plan", None: "unknown"}
    out.print(
        f"spanning tree: {tree[data['tree_matches_plan']]} "
        f"(planned root {_name(data['planned_root'])})"
    )
    show_verdict(out, data)
