"""What the user sees: rich tables on a terminal, JSON for machines. The only module
(with the live progress of `push`) that imports rich."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from . import stp
from .plan import Plan


def console(stderr: bool = False) -> Console:
    # NO_COLOR is honoured by rich itself; never colour what is not a terminal.
    return Console(stderr=stderr, no_color="NO_COLOR" in os.environ or None)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


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
    return {
        "method": p.tree.method,
        "cut": list(cut) if cut else None,
        "root": outcome.root,
        "backup_root": p.tree.backup,
        "root_ports": outcome.root_port,
        "blocking": sorted([h, w] for h, w in outcome.blocking),
        "routing_cost_ms": p.tree.routing_cost_ms,
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
    for col in ("link", "VNI", "latency ms", "cost", "tree"):
        links.add_column(col)
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
        )
    out.print(links)
    tree = data["tree"]
    out.print(
        f"Spanning tree ({tree['method']} search{', after cutting ' + '–'.join(cut) if cut else ''})"
        f": root [bold]{tree['root']}[/], backup root {tree['backup_root']}, "
        f"total pair latency {p.tree.routing_cost_ms:g} ms"
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
