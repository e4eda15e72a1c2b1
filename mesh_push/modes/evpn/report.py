"""What `plan` and `status` show of an evpn mesh: the underlay path of every pair instead of a
tree (with `--cut`, the pairs that reroute and their new latency), and per host its links, BGP
sessions, BFD and EVPN. Data only (modes/reports.py): the views print it."""

from __future__ import annotations

import itertools
from typing import Any

from mesh_push.core.model import Link
from mesh_push.modes import reports
from mesh_push.modes.base import HostPlan, Plan
from mesh_push.modes.evpn.judge import frr_of
from mesh_push.modes.evpn.plan import EvpnHost, EvpnPlan, LinkEnd, own, vxlan_name
from mesh_push.modes.evpn.underlay import Underlay, after_cut
from mesh_push.modes.judgement import Judgement
from mesh_push.modes.reports import Report, Styled, Table, line, ms, path_text
from mesh_push.modes.topology import Edge, edge


def plan_json(plan: Plan, cut: Edge | None = None, all_pairs: bool = False) -> dict[str, Any]:
    p = own(plan)

    def host_extra(hp: HostPlan) -> dict[str, Any]:
        assert isinstance(hp, EvpnHost)
        return {"wg_address": f"{hp.vtep}/32"}

    def link_extra(lk: Link) -> dict[str, Any]:
        return {"ospf_cost": p.underlay.cost[edge(lk.a, lk.b)]}

    return {
        **reports.plan_json(p, "evpn", host_extra, link_extra),
        "stp": None,
        "tree": None,
        "evpn": _evpn_json(p, cut, all_pairs),
    }


def _evpn_json(p: EvpnPlan, cut: Edge | None, all_pairs: bool) -> dict[str, Any]:
    """Reflectors, each host's links, every pair's path; with `cut`, what reroutes."""
    u = p.underlay
    m = p.mesh
    pairs = None
    if all_pairs or len(u.hosts) <= reports.PAIR_TABLE_HOSTS:
        pairs = [
            {"hosts": [a, b], "path": path, "latency_ms": u.latency_of(path)}
            for a, b, path in u.pairs()
        ]
    total = sum(u.latency_of(path) for _a, _b, path in u.pairs())
    return {
        "asn": m.evpn.asn,
        "vni": m.evpn.vni,
        "vxlan_interface": vxlan_name(m),
        "frr_pathspace": m.frr_pathspace,
        "route_reflectors": list(u.reflectors),
        "hosts": [
            {
                "name": hp.name,
                "vtep": str(hp.vtep),
                "route_reflector": hp.reflector,
                "bgp_neighbors": [n for n, _addr in hp.neighbors],
                "links": [
                    {
                        "interface": end.name,
                        "peer": end.peer,
                        "port": end.iface.port,
                        "address": str(end.iface.address),
                        "endpoint": end.iface.peers[0].endpoint,
                        "keepalive": end.iface.peers[0].keepalive,
                        "ospf_cost": end.cost,
                    }
                    for end in hp.links
                ],
            }
            for hp in (p.evpn_host(h.name) for h in m.hosts)
        ],
        "total_latency_ms": total,
        "pairs": pairs,
        "cut": None if cut is None else _cut_json(u, cut),
    }


def _cut_json(u: Underlay, cut: Edge) -> dict[str, Any]:
    """The pairs whose shortest path crossed `cut`, and where OSPF sends them without it."""
    after = after_cut(u, cut)
    moved = []
    for a, b, path in u.pairs():
        crossed = any(edge(x, y) == cut for x, y in itertools.pairwise(path))
        if not crossed:
            continue
        new = after.path(a, b)
        moved.append(
            {
                "hosts": [a, b],
                "path": path,
                "latency_ms": u.latency_of(path),
                "new_path": new,
                "new_latency_ms": after.latency_of(new) if new else None,
            }
        )
    return {"link": list(cut), "rerouted": moved}


def plan_report(plan: Plan, cut: Edge | None = None, all_pairs: bool = False) -> Report:
    p = own(plan)
    data = _evpn_json(p, cut, all_pairs)
    m = p.mesh
    out: Report = [
        line(
            Styled(f"mesh {m.name}", "strong"),
            f" (mode evpn): {reports.hosts_line(p)}; "
            f"WireGuard {m.wg_interface}-VNI per link, port {m.wg_port} + VNI; "
            f"VTEPs in {m.wg_network}; bridge {m.bridge} {m.bridge_network}; "
            f"VXLAN {data['vxlan_interface']} VNI {m.evpn.vni} port {m.vxlan_port}; "
            f"MTU {m.mtu.policy}: wg {m.mtu.wireguard}, bridge {m.mtu.bridge}; "
            f"BGP AS {m.evpn.asn}",
        ),
        Table(
            "Hosts",
            ("host", "endpoint", "wave", "VTEP", "bridge address", "BGP", "links"),
            [
                [
                    hp.name,
                    hp.host.endpoint
                    + (f" {hp.host.address}" if hp.host.address else "")
                    + ("" if hp.host.transit else ", leaf"),
                    str(hp.wave + 1),
                    str(hp.vtep),
                    str(hp.bridge_address),
                    "route reflector" if hp.reflector else "client",
                    ", ".join(f"{e.name}→{e.peer}" for e in hp.links),
                ]
                for hp in (p.evpn_host(h.name) for h in m.hosts)
            ],
        ),
        Table(
            "Links (one WireGuard interface at each end, routed by OSPF)",
            ("link", "VNI", "latency ms", "OSPF cost", "port", "addresses", "when cut"),
            [
                [
                    f"{lk.a} – {lk.b}",
                    str(lk.vni),
                    "" if lk.latency_ms is None else f"{lk.latency_ms:g}",
                    str(end.cost),
                    str(end.iface.port),
                    f"{end.iface.address.network}",
                    "cut" if cut and set(cut) == set(lk.hosts) else "",
                ]
                for lk in m.links
                for end in [_end(p, lk.a, lk.b)]
            ],
        ),
        line(
            f"Route reflectors: {', '.join(data['route_reflectors'])}; "
            f"total pair latency over the shortest paths {data['total_latency_ms']:g} ms"
        ),
    ]
    if data["cut"] is not None:
        rerouted = data["cut"]["rerouted"]
        out.append(
            Table(
                f"Without {cut[0]}–{cut[1]}" if cut else "",
                ("pair", "latency ms", "path", "new latency ms", "new path"),
                [
                    [
                        f"{r['hosts'][0]} ↔ {r['hosts'][1]}",
                        ms(r["latency_ms"]),
                        path_text(r["path"]),
                        ms(r["new_latency_ms"]),
                        path_text(r["new_path"]),
                    ]
                    for r in rerouted
                ],
            )
        )
        if not rerouted:
            out.append(line("No pair's shortest path crosses that link: nothing reroutes."))
    if data["pairs"] is not None:
        out.append(
            Table(
                "Host pairs over the underlay (shortest by OSPF cost)",
                ("pair", "latency ms", "path"),
                [
                    [f"{a} ↔ {b}", ms(pr["latency_ms"]), path_text(pr["path"], None)]
                    for pr in data["pairs"]
                    for a, b in [pr["hosts"]]
                ],
            )
        )
    out.append(reports.waves_line(p, reports.PAIR_TABLE_HOSTS * 4))
    return out


def _end(p: EvpnPlan, a: str, b: str) -> LinkEnd:
    return next(x for x in p.evpn_host(a).links if x.peer == b)


def status_json(plan: Plan, j: Judgement) -> dict[str, Any]:
    p = own(plan)
    hosts = []
    for hp in (p.evpn_host(h.name) for h in p.mesh.hosts if h.name in j.hosts):
        v = j.hosts[hp.name]  # (a host outside --limit was not read)
        st = v.state
        entry: dict[str, Any] = {**reports.status_host(hp, v), "links": None, "frr": None}
        if st is not None:
            entry["links"] = [
                {
                    "interface": end.name,
                    "peer": end.peer,
                    "listen_port": w.listen_port if (w := st.wg.get(end.name)) else None,
                    **{
                        k: val
                        for k, val in reports.peer_json(st, end.iface, end.iface.peers[0]).items()
                        if k != "name"
                    },
                }
                for end in hp.links
            ]
            frr = frr_of(st)
            if frr is not None:
                vni = p.mesh.evpn.vni
                entry["frr"] = {
                    "daemons": sorted(frr.daemons),
                    "bgp": [
                        {
                            "neighbor": name,
                            "address": str(addr),
                            "state": frr.bgp.get(str(addr)),
                            "evpn_routes": frr.bgp_prefixes.get(str(addr)),
                        }
                        for name, addr in hp.neighbors
                    ],
                    "bfd": [
                        {
                            "link": end.name,
                            "peer": end.peer,
                            "state": frr.bfd.get(str(end.peer_address)),
                        }
                        for end in hp.links
                    ],
                    "remote_vteps": sorted(frr.remote_vteps.get(vni, set())),
                    "macs": frr.macs.get(vni),
                }
        hosts.append(entry)
    return {
        "mode": "evpn",
        "healthy": j.healthy,
        "reasons": j.reasons,
        "route_reflectors": list(p.underlay.reflectors),
        "hosts": hosts,
        "links": j.wires,
    }


def status_report(plan: Plan, j: Judgement) -> Report:
    data = status_json(plan, j)
    rows = []
    for h in data["hosts"]:
        if not h["reachable"]:
            rows.append(reports.unreachable_row(h, 8))
            continue
        links = h["links"] or []
        up, _oldest = reports.peers_up(links)
        frr = h["frr"] or {}
        bgp = frr.get("bgp", [])
        bfd = frr.get("bfd", [])
        rows.append(
            [
                h["name"],
                "yes",
                f"{up}/{len(links)}",
                f"{sum(1 for x in bgp if x['state'] == 'Established')}/{len(bgp)}" if frr else "-",
                str(sum(x["evpn_routes"] or 0 for x in bgp)) if frr else "-",
                f"{sum(1 for x in bfd if x['state'] == 'up')}/{len(bfd)}" if frr else "-",
                str(len(frr.get("remote_vteps", []))) if frr else "-",
                str(frr.get("macs", "")) if frr else "-",
                reports.key_age(h["key_age_s"]),
                reports.boot_cell(h),
                reports.verdict_cell(h),
            ]
        )
    out: Report = [
        Table(
            f"mesh {plan.mesh.name} (evpn): hosts",
            (
                "host",
                "reachable",
                "links up",
                "BGP up",
                "EVPN routes",
                "BFD up",
                "remote VTEPs",
                "MACs",
                "key age",
                "boot",
                "verdict",
            ),
            rows,
        ),
        Table(
            "links",
            ("link", "VNI", "handshake age", "OSPF", "BFD", "MTU", "PSK", "PSK age", "problems"),
            [
                [
                    f"{w['hosts'][0]} – {w['hosts'][1]}",
                    str(w["vni"]),
                    reports.both_ends(w, "handshake_age_s", reports.age),
                    reports.both_ends(w, "ospf", lambda x: x or "-"),
                    reports.both_ends(w, "bfd", lambda x: x or "-"),
                    reports.both_ends(w, "mtu"),
                    reports.both_ends(w, "preshared_key", reports.yes_no),
                    reports.both_ends(w, "preshared_key_age_s", reports.key_age),
                    "; ".join(w["problems"]),
                ]
                for w in data["links"]
            ],
        ),
        line(f"route reflectors: {', '.join(data['route_reflectors'])}"),
    ]
    return out + reports.verdict_lines(j)
