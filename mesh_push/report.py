"""What the user sees: rich tables on a terminal, JSON for machines. The only module
(with the live progress of the commands) that imports rich."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import stp
from .outcome import Outcome
from .plan import Plan

if TYPE_CHECKING:
    from .changes import Changes
    from .commands import Run


def console(stderr: bool = False) -> Console:
    # NO_COLOR is honoured by rich itself; never colour what is not a terminal.
    stream = sys.stderr if stderr else sys.stdout
    return Console(
        stderr=stderr,
        no_color="NO_COLOR" in os.environ or None,
        # Tables piped to a file or a CI log would otherwise be cut at 80 columns.
        width=None if stream.isatty() else 160,
    )


def print_json(data: Any, lines: bool = False) -> None:
    """One indented document; with `lines`, one document per line (JSON Lines, for --watch)."""
    json.dump(data, sys.stdout, indent=None if lines else 2, sort_keys=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def plan_json(p: Plan, cut: stp.Edge | None = None) -> dict[str, Any]:
    m = p.mesh
    names = [h.name for h in m.hosts]
    outcome = stp.after_cut(p.tree, names, cut) if cut else p.tree.expected
    return {
        "mesh": m.name,
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
            }
            for lk in m.links
        ],
        "tree": _tree_json(p, outcome, names, cut),
    }


def _tree_json(
    p: Plan, outcome: stp.Outcome, names: list[str], cut: stp.Edge | None
) -> dict[str, Any]:
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            path = stp.tree_path(outcome, names, a, b)
            pairs.append(
                {
                    "hosts": [a, b],
                    "path": path,
                    "latency_ms": stp.path_latency(path, p.tree.weights) if path else None,
                }
            )
    lats = [x["latency_ms"] for x in pairs]
    return {
        "method": p.tree.method,
        "cut": list(cut) if cut else None,
        "root": outcome.root,
        "backup_root": p.tree.backup,
        "root_ports": outcome.root_port,
        "blocking": sorted([h, w] for h, w in outcome.blocking),
        # the tree shown: after a cut, what 802.1D converges to (None if a pair is cut off)
        "routing_cost_ms": None if None in lats else sum(lats),
        "planned_routing_cost_ms": p.tree.routing_cost_ms,
        "failover": [
            {"cut": list(e), "replacement": list(f)} for e, f in sorted(p.tree.replacement.items())
        ],
        "pairs": pairs,
    }


def show_plan(p: Plan, cut: stp.Edge | None = None) -> None:
    out = console()
    data = plan_json(p, cut)
    m = p.mesh
    out.print(
        f"[bold]mesh {m.name}[/]: {len(m.hosts)} hosts, {len(m.links)} links; "
        f"WireGuard {m.wg_interface} {m.wg_network} port {m.wg_port}; "
        f"bridge {m.bridge} {m.bridge_network}; VXLAN port {m.vxlan_port}; "
        f"MTU {m.mtu.policy}: wg {m.mtu.wireguard}, wires and bridge {m.mtu.bridge}"
    )
    hosts = Table(title="Hosts", title_justify="left")
    for col in ("host", "endpoint", "wave", "wg address", "bridge address", "priority", "peers"):
        hosts.add_column(col)
    for h in data["hosts"]:
        endpoint = h["endpoint"] + (f" {h['address']}" if h["address"] else "")
        hosts.add_row(
            h["name"],
            endpoint,
            str(h["wave"] + 1),
            h["wg_address"],
            h["bridge_address"],
            str(h["bridge_priority"]),
            ", ".join(pe["name"] for pe in h["peers"]),
        )
    out.print(hosts)
    blocking = {(a, b) for a, b in data["tree"]["blocking"]}
    links = Table(
        title="Links (one WireGuard peer pair and one VXLAN wire each)", title_justify="left"
    )
    for col in ("link", "VNI", "latency ms", "cost", "tree", "takes over when cut"):
        links.add_column(col)
    takes_over: dict[stp.Edge, list[str]] = {}
    for e, f in p.tree.replacement.items():
        takes_over.setdefault(f, []).append("–".join(e))
    for lk in m.links:
        blocked = [f"blocked at {a}" for a, b in ((lk.a, lk.b), (lk.b, lk.a)) if (a, b) in blocking]
        state = "forwarding" if stp.edge(lk.a, lk.b) in _forwarding(data) else ", ".join(blocked)
        if cut and stp.edge(lk.a, lk.b) == cut:
            state = "cut"
        links.add_row(
            f"{lk.a} – {lk.b}",
            str(lk.vni),
            "" if lk.latency_ms is None else f"{lk.latency_ms:g}",
            str(p.tree.port_cost[(lk.a, lk.b)]),
            state,
            ", ".join(sorted(takes_over.get(stp.edge(lk.a, lk.b), []))),
        )
    out.print(links)
    tree = data["tree"]
    after = ", after cutting " + "–".join(cut) if cut else ""
    total = tree["routing_cost_ms"]
    planned = "" if not cut else f" (planned tree: {p.tree.routing_cost_ms:g} ms)"
    out.print(
        f"Spanning tree ({tree['method']} search{after})"
        f": root [bold]{tree['root']}[/], backup root {tree['backup_root']}, "
        "total pair latency "
        + ("n/a: some pairs are cut off" if total is None else f"{total:g} ms")
        + planned
    )
    paths = Table(title="Host pairs over the tree", title_justify="left")
    for col in ("pair", "path", "latency ms"):
        paths.add_column(col)
    for pair in tree["pairs"]:
        lat = pair["latency_ms"]
        paths.add_row(
            " ↔ ".join(pair["hosts"]),
            " → ".join(pair["path"]) or "unreachable",
            "" if lat is None else f"{lat:g}",
        )
    out.print(paths)
    out.print("Push waves: " + "  then  ".join(", ".join(w) for w in p.waves))


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
            self.out.print(f"[dim]{elapsed:6.2f}s[/] [bold]{name:<12}[/] {escape(message)}")


def show_changes(todo: Changes) -> None:
    out = console(stderr=True)
    for name, peers in todo.missing_keys.items():
        out.print(
            f"[yellow]{escape(name)}: no public key yet for {escape(', '.join(peers))}: left out[/]"
        )
    for name, found in todo.drift.items():
        out.print(f"[yellow]{escape(name)} drifted: {escape('; '.join(found))}[/]")
    if todo.to_apply:
        out.print(f"will apply to: {escape(', '.join(todo.to_apply))}")
    if todo.unchanged:
        out.print(f"no changes: {escape(', '.join(todo.unchanged))}")


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


STATUS_STYLE = {
    Outcome.CHANGED: "green",
    Outcome.UNCHANGED: "green",
    Outcome.FAILED: "red",
    Outcome.UNREACHABLE: "red",
    Outcome.SKIPPED: "yellow",
    Outcome.NOT_ATTEMPTED: "yellow",
    Outcome.ROLLED_BACK: "yellow",
    Outcome.EXCLUDED: "dim",
}


def show_run(run: Run) -> None:
    out = console()
    table = Table(title="Result", title_justify="left")
    for col in ("host", "result", "changes", "details"):
        table.add_column(col)
    for r in run.reports.values():
        style = STATUS_STYLE.get(r.outcome, "default")
        changes = "no changes" if r.ok and not r.changes else str(len(r.changes) or "")
        table.add_row(escape(r.name), f"[{style}]{r.outcome.value}[/]", changes, escape(r.details))
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
                    + escape(", ".join(verification.not_verified))
                )
        else:
            out.print(f"[red]verification failed[/] after {verification.seconds:.1f} s:")
            for problem in verification.problems:
                out.print(f"  {escape(problem)}")


def _age(age: float | None) -> str:
    return "never" if age is None else f"{age:.0f}s"


def status_json(p: Plan, j: Any) -> dict[str, Any]:
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


def show_status(p: Plan, j: Any, clear: bool = False) -> None:
    out = console()
    if clear:
        out.clear()
    data = status_json(p, j)
    hosts = Table(title=f"mesh {p.mesh.name}: hosts", title_justify="left")
    for col in ("host", "reachable", "peers up", "oldest handshake", "bridge id", "root",
                "root port", "cost", "fwd/blk", "verdict"):  # fmt: skip
        hosts.add_column(col)
    for h in data["hosts"]:
        if not h["reachable"]:
            why = escape("; ".join(h["reasons"]))
            hosts.add_row(h["name"], "[red]no[/]", *[""] * 7, f"[yellow]unknown[/]: {why}")
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
            else "[red]unhealthy[/]: " + escape("; ".join(h["reasons"]))
        )
        hosts.add_row(
            h["name"],
            "yes",
            f"{len(up)}/{len(peers)}",
            oldest,
            br.get("bridge_id", ""),
            br.get("root_host") or br.get("root_id", ""),
            str(br.get("root_port", "")),
            str(br.get("path_cost", "")),
            f"{fwd}/{blk}",
            verdict,
        )
    out.print(hosts)
    wires = Table(title="wires", title_justify="left")
    for col in ("wire", "VNI", "handshake age", "VXLAN up", "STP state", "MTU", "problems"):
        wires.add_column(col)
    for w in data["wires"]:
        a, b = w["hosts"]
        ea, eb = w["ends"].get(a), w["ends"].get(b)

        def both(key: str, fmt: Any = str, ea: Any = ea, eb: Any = eb) -> str:
            return " / ".join("?" if e is None else fmt(e[key]) for e in (ea, eb))

        wires.add_row(
            f"{a} – {b}",
            str(w["vni"]),
            both("handshake_age_s", _age),
            both("vxlan_up", lambda x: "yes" if x else "no"),
            both("stp_state", lambda x: x or "-"),
            both("mtu"),
            escape("; ".join(w["problems"])),
        )
    out.print(wires)
    tree = {True: "matches the plan", False: "DIFFERS from the plan", None: "unknown"}
    out.print(
        f"spanning tree: {tree[data['tree_matches_plan']]} (planned root {data['planned_root']})"
    )
    verdict = "[green]HEALTHY[/]" if data["healthy"] else "[red]UNHEALTHY[/]"
    out.print(f"verdict: {verdict}" + "".join(f"\n  {escape(r)}" for r in data["reasons"]))
