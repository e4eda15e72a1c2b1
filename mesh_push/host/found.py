"""What `mesh-push import` found on a host (templates/programs/import.sh.j2): its interfaces,
their addresses, WireGuard's public fields and the wg-quick units enabled at boot. Everything
here came from a host: names, addresses and keys are checked, and what does not check out is
dropped and said (`Found.dropped`), never used. Pure."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from mesh_push.core.values import ifname_problem, public_key_problem, quoted
from mesh_push.host.state import sections


@dataclass(frozen=True)
class WgPeer:
    public_key: str
    allowed_ips: tuple[str, ...]
    endpoint: str | None  # ADDRESS:PORT as the host has it (configured, or roamed to)
    keepalive: int | None


@dataclass(frozen=True)
class Vxlan:
    vni: int
    remote: IPv4Address | None
    local: IPv4Address | None
    port: int


@dataclass(frozen=True)
class Stp:
    on: bool
    priority: int
    hello: float  # seconds
    forward_delay: float
    max_age: float
    ageing: float


@dataclass
class Iface:
    name: str
    kind: str  # ip's info_kind ("" for a plain device: a NIC)
    mtu: int
    master: str | None
    marked: bool  # carries a mesh-push mark (some mesh's)
    addresses: list[IPv4Interface] = field(default_factory=list)
    vxlan: Vxlan | None = None
    stp: Stp | None = None
    public_key: str | None = None  # WireGuard
    port: int | None = None
    peers: list[WgPeer] = field(default_factory=list)
    tx_checksum: str | None = None  # a VXLAN's, as ethtool says it (on/off); None: not read


@dataclass
class Found:
    interfaces: dict[str, Iface]
    systemd: bool
    units: list[str]  # wg-quick@… enabled at boot
    dropped: list[str]  # what the host said that could not be used, and why
    # From the WireGuard files in /etc/wireguard: interface → the peers with an Endpoint set
    # there (not one learned when the peer dialled in). None: no file says.
    configured: dict[str, set[str]] | None = None

    def of_kind(self, kind: str) -> list[Iface]:
        return [i for i in self.interfaces.values() if i.kind == kind]


def parse(text: str) -> Found:
    secs = sections(text)
    dropped: list[str] = []
    ifaces = _interfaces(secs.get("ip", ""), dropped)
    _wireguard(secs, ifaces, dropped)
    for line in secs.get("tx-checksum", "").splitlines():
        name, _, value = line.partition("\t")
        if name in ifaces and value.strip() in ("on", "off"):
            ifaces[name].tx_checksum = value.strip()
    units = [u for u in secs.get("units", "").split() if _unit_ok(u)]
    systemd = "systemd=yes" in secs.get("import", "").split()
    return Found(ifaces, systemd, units, dropped, _configured(secs.get("conf", "")))


def _configured(text: str) -> dict[str, set[str]] | None:
    """`FILE:LINE` rows of [Peer], PublicKey and Endpoint lines (import.sh.j2 greps only
    those: never a private or pre-shared key): per file, the peers given an Endpoint."""
    out: dict[str, set[str]] = {}
    key: str | None = None
    for row in text.splitlines():
        file, _, line = row.partition(":")
        name = file.rsplit("/", 1)[-1].removesuffix(".conf")
        k, _, v = line.partition("=")
        k, v = k.strip().lower(), v.strip()
        if k == "[peer]":
            key = None
        elif k == "publickey" and not public_key_problem(v):
            key = v
        elif k == "endpoint" and key is not None:
            out.setdefault(name, set()).add(key)
    return out if text.strip() else None


def _unit_ok(unit: str) -> bool:
    name = unit.removeprefix("wg-quick@").removesuffix(".service")
    return unit.startswith("wg-quick@") and ifname_problem(name) is None


def _interfaces(text: str, dropped: list[str]) -> dict[str, Iface]:
    try:
        data = json.loads(text or "[]")
    except ValueError:
        dropped.append("`ip -j -d addr show` did not print JSON")
        return {}
    out: dict[str, Iface] = {}
    for d in data if isinstance(data, list) else []:
        if not isinstance(d, dict):
            continue
        name = d.get("ifname")
        if not isinstance(name, str) or ifname_problem(name):
            dropped.append(f"an interface named {quoted(str(name))}: not a usable name")
            continue
        info = _dict(d.get("linkinfo"))
        kind = _str(info.get("info_kind"))
        master = _str(d.get("master")) or None
        alias = _str(d.get("ifalias"))
        mtu = d["mtu"] if isinstance(d.get("mtu"), int) else 0
        i = Iface(name, kind, mtu, master, alias == "mesh-push" or alias.startswith("mesh-push:"))
        for a in d.get("addr_info") or []:
            if isinstance(a, dict) and a.get("family") == "inet":
                try:
                    i.addresses.append(IPv4Interface(f"{a.get('local')}/{a.get('prefixlen')}"))
                except ValueError:
                    dropped.append(f"{name}: an address that is not one")
        data_ = _dict(info.get("info_data"))
        try:
            if kind == "vxlan":
                i.vxlan = _vxlan(data_)
            elif kind == "bridge":
                i.stp = _stp(data_)
        except (KeyError, TypeError, ValueError):
            dropped.append(f"{name}: its {kind} settings could not be read")
        out[name] = i
    return out


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _ip(value: Any) -> IPv4Address | None:
    return IPv4Address(value) if isinstance(value, str) else None


def _vxlan(d: dict[str, Any]) -> Vxlan:
    return Vxlan(int(d["id"]), _ip(d.get("remote")), _ip(d.get("local")), int(d.get("port", 8472)))


def _stp(d: dict[str, Any]) -> Stp:
    # ip prints the timers in hundredths of a second.
    return Stp(
        int(d["stp_state"]) != 0,
        int(d["priority"]),
        int(d["hello_time"]) / 100,
        int(d["forward_delay"]) / 100,
        int(d["max_age"]) / 100,
        int(d.get("ageing_time", 30000)) / 100,
    )


def _endpoint(text: str) -> str | None:
    """`ADDRESS:PORT` (`[ADDRESS]:PORT` for IPv6) as wg prints it, in its canonical form."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    try:
        ip = ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        return None
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def _wireguard(secs: dict[str, str], ifaces: dict[str, Iface], dropped: list[str]) -> None:
    def iface(name: str) -> Iface | None:
        i = ifaces.get(name)
        return i if i is not None and i.kind == "wireguard" else None

    # What `wg` knows is WireGuard, whatever ip calls it (wireguard-go's is a "tun").
    for row in _rows(secs.get("wg-public-key", "")):
        if len(row) == 2 and row[0] in ifaces and not public_key_problem(row[1]):
            ifaces[row[0]].kind = "wireguard"
            ifaces[row[0]].public_key = row[1]
    for row in _rows(secs.get("wg-listen-port", "")):
        if len(row) == 2 and (i := iface(row[0])) and row[1].isdigit() and int(row[1]) < 65536:
            i.port = int(row[1])
    fields: dict[str, dict[tuple[str, str], list[str]]] = {}
    for f in ("allowed-ips", "endpoints", "persistent-keepalive"):
        got = fields[f] = {}
        current: str | None = None
        for row in _rows(secs.get(f"wg-{f}", "")):
            # Some versions of wg name the interface on its first peer's line only.
            if iface(row[0]):
                current, row = row[0], row[1:]
            if current is not None and row and not public_key_problem(row[0]):
                got[(current, row[0])] = row[1:]
    for (name, key), allowed in fields["allowed-ips"].items():
        ips = []
        for a in allowed:
            try:
                ips.append(str(ipaddress.ip_network(a, strict=False)))
            except ValueError:
                if a != "(none)":
                    dropped.append(f"{name}: peer {key}: allowed-ips {quoted(a)} is not a network")
        endpoint = (fields["endpoints"].get((name, key)) or ["(none)"])[0]
        if endpoint != "(none)" and _endpoint(endpoint) is None:
            dropped.append(f"{name}: peer {key}: endpoint {quoted(endpoint)} is not ADDRESS:PORT")
            endpoint = "(none)"
        keep = (fields["persistent-keepalive"].get((name, key)) or ["off"])[0]
        i = ifaces[name]
        i.peers.append(
            WgPeer(
                key,
                tuple(ips),
                None if endpoint == "(none)" else endpoint,
                int(keep) if keep.isdigit() else None,
            )
        )
