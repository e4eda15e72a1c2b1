"""`mesh-push import`: an inventory from what the hosts run (host/found.py), written as text
with comments. Every guess is said: what could not be mapped becomes a note, a comment in
the file and a line on stderr, and makes the inventory incomplete. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import yaml

from mesh_push.core.model import Mesh
from mesh_push.host.found import Found, Iface


@dataclass
class Imported:
    text: str
    notes: list[str] = field(default_factory=list)  # what could not be mapped
    public_keys: dict[str, str] = field(default_factory=dict)  # for the state file

    @property
    def complete(self) -> bool:
        return not self.notes


@dataclass
class _Host:
    name: str
    wg: Iface | None = None
    bridge: Iface | None = None
    number: int | None = None
    endpoint: str = "dynamic"
    address: str | None = None
    said: list[str] = field(default_factory=list)  # comments on the host
    tx_off: bool = False  # every wire has TX checksum offload off (the write-up's ethtool)


def _majority(values: list[Any]) -> Any:
    return Counter(values).most_common(1)[0][0] if values else None


def _wg_of(found: Found) -> list[Iface]:
    return [i for i in found.of_kind("wireguard") if not i.marked and i.addresses]


def build(
    hosts_mesh: Mesh, raw: Mapping[str, Any], found: Mapping[str, Found], name: str
) -> Imported:
    """`raw`: the input inventory as read (its `ssh:`, `lab:` and each host's `ssh:` and
    `location:` are copied); `found`: what each host runs; `name`: the mesh's name."""
    out = Imported("")
    note = out.notes.append
    hosts = {h.name: _Host(h.name) for h in hosts_mesh.hosts}
    for n in hosts:
        if n not in found:
            note(f"{n}: not read (no answer over SSH): it is left out of links and keys")
    # The mesh's WireGuard interface: the name most hosts use.
    wg_name = _majority([i.name for f in found.values() for i in _wg_of(f)])
    for n, f in found.items():
        for i in _wg_of(f):
            if i.name == wg_name:
                hosts[n].wg = i
            else:
                note(f"{n}: WireGuard interface {i.name} is not the mesh's ({wg_name}): left alone")
        for line in f.dropped:
            note(f"{n}: {line}")
    with_wg = [h for h in hosts.values() if h.wg is not None]
    for h in hosts.values():
        if h.name in found and h.wg is None:
            note(f"{h.name}: no WireGuard interface with an address")
    port = _majority([h.wg.port for h in with_wg if h.wg])
    wg_net = _majority([h.wg.addresses[0].network for h in with_wg if h.wg])
    by_addr: dict[IPv4Address, str] = {}
    by_key: dict[str, str] = {}
    for h in with_wg:
        assert h.wg is not None
        if h.wg.port != port:
            note(f"{h.name}: {h.wg.name} listens on {h.wg.port}, the others on {port}")
        a = next((a for a in h.wg.addresses if a.network == wg_net), None)
        if a is None:
            note(f"{h.name}: {h.wg.name} has no address in {wg_net}")
            continue
        h.number = int(a.ip) - int(wg_net.network_address)
        by_addr[a.ip] = h.name
        if h.wg.public_key:
            by_key[h.wg.public_key] = h.name
    out.public_keys = {n: k for k, n in by_key.items()}
    _endpoints(hosts, found, by_key, note)
    links, bridge_name, stp, br_net, mtu = _wires(hosts, found, by_addr, wg_net, note)
    _peers_without_wires(hosts, by_key, links, wg_net, note)
    vxlan_port = _majority([p for (_a, _b), (_v, p) in links.items()])
    out.text = _text(
        name, raw, hosts, wg_name, port, wg_net, bridge_name, br_net, vxlan_port, stp, mtu,
        links, found, out.notes,
    )  # fmt: skip
    return out


def _endpoints(
    hosts: dict[str, _Host],
    found: Mapping[str, Found],
    by_key: dict[str, str],
    note: Any,
) -> None:
    """Static: some peer's file gives it an Endpoint (its address then), or, with no file to
    go by, its peers reach it at one of its own addresses. NAT: they reach it elsewhere."""
    seen: dict[str, list[str]] = {}
    configured: dict[str, list[str]] = {}
    have_files = False
    for n, f in found.items():
        h = hosts[n]
        if h.wg is None:
            continue
        files = set().union(*f.configured.values()) if f.configured else set()
        have_files = have_files or f.configured is not None
        for p in h.wg.peers:
            other = by_key.get(p.public_key)
            if other is None or p.endpoint is None:
                continue
            seen.setdefault(other, []).append(p.endpoint)
            if p.public_key in files:
                configured.setdefault(other, []).append(p.endpoint)
    for h in hosts.values():
        if h.wg is None:
            continue
        own = {str(a.ip) for i in found[h.name].interfaces.values() for a in i.addresses}
        addr = _majority([e.rsplit(":", 1)[0].strip("[]") for e in configured.get(h.name, [])])
        at = {e.rsplit(":", 1)[0].strip("[]") for e in seen.get(h.name, [])}
        if addr is not None:
            h.endpoint, h.address = "static", addr
        elif not have_files and at and at <= own:
            h.endpoint, h.address = "static", sorted(at)[0]
            h.said.append("static: judged from the address its peers reach it at (no file says)")
        elif at and not at & own:
            h.endpoint = "nat"
            h.said.append(f"nat: its peers reach it at {', '.join(sorted(at))}, not its own")
        else:
            h.endpoint = "dynamic"


def _wires(
    hosts: dict[str, _Host],
    found: Mapping[str, Found],
    by_addr: dict[IPv4Address, str],
    wg_net: IPv4Network | None,
    note: Any,
) -> tuple[dict[tuple[str, str], tuple[int, int]], str | None, Any, IPv4Network | None, int | None]:
    """Each host's bridge of VXLAN wires to other hosts, and the links they make."""
    ends: dict[tuple[str, str], list[tuple[str, int, int, int]]] = {}
    bridges: list[Iface] = []
    for n, f in found.items():
        wires = [
            i
            for i in f.of_kind("vxlan")
            if i.vxlan and i.vxlan.remote and wg_net and i.vxlan.remote in wg_net and not i.marked
        ]
        masters = Counter(i.master for i in wires if i.master)
        if not masters:
            if wires or hosts[n].wg:
                note(f"{n}: no bridge with VXLAN wires to other hosts")
            continue
        br = f.interfaces[masters.most_common(1)[0][0]]
        hosts[n].bridge = br
        bridges.append(br)
        for i in f.interfaces.values():
            if i.master == br.name and i.kind != "vxlan":
                what = "a physical NIC" if not i.kind else f"a {i.kind} interface"
                note(f"{n}: {i.name}, {what}, is a port of {br.name}: not part of the plan")
        hosts[n].tx_off = bool(wires) and all(i.tx_checksum == "off" for i in wires)
        for i in wires:
            assert i.vxlan is not None and i.vxlan.remote is not None
            peer = by_addr.get(i.vxlan.remote)
            if peer is None:
                note(f"{n}: VXLAN {i.name} goes to {i.vxlan.remote}, which is no host's")
                continue
            if i.master != br.name:
                note(f"{n}: VXLAN {i.name} to {peer} is not a port of {br.name}")
                continue
            key = (n, peer) if n < peer else (peer, n)
            ends.setdefault(key, []).append((n, i.vxlan.vni, i.vxlan.port, i.mtu))
    links: dict[tuple[str, str], tuple[int, int]] = {}
    for (a, b), got in sorted(ends.items()):
        if len(got) == 1:
            note(f"{got[0][0]}: a VXLAN (id {got[0][1]}) to {b if got[0][0] == a else a}, "
                 "whose end there is missing")  # fmt: skip
            continue
        if len({(v, p) for _n, v, p, _m in got}) > 1:
            note(f"{a} and {b} disagree on their VXLAN: "
                 + ", ".join(f"{n} id {v} port {p}" for n, v, p, _m in got))  # fmt: skip
            continue
        if len({m for *_x, m in got}) > 1:
            note(f"{a} and {b} disagree on their VXLAN's MTU: "
                 + ", ".join(f"{n} {m}" for n, _v, _p, m in got))  # fmt: skip
        links[(a, b)] = got[0][1], got[0][2]
    name = _majority([b.name for b in bridges])
    stp = _majority([b.stp for b in bridges if b.name == name and b.stp])
    if stp is not None and not stp.on:
        note(f"STP is off on {name}: mesh-push turns it on (ports relearn for 2 × forward_delay)")
    br_net = _majority([b.addresses[0].network for b in bridges if b.addresses])
    mtu = _majority([b.mtu for b in bridges])
    for h in hosts.values():
        hb = h.bridge
        if hb is None or br_net is None:
            continue
        if hb.name != name:
            note(f"{h.name}: its bridge is {hb.name}, the others' {name}")
        ba = next((x for x in hb.addresses if x.network == br_net), None)
        number = None if ba is None else int(ba.ip) - int(br_net.network_address)
        if h.number is not None and number != h.number:
            note(f"{h.name}: bridge address {ba} is not number {h.number} in {br_net}, "
                 "as its WireGuard address is (mesh-push numbers a host once)")  # fmt: skip
    return links, name, stp, br_net, mtu


def _peers_without_wires(
    hosts: dict[str, _Host],
    by_key: dict[str, str],
    links: dict[tuple[str, str], tuple[int, int]],
    wg_net: IPv4Network | None,
    note: Any,
) -> None:
    for h in hosts.values():
        if h.wg is None:
            continue
        for p in h.wg.peers:
            other = by_key.get(p.public_key)
            if other is None:
                note(f"{h.name}: peer {p.public_key} of {h.wg.name} is no host of the inventory")
                continue
            if tuple(sorted((h.name, other))) not in links:
                note(f"{h.name}: {other} is a WireGuard peer with no VXLAN wire between them: "
                     "no link (up would remove the peer)")  # fmt: skip
            wide = [a for a in p.allowed_ips if not a.endswith("/32")]
            if wide:
                note(f"{h.name}: peer {other} is allowed {', '.join(wide)}: the plan allows its "
                     f"address in {wg_net} only (/32)")  # fmt: skip


def _num(x: float) -> int | float:
    return int(x) if x == int(x) else x


def _text(
    name: str,
    raw: Mapping[str, Any],
    hosts: dict[str, _Host],
    wg_name: str | None,
    port: int | None,
    wg_net: IPv4Network | None,
    bridge: str | None,
    br_net: IPv4Network | None,
    vxlan_port: int | None,
    stp: Any,
    mtu: int | None,
    links: dict[tuple[str, str], tuple[int, int]],
    found: Mapping[str, Found],
    notes: list[str],
) -> str:
    def flow(value: Any) -> str:
        # In a list and out again: a plain scalar comes without YAML's end-of-document mark.
        return yaml.safe_dump([value], default_flow_style=True, width=1000).strip()[1:-1]

    lines = [
        "# Imported by `mesh-push import` from what the hosts run (docs/adopt.md). Check it with",
        "# `mesh-push plan`, then take the network over in place: `mesh-push up --adopt --check`,",
        "# then `mesh-push up --adopt`.",
    ]
    if notes:
        lines.append("#")
        lines.append("# Not mapped: INCOMPLETE until each of these is settled by hand:")
        lines += [f"#   - {n}" for n in notes]
    lines += ["mesh:", f"  name: {flow(name)}"]
    if wg_name:
        lines.append(
            f"  wireguard: {flow({'interface': wg_name, 'port': port, 'network': str(wg_net)})}"
        )
    if bridge:
        lines.append(f"  bridge: {flow({'name': bridge, 'network': str(br_net)})}")
    if vxlan_port:
        lines.append(f"  vxlan_port: {vxlan_port}")
    if mtu is not None:
        if mtu >= 1500:
            lines.append(
                "  # The bridge's MTU is kept; WireGuard's becomes bridge + 50 (VXLAN fits whole)."
            )
            lines.append(f"  mtu: {flow({'policy': 'fragment', 'bridge': mtu})}")
        else:
            lines.append(f"  mtu: {flow({'policy': 'clamp', 'bridge': mtu})}")
    if stp is not None:
        lines.append(
            "  stp: " + flow({"hello": _num(stp.hello), "forward_delay": _num(stp.forward_delay),
                              "max_age": _num(stp.max_age), "ageing": _num(stp.ageing)})
        )  # fmt: skip
    wired = [h for h in hosts.values() if h.bridge is not None]
    all_off = bool(wired) and all(h.tx_off for h in wired)
    if all_off:
        lines.append("  tx_checksum: false  # TX checksum offload off on the wires, as found")
    lines.append(
        "  keys: host  # each host keeps its key pair: up --adopt moves it to mesh-push's file"
    )
    for top in ("lab", "ssh"):
        if top in raw:
            lines += ["", yaml.safe_dump({top: raw[top]}, sort_keys=False).rstrip()]
    lines += ["", "hosts:"]
    for h in hosts.values():
        body: dict[str, Any] = {}
        if h.number is not None:
            body["number"] = h.number
        given = raw.get("hosts", {}).get(h.name) or {}
        if "location" in given:
            body["location"] = given["location"]
        body["endpoint"] = h.endpoint
        if h.address:
            body["address"] = h.address
        if h.tx_off and not all_off:
            body["tx_checksum"] = False
        if "ssh" in given:
            body["ssh"] = given["ssh"]
        f = found.get(h.name)
        said = list(h.said)
        if h.wg is not None and h.wg.public_key:
            # In the state file (public keys only), as after any `up`: a `public_key` field
            # here would pin it, and a rotation would then be undone by the next plan.
            said.append(f"public key {h.wg.public_key} (kept in the state file)")
        if f is not None and wg_name and f"wg-quick@{wg_name}.service" in f.units:
            said.append(
                f"its {wg_name} is made by wg-quick@{wg_name}: up --adopt disables that unit"
            )
        lines += [f"  # {s}" for s in said]
        lines.append(f"  {flow(h.name)}: {flow(body)}")
    lines += ["", "links:"]
    if not links:
        lines[-1] = "links: []"
    for (a, b), (vni, _p) in sorted(links.items(), key=lambda kv: kv[1]):
        lines.append(f"  - {flow({'hosts': [a, b], 'vni': vni})}")
    return "\n".join(lines) + "\n"
