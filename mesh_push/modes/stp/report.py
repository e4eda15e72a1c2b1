"""What `plan` and `status` show of an stp mesh: the tree, the wires, every host pair's path over
the tree (or a summary of them past PAIR_TABLE_HOSTS hosts), and per host its bridge's view of
the tree. Data only (modes/reports.py): the views print it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mesh_push.core.model import Link
from mesh_push.modes import reports
from mesh_push.modes.base import HostPlan, Plan
from mesh_push.modes.judgement import Judgement
from mesh_push.modes.reports import Report, Styled, Table, finite, line, ms, path_text
from mesh_push.modes.stp import pairs as tree_pairs
from mesh_push.modes.stp import tree as stp
from mesh_push.modes.stp.judge import StpJudgement, seen
from mesh_push.modes.stp.plan import StpHost, StpPlan, own
from mesh_push.modes.stp.simulate import Outcome
from mesh_push.modes.topology import Edge, edge

WORST_PAIRS = 10
PLAIN_TABLE_ROWS = 200  # the views print longer tables as plain text


def outcome(p: StpPlan, cut: Edge | None) -> Outcome:
    names = [h.name for h in p.mesh.hosts]
    return stp.after_cut(p.tree, names, cut) if cut else p.tree.expected


def plan_json(plan: Plan, cut: Edge | None = None, all_pairs: bool = False) -> dict[str, Any]:
    """The plan for machines. Every host pair with its path is listed in tree.pairs up to
    PAIR_TABLE_HOSTS hosts or with `all_pairs` (null otherwise: n hosts have n(n-1)/2 pairs,
    each with a path of up to n hosts); tree.pair_summary always."""
    p = own(plan)
    m = p.mesh
    names = [h.name for h in m.hosts]
    shown = outcome(p, cut)

    def host_extra(hp: HostPlan) -> dict[str, Any]:
        assert isinstance(hp, StpHost)
        return {
            "wg_address": str(hp.wg_address),
            "bridge_priority": hp.bridge_priority,
            "wires": [
                {"name": w.name, "vni": w.vni, "remote": str(w.remote), "cost": w.cost}
                for w in hp.wires
            ],
        }

    def link_extra(lk: Link) -> dict[str, Any]:
        return {"in_tree": edge(lk.a, lk.b) in shown.forwarding_edges}

    listed = all_pairs or len(names) <= reports.PAIR_TABLE_HOSTS
    return {
        **reports.plan_json(p, "stp", host_extra, link_extra),
        "stp": {
            "hello": m.stp.hello,
            "forward_delay": m.stp.forward_delay,
            "max_age": m.stp.max_age,
        },
        "tree": _tree_json(p, shown, names, cut, listed),
        "evpn": None,
    }


def _tree_json(
    p: StpPlan, shown: Outcome, names: list[str], cut: Edge | None, all_pairs: bool
) -> dict[str, Any]:
    summary = tree_pairs.pair_summary(shown, names, p.tree.weights, WORST_PAIRS)
    listed = None
    if all_pairs:
        listed = [
            {
                "hosts": [a, b],
                "path": path,
                "latency_ms": finite(tree_pairs.path_latency(path, p.tree.weights))
                if path
                else None,
            }
            for a, b, path in tree_pairs.tree_paths(shown, names)
        ]
    return {
        "method": p.tree.method,
        "cut": list(cut) if cut else None,
        "root": shown.root,
        "backup_root": p.tree.backup,
        "root_ports": shown.root_port,
        "blocking": sorted([h, w] for h, w in shown.blocking),
        # the tree shown: after a cut, what 802.1D converges to (None if a pair is cut off)
        "routing_cost_ms": None if summary.cut_off else finite(summary.total_ms),
        "planned_routing_cost_ms": finite(p.tree.routing_cost_ms),
        "failover": [
            {"cut": list(e), "replacement": list(f)} for e, f in sorted(p.tree.replacement.items())
        ],
        "pairs": listed,
        "pair_summary": _summary_json(summary),
    }


def _summary_json(s: tree_pairs.PairSummary) -> dict[str, Any]:
    limits: list[float | None] = [*tree_pairs.DETOUR_LIMITS, None]
    return {
        "pairs": s.pairs,
        "cut_off": s.cut_off,
        "total_latency_ms": finite(s.total_ms),
        "mean_latency_ms": finite(s.mean_ms),
        "longest": None
        if s.longest is None
        else {
            "hosts": [s.longest[0], s.longest[1]],
            "latency_ms": finite(s.longest[2]),
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
                    "wire_ms": finite(d.wire_ms),
                    "tree_ms": finite(d.tree_ms),
                    "detour": None if d.ratio is None else finite(d.ratio),
                    "path": d.path,
                }
                for d in s.worst
            ],
        },
    }


def plan_report(plan: Plan, cut: Edge | None = None, all_pairs: bool = False) -> Report:
    p = own(plan)
    data = plan_json(p, cut)  # the pairs, when listed, are streamed below
    m = p.mesh
    out: Report = [
        line(
            Styled(f"mesh {m.name}", "strong"),
            f": {reports.hosts_line(p)}; "
            f"WireGuard {m.wg_interface} {m.wg_network} port {m.wg_port}; "
            f"bridge {m.bridge} {m.bridge_network}; VXLAN port {m.vxlan_port}; "
            f"MTU {m.mtu.policy}: wg {m.mtu.wireguard}, wires and bridge {m.mtu.bridge}",
        ),
        Table(
            "Hosts",
            ("host", "endpoint", "wave", "wg address", "bridge address", "priority", "peers"),
            [
                [
                    h["name"],
                    h["endpoint"]
                    + (f" {h['address']}" if h["address"] else "")
                    + ("" if h["transit"] else ", leaf"),
                    str(h["wave"] + 1),
                    h["wg_address"],
                    h["bridge_address"],
                    str(h["bridge_priority"]),
                    ", ".join(pe["name"] for pe in h["peers"]),
                ]
                for h in data["hosts"]
            ],
        ),
    ]
    blocking = {(a, b) for a, b in data["tree"]["blocking"]}
    forwarding = {edge(*lk["hosts"]) for lk in data["links"] if lk["in_tree"]}
    takes_over: dict[Edge, list[str]] = {}
    for e, f in p.tree.replacement.items():
        takes_over.setdefault(f, []).append("–".join(e))
    rows = []
    for lk in m.links:
        blocked = [f"blocked at {a}" for a, b in ((lk.a, lk.b), (lk.b, lk.a)) if (a, b) in blocking]
        state = "forwarding" if edge(lk.a, lk.b) in forwarding else ", ".join(blocked)
        if cut and edge(lk.a, lk.b) == cut:
            state = "cut"
        rows.append(
            [
                f"{lk.a} – {lk.b}",
                str(lk.vni),
                "" if lk.latency_ms is None else f"{lk.latency_ms:g}",
                str(p.tree.port_cost[(lk.a, lk.b)]),
                state,
                ", ".join(sorted(takes_over.get(edge(lk.a, lk.b), []))),
            ]
        )
    out.append(
        Table(
            "Links (one WireGuard peer pair and one VXLAN wire each)",
            ("link", "VNI", "latency ms", "cost", "tree", "takes over when cut"),
            rows,
        )
    )
    tree = data["tree"]
    after = ", after cutting " + "–".join(cut) if cut else ""
    total = tree["routing_cost_ms"]
    planned = f" (planned tree: {ms(tree['planned_routing_cost_ms'])} ms)" if cut else ""
    out.append(
        line(
            f"Spanning tree ({tree['method']} search{after}): root ",
            Styled(tree["root"], "strong"),
            f", backup root {tree['backup_root']}, total pair latency "
            + ("n/a: some pairs are cut off" if total is None else f"{total:g} ms")
            + planned,
        )
    )
    names = [h.name for h in m.hosts]
    if all_pairs or len(names) <= reports.PAIR_TABLE_HOSTS:
        out.append(_pairs(p, tree_pairs.tree_paths(outcome(p, cut), names)))
    else:
        out += _pair_summary(tree["pair_summary"])
    out.append(reports.waves_line(p, PLAIN_TABLE_ROWS))
    return out


def _pairs(p: StpPlan, pairs: Iterator[tuple[str, str, list[str]]]) -> Table:
    """Every pair and its path, as a stream: their text grows as hosts³ (--all-pairs on a
    400-host ring prints 240 MB)."""
    n = len(p.mesh.hosts)

    def rows() -> Iterator[list[str]]:
        for a, b, path in pairs:
            lat = finite(tree_pairs.path_latency(path, p.tree.weights)) if path else None
            yield [f"{a} ↔ {b}", ms(lat), path_text(path, None)]

    width = 3 + 2 * max((len(h.name) for h in p.mesh.hosts), default=1)
    return Table(
        "Host pairs over the tree",
        ("pair", "latency ms", "path"),
        rows(),
        count=n * (n - 1) // 2,
        widths=(width, 12, 0),
    )


def _pair_summary(s: dict[str, Any]) -> Report:
    longest = s["longest"]
    far = ""
    if longest is not None:
        a, b = longest["hosts"]
        far = (
            f"; the farthest apart: {a} ↔ {b}, {ms(longest['latency_ms'])} ms "
            f"over {len(longest['path']) - 1} wires"
        )
    mean = s["mean_latency_ms"]
    out: Report = [
        line(
            f"Host pairs over the tree: {s['pairs']:,}"
            + (f", {s['cut_off']:,} cut off" if s["cut_off"] else "")
            + ("" if mean is None else f"; {mean:,.1f} ms on average")
            + far
            + " (too many to list: `plan --all-pairs` lists every pair)"
        )
    ]
    linked = s["linked"]
    labels = ["1× (over their wire)", "up to 1.5×", "up to 2×", "up to 4×", "more than 4×"]
    rows = [[lab, f"{r['pairs']:,}"] for lab, r in zip(labels, linked["by_detour"], strict=True)]
    if linked["cut_off"]:
        rows.append(["cut off", f"{linked['cut_off']:,}"])
    out.append(Table("Linked pairs by detour (tree path ÷ their wire)", ("detour", "pairs"), rows))
    if linked["worst"]:
        worst = linked["worst"]
        out.append(
            Table(
                "The worst detour" if len(worst) == 1 else f"The {len(worst)} worst detours",
                ("pair", "wire ms", "tree ms", "detour", "path"),
                [
                    [
                        " ↔ ".join(d["hosts"]),
                        ms(d["wire_ms"]),
                        ms(d["tree_ms"]),
                        "∞" if d["detour"] is None else f"{d['detour']:.2f}×",
                        path_text(d["path"]),
                    ]
                    for d in worst
                ],
            )
        )
    return out


def status_json(plan: Plan, j: Judgement) -> dict[str, Any]:
    p = own(plan)
    assert isinstance(j, StpJudgement)
    mac_to_host = {hp.bridge_mac.replace(":", ""): hp.name for hp in p.hosts}
    hosts = []
    for hp in p.hosts:
        if hp.name not in j.hosts:
            continue  # outside --limit: not read
        v = j.hosts[hp.name]
        st = v.state
        entry: dict[str, Any] = {**reports.status_host(hp, v), "wireguard": None, "bridge": None}
        if st is not None:
            (iface,) = hp.wg
            w = st.wg.get(iface.name)
            entry["wireguard"] = {
                "interface": iface.name,
                "public_key": w.public_key or None if w else None,
                "listen_port": w.listen_port if w else None,
                "peers": [reports.peer_json(st, iface, pe) for pe in iface.peers],
            }
            s = seen(st)
            if s.stp is not None:
                root_id = s.root_id or s.stp.designated_root
                entry["bridge"] = {
                    "name": p.mesh.bridge,
                    "bridge_id": s.stp.bridge_id,
                    "root_id": root_id,
                    "root_host": mac_to_host.get(root_id.partition(".")[2]),
                    "root_port": s.stp.root_port,
                    "path_cost": s.stp.path_cost,
                    "ports": [
                        {"name": port.name, "state": port.state, "path_cost": port.path_cost}
                        for port in s.stp.ports.values()
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


def status_report(plan: Plan, j: Judgement) -> Report:
    data = status_json(plan, j)
    rows = []
    for h in data["hosts"]:
        if not h["reachable"]:
            rows.append(reports.unreachable_row(h, 9))
            continue
        peers = h["wireguard"]["peers"] if h["wireguard"] else []
        up, oldest = reports.peers_up(peers)
        br = h["bridge"] or {}
        ports = br.get("ports", [])
        fwd = sum(1 for x in ports if x["state"] == "forwarding")
        blk = sum(1 for x in ports if x["state"] == "blocking")
        # Everything under "bridge" was read from the host: printed as text only.
        rows.append(
            [
                h["name"],
                "yes",
                f"{up}/{len(peers)}",
                oldest,
                str(br.get("bridge_id", "")),
                str(br.get("root_host") or br.get("root_id", "")),
                str(br.get("root_port", "")),
                str(br.get("path_cost", "")),
                f"{fwd}/{blk}",
                reports.key_age(h["key_age_s"]),
                reports.boot_cell(h),
                reports.verdict_cell(h),
            ]
        )
    out: Report = [
        Table(
            f"mesh {plan.mesh.name}: hosts",
            (
                "host",
                "reachable",
                "peers up",
                "oldest handshake",
                "bridge id",
                "root",
                "root port",
                "cost",
                "fwd/blk",
                "key age",
                "boot",
                "verdict",
            ),
            rows,
        ),
        Table(
            "wires",
            (
                "wire",
                "VNI",
                "handshake age",
                "VXLAN up",
                "STP state",
                "MTU",
                "PSK",
                "PSK age",
                "problems",
            ),
            [
                [
                    f"{w['hosts'][0]} – {w['hosts'][1]}",
                    str(w["vni"]),
                    reports.both_ends(w, "handshake_age_s", reports.age),
                    reports.both_ends(w, "vxlan_up", lambda x: "yes" if x else "no"),
                    reports.both_ends(w, "stp_state", lambda x: x or "-"),
                    reports.both_ends(w, "mtu"),
                    reports.both_ends(w, "preshared_key", reports.yes_no),
                    reports.both_ends(w, "preshared_key_age_s", reports.key_age),
                    "; ".join(w["problems"]),
                ]
                for w in data["wires"]
            ],
        ),
    ]
    tree = {True: "matches the plan", False: "DIFFERS from the plan", None: "unknown"}
    out.append(
        line(
            f"spanning tree: {tree[data['tree_matches_plan']]} "
            f"(planned root {data['planned_root']})"
        )
    )
    return out + reports.verdict_lines(j)
