"""What `plan` and `status` show of an evpn mesh (report.py hands over): the underlay path
of every pair instead of a tree, and per host its links, BGP sessions, BFD and EVPN."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from mesh_push.modes.evpn import underlay as evpn
from mesh_push.modes.plan import Plan
from mesh_push.views.report import (
    PAIR_TABLE_HOSTS,
    _age,
    _ms,
    _name,
    _path_text,
    _table,
    both_ends,
    safe_text,
    show_verdict,
)


def plan_json(p: Plan, all_pairs: bool = False) -> dict[str, Any]:
    """evpn mode's part of the plan: reflectors, each host's links, every pair's path."""
    u = p.underlay
    assert u is not None
    m = p.mesh
    pairs = None
    if all_pairs or len(u.hosts) <= PAIR_TABLE_HOSTS:
        pairs = []
        for a, b, path in u.pairs():
            pairs.append({"hosts": [a, b], "path": path, "latency_ms": u.latency_of(path)})
    total = sum(u.latency_of(path) for _a, _b, path in u.pairs())
    return {
        "asn": m.evpn.asn,
        "vni": m.evpn.vni,
        "vxlan_interface": m.evpn_vxlan,
        "frr_pathspace": m.frr_pathspace,
        "route_reflectors": list(u.reflectors),
        "hosts": [
            {
                "name": hp.name,
                "vtep": str(hp.evpn.vtep),
                "route_reflector": hp.evpn.reflector,
                "bgp_neighbors": [n for n, _addr in hp.evpn.neighbors],
                "links": [
                    {
                        "interface": end.name,
                        "peer": end.peer,
                        "port": end.port,
                        "address": str(end.address),
                        "endpoint": end.endpoint,
                        "keepalive": end.keepalive,
                        "ospf_cost": end.cost,
                    }
                    for end in hp.evpn.links
                ],
            }
            for hp in p.hosts
            if hp.evpn is not None
        ],
        "total_latency_ms": total,
        "pairs": pairs,
    }


def show_plan(p: Plan, out: Console, all_pairs: bool = False) -> None:
    data = plan_json(p, all_pairs)
    m = p.mesh
    out.print(
        f"[bold]mesh {_name(m.name)}[/] (mode evpn): {len(m.hosts)} hosts, {len(m.links)} links; "
        f"WireGuard {_name(m.wg_interface)}-VNI per link, port {m.wg_port} + VNI; "
        f"VTEPs in {m.wg_network}; bridge {_name(m.bridge)} {m.bridge_network}; "
        f"VXLAN {_name(data['vxlan_interface'])} VNI {m.evpn.vni} port {m.vxlan_port}; "
        f"MTU {m.mtu.policy}: wg {m.mtu.wireguard}, bridge {m.mtu.bridge}; BGP AS {m.evpn.asn}"
    )
    _table(
        out,
        "Hosts",
        ("host", "endpoint", "wave", "VTEP", "bridge address", "BGP", "links"),
        [
            [
                hp.name,
                hp.host.endpoint + (f" {hp.host.address}" if hp.host.address else ""),
                str(hp.wave + 1),
                str(hp.evpn.vtep),
                str(hp.bridge_address),
                "route reflector" if hp.evpn.reflector else "client",
                ", ".join(f"{e.name}→{e.peer}" for e in hp.evpn.links),
            ]
            for hp in p.hosts
            if hp.evpn is not None
        ],
    )
    _table(
        out,
        "Links (one WireGuard interface at each end, routed by OSPF)",
        ("link", "VNI", "latency ms", "OSPF cost", "port", "addresses"),
        [
            [
                f"{lk.a} – {lk.b}",
                str(lk.vni),
                "" if lk.latency_ms is None else f"{lk.latency_ms:g}",
                str(end.cost),
                str(end.port),
                f"{end.address.network}",
            ]
            for lk in m.links
            for end in [_end(p, lk.a, lk.b)]
        ],
    )
    out.print(
        f"Route reflectors: {', '.join(_name(x) for x in data['route_reflectors'])}; "
        f"total pair latency over the shortest paths {data['total_latency_ms']:g} ms"
    )
    if data["pairs"] is not None:
        _table(
            out,
            "Host pairs over the underlay (shortest by OSPF cost)",
            ("pair", "latency ms", "path"),
            [
                [f"{a} ↔ {b}", _ms(pr["latency_ms"]), _path_text(pr["path"], None)]
                for pr in data["pairs"]
                for a, b in [pr["hosts"]]
            ],
        )
    waves = "  then  ".join(", ".join(_name(x) for x in w) for w in p.waves)
    out.print("Push waves: " + waves)


def _end(p: Plan, a: str, b: str) -> evpn.LinkEnd:
    e = p.host(a).evpn
    assert e is not None
    return next(x for x in e.links if x.peer == b)


def status_json(p: Plan, j: Any) -> dict[str, Any]:
    hosts = []
    for hp in p.hosts:
        v = j.hosts[hp.name]
        st = v.state
        entry: dict[str, Any] = {
            "name": hp.name,
            "reachable": v.reachable,
            "healthy": v.healthy,
            "reasons": v.reasons,
            "links": None,
            "frr": None,
        }
        if st is not None and hp.evpn is not None:
            entry["links"] = [
                {
                    "interface": end.name,
                    "peer": end.peer,
                    "public_key": end.public_key,
                    "listen_port": w.listen_port if (w := st.wg_ifs.get(end.name)) else None,
                    "latest_handshake_age_s": st.link_handshake_age(end.name, end.public_key),
                    "transfer_rx_tx": w.transfer.get(end.public_key or "") if w else None,
                }
                for end in hp.evpn.links
            ]
            if st.frr is not None:
                vni = p.mesh.evpn.vni
                entry["frr"] = {
                    "daemons": sorted(st.frr.daemons),
                    "bgp": [
                        {
                            "neighbor": name,
                            "address": str(addr),
                            "state": st.frr.bgp.get(str(addr)),
                            "evpn_routes": st.frr.bgp_prefixes.get(str(addr)),
                        }
                        for name, addr in hp.evpn.neighbors
                    ],
                    "bfd": [
                        {
                            "link": end.name,
                            "peer": end.peer,
                            "state": st.frr.bfd.get(str(end.peer_address)),
                        }
                        for end in hp.evpn.links
                    ],
                    "remote_vteps": sorted(st.frr.remote_vteps.get(vni, set())),
                    "macs": st.frr.macs.get(vni),
                }
        hosts.append(entry)
    return {
        "mode": "evpn",
        "healthy": j.healthy,
        "reasons": j.reasons,
        "route_reflectors": list(p.underlay.reflectors) if p.underlay else [],
        "hosts": hosts,
        "links": j.wires,
    }


def show_status(p: Plan, j: Any, out: Console) -> None:
    data = status_json(p, j)
    hosts = Table(title=f"mesh {_name(p.mesh.name)} (evpn): hosts", title_justify="left")
    for col in ("host", "reachable", "links up", "BGP up", "EVPN routes", "BFD up",
                "remote VTEPs", "MACs", "verdict"):  # fmt: skip
        hosts.add_column(col)
    for h in data["hosts"]:
        if not h["reachable"]:
            why = safe_text("; ".join(h["reasons"]))
            hosts.add_row(_name(h["name"]), "[red]no[/]", *[""] * 6, f"[yellow]unknown[/]: {why}")
            continue
        links = h["links"] or []
        up = [x for x in links if x["latest_handshake_age_s"] is not None
              and x["latest_handshake_age_s"] <= 180]  # fmt: skip
        frr = h["frr"] or {}
        bgp = frr.get("bgp", [])
        bfd = frr.get("bfd", [])
        verdict = (
            "[green]healthy[/]"
            if h["healthy"]
            else "[red]unhealthy[/]: " + safe_text("; ".join(h["reasons"]))
        )
        hosts.add_row(
            _name(h["name"]),
            "yes",
            f"{len(up)}/{len(links)}",
            f"{sum(1 for x in bgp if x['state'] == 'Established')}/{len(bgp)}" if frr else "-",
            str(sum(x["evpn_routes"] or 0 for x in bgp)) if frr else "-",
            f"{sum(1 for x in bfd if x['state'] == 'up')}/{len(bfd)}" if frr else "-",
            str(len(frr.get("remote_vteps", []))) if frr else "-",
            _name(frr.get("macs", "")) if frr else "-",
            verdict,
        )
    out.print(hosts)
    links = Table(title="links", title_justify="left")
    for col in ("link", "VNI", "handshake age", "OSPF", "BFD", "MTU", "problems"):
        links.add_column(col)
    for w in data["links"]:
        a, b = w["hosts"]

        def both(key: str, fmt: Any = str, w: Any = w) -> str:
            return both_ends(w, key, fmt)

        links.add_row(
            f"{_name(a)} – {_name(b)}",
            str(w["vni"]),
            both("handshake_age_s", _age),
            both("ospf", lambda x: x or "-"),
            both("bfd", lambda x: x or "-"),
            both("mtu"),
            safe_text("; ".join(w["problems"])),
        )
    out.print(links)
    rr = ", ".join(_name(x) for x in data["route_reflectors"])
    out.print(f"route reflectors: {rr}")
    show_verdict(out, data)
