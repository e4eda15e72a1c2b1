"""The inventory's `hosts`: each host's endpoint, number, SSH target and key, and the rules
between them (numbers, addresses, jump hosts)."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Any

from mesh_push.core.model import Become, EndpointKind, Host, Mesh, SshTarget
from mesh_push.core.problems import Problems, YamlPath
from mesh_push.core.section import MISSING, Section, kind
from mesh_push.core.values import (
    endpoint_address,
    ifname_problem,
    ip_of,
    path_problem,
    public_key_problem,
    quoted,
    ssh_address_problem,
    text_problem,
    user_problem,
)
from mesh_push.host import boot

RESERVED_NAMES = {"lo", "all", "default", "br", "dev"}
LOCATION_MAX = 200
MAX_JUMPS = 8  # jump hosts before a host: ssh.py follows no more
BECOME: tuple[Become, ...] = ("sudo", "none")


def path_field(sec: Section, key: str) -> str | None:
    value = sec.get(key, str, None, "a path")
    if isinstance(value, str) and (why := path_problem(value)):
        sec.problems.add((*sec.path, key), why)
        return None
    return value


def user_field(sec: Section, key: str) -> str | None:
    value = sec.get(key, str, None, "a user name")
    if isinstance(value, str) and (why := user_problem(value)):
        sec.problems.add((*sec.path, key), f"{why}, not {quoted(value)}")
        return None
    return value


def read_hosts(
    top: Section,
    problems: Problems,
    own_ifaces: set[str],
    networks: list[IPv4Network],
    tx_checksum: bool | None = None,
    boot_setting: str = boot.AUTO,
) -> list[Host]:
    """`tx_checksum`, `boot_setting`: the mesh's, for hosts that do not say."""
    raw = top.raw("hosts")
    path: YamlPath = ("hosts",)
    if raw is MISSING or raw is None:
        return []
    if not isinstance(raw, dict):
        problems.add(path, f"must be a mapping of host name to host settings, not {kind(raw)}")
        return []
    if not raw:
        problems.add(path, "lists no hosts")
        return []

    pending: list[tuple[str, Section, dict[str, Any]]] = []
    for name, body in raw.items():
        hpath: YamlPath = (*path, name)
        if not isinstance(name, str):
            problems.add(hpath, "a host name must be a string")
            continue
        if why := ifname_problem(name):
            problems.add(hpath, f"host name {why} (wires are named after hosts)")
        elif name in own_ifaces or name in RESERVED_NAMES:
            problems.add(hpath, f"host name {name!r} collides with an interface of the mesh")
        sec = Section(body if body is not None else {}, hpath, problems)
        pending.append((name, sec, _host_fields(sec, problems)))

    used: dict[int, str] = {}
    for name, sec, f in pending:
        n = f["number"]
        if n is None:
            continue
        if n in used:
            problems.add((*sec.path, "number"), f"number {n} is already {used[n]}'s")
        used[n] = name
    smallest = min(networks, key=lambda net: net.num_addresses, default=None)
    limit = smallest.num_addresses - 2 if smallest else 254
    free = (n for n in range(1, limit + 1) if n not in used)

    hosts: list[Host] = []
    seen_addr: dict[str, str] = {}
    for name, sec, f in pending:
        number = f["number"]
        if number is None:
            number = next(free, None)
            if number is None:
                problems.add(sec.path, f"no free host number left in the networks (max {limit})")
                continue
        elif number > limit:
            problems.add(
                (*sec.path, "number"),
                f"{number} does not fit the network {smallest}: host numbers are 1..{limit}",
            )
        addr = f["address"]
        if addr is not None:
            # DNS names are case-insensitive; a name and an IP are not compared (no lookups).
            same = addr.lower() if isinstance(addr, str) else str(addr)
            if same in seen_addr:
                problems.add((*sec.path, "address"), f"same address as {seen_addr[same]}")
            seen_addr[same] = name
        endpoint_ip = None if isinstance(addr, str) else addr
        # An SSH address on the mesh is reached over the mesh: only through a host of it
        # (docs/hosts.md#home), never by the controller, which is not on it.
        ssh_ip = ip_of(f["ssh"].address or "") if f["ssh"].via is None else None
        for key, ip in (("address", endpoint_ip), ("ssh.address", ssh_ip)):
            for net in networks:
                if ip is not None and ip in net:
                    problems.add((*sec.path, *key.split(".")), f"{ip} lies inside the mesh's {net}")
        hosts.append(
            Host(
                name=name,
                endpoint=f["endpoint"] or "static",
                address=addr,
                number=number,
                ssh=f["ssh"],
                public_key=f["public_key"],
                location=f["location"],
                transit=f["transit"],
                tx_checksum=tx_checksum if f["tx_checksum"] is None else f["tx_checksum"],
                boot=f["boot"] or boot_setting,
            )
        )

    names = {h.name for h in hosts}
    for h in hosts:
        if h.ssh.via is not None and h.ssh.via not in names:
            problems.add(("hosts", h.name, "ssh", "via"), f"unknown host {h.ssh.via!r}")
    via = {h.name: h.ssh.via for h in hosts}
    for cycle in _via_cycles(via):
        problems.add(
            ("hosts", cycle[0], "ssh", "via"), "jump hosts form a cycle: " + " → ".join(cycle)
        )
    for h in hosts:
        chain = [h.name]
        nxt = via.get(h.name)
        while nxt is not None and nxt in via and nxt not in chain and len(chain) <= MAX_JUMPS:
            chain.append(nxt)
            nxt = via.get(nxt)
        if len(chain) > MAX_JUMPS and nxt is not None and nxt in via and nxt not in chain:
            problems.add(
                ("hosts", h.name, "ssh", "via"),
                f"{h.name} is more than {MAX_JUMPS} jump hosts away "
                f"({' → '.join(chain)} → {nxt} …): at most {MAX_JUMPS}",
            )
    return hosts


def _host_fields(sec: Section, problems: Problems) -> dict[str, Any]:
    endpoint: EndpointKind | None = sec.choice("endpoint", ("static", "dynamic", "nat"))
    addr_raw = sec.get("address", str, None, "an IP address or a DNS name")
    number = sec.int_in("number", 1, 65534, None)
    key: str | None = sec.get("public_key", str, None)
    location: str | None = sec.get("location", str, None)
    if isinstance(location, str) and (why := text_problem(location, LOCATION_MAX)):
        problems.add((*sec.path, "location"), why)
        location = None
    transit: bool = sec.get("transit", bool, True, "true or false")
    tx: bool | None = sec.get("tx_checksum", bool, None, "true or false")
    boot_setting: str | None = sec.choice("boot", boot.SETTINGS, None)
    s = sec.sub("ssh")
    ssh_address: str | None = s.get("address", str, None, "an IP address or a DNS name")
    if isinstance(ssh_address, str) and (why := ssh_address_problem(ssh_address)):
        problems.add((*s.path, "address"), why)
        ssh_address = None
    ssh = SshTarget(
        address=ssh_address,
        user=user_field(s, "user"),
        port=s.int_in("port", 1, 65535, None),
        identity=path_field(s, "identity"),
        via=s.get("via", str, None),
        become=s.choice("become", BECOME, None),
    )
    s.done()
    sec.done()
    addr: IPv4Address | IPv6Address | str | None = None
    if isinstance(addr_raw, str):
        addr, why = endpoint_address(addr_raw)
        if why:
            problems.add((*sec.path, "address"), why)
        elif endpoint in ("dynamic", "nat"):
            problems.add(
                (*sec.path, "address"),
                f"a {endpoint} host has no fixed endpoint address; drop it or make it static",
            )
            addr = None
    elif endpoint == "static" and sec.data.get("address") is None:
        problems.add((*sec.path, "address"), "a static host needs its public endpoint address")
    if isinstance(key, str) and (why := public_key_problem(key)):
        problems.add((*sec.path, "public_key"), why)
        key = None
    if ssh.via is not None and ssh.via == sec.path[-1]:
        problems.add((*sec.path, "ssh", "via"), "a host cannot be its own jump host")
        ssh = dataclasses.replace(ssh, via=None)
    return {
        "endpoint": endpoint,
        "address": addr,
        "number": number,
        "public_key": key,
        "location": location,
        "transit": transit,
        "tx_checksum": tx,
        "boot": boot_setting,
        "ssh": ssh,
    }


def _via_cycles(via: dict[str, str | None]) -> Iterator[list[str]]:
    reported: set[str] = set()
    for start in via:
        chain = [start]
        nxt = via.get(start)
        while nxt is not None and nxt in via and nxt not in chain:
            chain.append(nxt)
            nxt = via.get(nxt)
        if nxt is not None and nxt in chain:
            cycle = chain[chain.index(nxt) :]
            key = min(cycle)
            if key not in reported:
                reported.add(key)
                yield [*cycle, nxt]


# One link as read: its path, hosts, vni, latency_ms, cost and psk (None: mesh.psk).


# Addresses that stand for public ones in examples (RFC 5737, RFC 3849).
DOCUMENTATION = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)


def warnings(mesh: Mesh) -> list[str]:
    """What is valid but most likely a mistake on real hosts (the lab's own addresses are
    private by design): a static host whose address only its own network can reach."""
    if mesh.lab is not None:
        return []
    out = []
    for h in mesh.hosts:
        a = h.address
        if h.endpoint != "static" or a is None or isinstance(a, str):
            continue
        if (a.is_private or a.is_link_local) and not any(a in n for n in DOCUMENTATION):
            out.append(
                f"hosts.{h.name}.address {a} is not a public address: only hosts on its own "
                "network can dial it (fine if every peer is there; a host at home behind NAT "
                "is `endpoint: nat`, see docs/hosts.md)"
            )
    return out
