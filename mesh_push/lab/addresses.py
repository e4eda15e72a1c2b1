"""Pure planning of a lab: names and addresses of every namespace, link and sshd. No I/O.

Layout of `lab.network` (default 198.18.0.0/23): the first half is the "wan", a flat
segment on one bridge where the controller, static and dynamic hosts and the NAT routers
live; the second half is cut into LANs: a /30 per NAT host (router .1, host .2), or one per
list of `lab.lans`, the smallest block that holds its router and hosts (.2, .3, ...).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Literal

from mesh_push.core.model import LabKind, LabLogin, Mesh
from mesh_push.inventory.schema import LAB_KINDS, LAB_LOGINS
from mesh_push.lab.errors import LabError

Role = Literal["host", "router"]

# Interfaces are named <lab>-<suffix>; a lab name is at most 6 bytes, so every suffix
# below keeps names within the kernel's 15 bytes (IFNAMSIZ - 1).
IF_UNDERLAY = "eth"  # a node's underlay veth: on the wan, or on its NAT LAN
IF_LAN = "lan"  # a router's LAN side
IF_SWITCH = "sw"  # a shared LAN's switch, with ports IF_SWITCH_UP and "lN" (its N-th host)
IF_SWITCH_UP = "up"  # the switch's port to the router
IF_BRIDGE = "br"  # the wan bridge
IF_CONTROLLER = "ctl"  # the only thing in the root namespace
IF_CONTROLLER_PEER = "pc"
IF_GUEST_BRIDGE = "vbr"  # vm kind: in a host's namespace, joins its underlay veth and tap
IF_TAP = "tap"  # vm kind: the tap QEMU opens, the guest's eth0
MAX_PORTS = 9999  # <lab>-p9999 is 12 bytes
LAN_PREFIX = 30
SSH_PORT = 22


def ifname(lab: str, suffix: str) -> str:
    name = f"{lab}-{suffix}"
    assert len(name.encode()) <= 15, name
    return name


def ns_prefix(lab: str) -> str:
    # Lab names have no '-', so "ab-" never matches the namespaces of a lab "abc".
    return f"{lab}-"


def wan_ns(lab: str) -> str:
    return f"{lab}-wan"


def router_alias(host: str) -> str:
    return f"{host}.router"


@dataclass(frozen=True)
class Node:
    """A namespace with its own keeper process and sshd: an inventory host or a NAT router."""

    alias: str  # ssh alias, and the node's hostname
    role: Role
    kind: str  # static / dynamic / nat for hosts, "router" for routers
    ns: str
    address: IPv4Address  # where its sshd listens
    prefixlen: int
    gateway: IPv4Address | None  # default route (NAT hosts only)
    wan_address: IPv4Address  # the address the wan sees for it (its router's, behind NAT)
    jump: str | None  # alias of the bastion the controller goes through
    port: str | None  # its veth peer on the wan bridge (None behind NAT)
    lan: IPv4Network | None = None  # routers and NAT hosts: their LAN
    dns_name: str | None = None  # a static host known by name: every lab host resolves it
    init: str = "systemd"  # a vm lab's guest: the init system it boots (`lab.init`)
    arch: str = "amd64"  # a vm lab's guest: its CPU architecture (`lab.arch`)

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "role": self.role,
            "kind": self.kind,
            "ns": self.ns,
            "address": str(self.address),
            "prefixlen": self.prefixlen,
            "gateway": str(self.gateway) if self.gateway else None,
            "wan_address": str(self.wan_address),
            "jump": self.jump,
            "port": self.port,
            "lan": str(self.lan) if self.lan else None,
            "dns_name": self.dns_name,
            "init": self.init,
            "arch": self.arch,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Node:
        return Node(
            alias=str(d["alias"]),
            role="router" if d["role"] == "router" else "host",
            kind=str(d["kind"]),
            ns=str(d["ns"]),
            address=IPv4Address(d["address"]),
            prefixlen=int(d["prefixlen"]),
            gateway=IPv4Address(d["gateway"]) if d.get("gateway") else None,
            wan_address=IPv4Address(d["wan_address"]),
            jump=d.get("jump"),
            port=d.get("port"),
            lan=IPv4Network(d["lan"]) if d.get("lan") else None,
            dns_name=d.get("dns_name"),
            init=str(d.get("init") or "systemd"),
            arch=str(d.get("arch") or "amd64"),
        )


@dataclass(frozen=True)
class LabPlan:
    name: str
    network: IPv4Network
    wan: IPv4Network
    controller: IPv4Address
    nodes: tuple[Node, ...]
    login: LabLogin = "root"
    kind: LabKind = "netns"

    def is_guest(self, node: Node) -> bool:
        """A QEMU guest (vm kind, every inventory host); routers stay namespaces."""
        return self.kind == "vm" and node.role == "host"

    @property
    def namespaces(self) -> list[str]:
        return [wan_ns(self.name), *(n.ns for n in self.nodes), *(s for _r, s in self.switches())]

    def node(self, alias: str) -> Node:
        for n in self.nodes:
            if n.alias == alias:
                return n
        raise LabError(f"lab {self.name} has no host {alias!r} (hosts: {self.aliases()})")

    def behind(self, router: Node) -> list[Node]:
        """The hosts on a router's LAN."""
        return [n for n in self.nodes if n.jump == router.alias and n.port is None]

    def switch_ns(self, router: Node) -> str | None:
        """The namespace of a shared LAN's switch (a bridge with a port for the router and
        for each host: what two hosts on the LAN send each other never enters the router);
        None for a LAN of one host, a veth from the router to it."""
        if len(self.behind(router)) < 2:
            return None
        return f"{self.name}-s-{router.ns.removeprefix(f'{self.name}-r-')}"

    def lan_port(self, host: Node) -> str:
        """The switch's port to `host`, on a shared LAN."""
        assert host.jump is not None
        return ifname(self.name, f"l{self.behind(self.node(host.jump)).index(host) + 1}")

    def switches(self) -> list[tuple[Node, str]]:
        return [(r, s) for r in self.nodes if r.role == "router" if (s := self.switch_ns(r))]

    def aliases(self) -> str:
        return ", ".join(n.alias for n in self.nodes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "network": str(self.network),
            "wan": str(self.wan),
            "controller": str(self.controller),
            "nodes": [n.to_json() for n in self.nodes],
            "login": self.login,
            "kind": self.kind,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> LabPlan:
        return LabPlan(
            name=str(d["name"]),
            network=IPv4Network(d["network"]),
            wan=IPv4Network(d["wan"]),
            controller=IPv4Address(d["controller"]),
            nodes=tuple(Node.from_json(n) for n in d["nodes"]),
            login=d["login"] if d.get("login") in LAB_LOGINS else "root",
            kind=d["kind"] if d.get("kind") in LAB_KINDS else "netns",
        )


def plan(mesh: Mesh) -> LabPlan:
    """Every namespace, address and alias of the lab for this inventory, or a LabError."""
    if mesh.lab is None:
        raise LabError(
            f"{mesh.source} has no `lab:` section: add `lab: {{name: mplab, network: "
            "198.18.0.0/23}` to run it as a lab"
        )
    name, network = mesh.lab.name, mesh.lab.network
    if network.prefixlen > 28:
        raise LabError(f"lab.network {network} is too small: use at least a /28 (a /23 is best)")
    for what, other in (("WireGuard", mesh.wg_network), ("bridge", mesh.bridge_network)):
        if network.overlaps(other):
            raise LabError(f"lab.network {network} overlaps the mesh's {what} network {other}")
    wan, lans = network.subnets(prefixlen_diff=1)
    controller = wan.network_address + 1
    names = {h.name for h in mesh.hosts}
    problems: list[str] = []

    taken: dict[IPv4Address, str] = {controller: "the controller"}
    for h in mesh.hosts:
        # A DNS name gets a wan address below, like a dynamic host; the lab's hosts file
        # serves the name.
        if h.endpoint != "static" or h.address is None or h.dns_name is not None:
            continue
        addr = h.address
        if not isinstance(addr, IPv4Address) or addr not in wan:
            problems.append(
                f"hosts.{h.name}.address {addr} is not in the lab's wan {wan} "
                f"(the first half of lab.network {network})"
            )
        elif addr in (wan.network_address, wan.broadcast_address):
            problems.append(f"hosts.{h.name}.address {addr} is not a usable host address of {wan}")
        elif addr in taken:
            problems.append(f"hosts.{h.name}.address {addr} is already {taken[addr]}'s")
        else:
            taken[addr] = h.name
    for h in mesh.hosts:
        if h.endpoint == "nat" and router_alias(h.name) in names:
            problems.append(f"host name {router_alias(h.name)!r} is the alias of {h.name}'s router")
    homes = _homes(mesh, problems)
    if problems:
        raise LabError("cannot plan the lab:\n  " + "\n  ".join(problems))

    # Dynamic hosts and routers take free wan addresses from the top down, so that the low
    # addresses stay free for static hosts a user adds later.
    free = (a for a in reversed(list(wan.hosts())) if a not in taken)
    next_lan = _lan_blocks(lans)
    nodes: list[Node] = []
    port = 0

    def next_port() -> str:
        nonlocal port
        port += 1
        if port > MAX_PORTS:
            raise LabError(f"a lab holds at most {MAX_PORTS} hosts and routers")
        return ifname(name, f"p{port}")

    def wan_address(what: str) -> IPv4Address:
        addr = next(free, None)
        if addr is None:
            raise LabError(f"no free address left in the lab's wan {wan} for {what}")
        return addr

    inits, arches = dict(mesh.lab.inits), dict(mesh.lab.arches)
    for key, given in (("init", inits), ("arch", arches)):
        if unknown := sorted(set(given) - {h.name for h in mesh.hosts}):
            raise LabError(f"lab.{key} names no host of the inventory: {', '.join(unknown)}")
    routers: dict[str, Node] = {}  # by the first host of its LAN
    for h in mesh.hosts:
        if h.endpoint == "nat":
            home = homes[h.name]
            router = routers.get(home[0])
            if router is None:
                lan = next_lan(len(home))
                if lan is None:
                    raise LabError(f"no LAN left for NAT host {h.name} in {lans}")
                r_wan = wan_address(f"{h.name}'s router")
                router = routers[home[0]] = Node(
                    alias=router_alias(home[0]),
                    role="router",
                    kind="router",
                    ns=f"{name}-r-{home[0]}",
                    address=r_wan,
                    prefixlen=wan.prefixlen,
                    gateway=None,
                    wan_address=r_wan,
                    jump=None,
                    port=next_port(),
                    lan=lan,
                )
                nodes.append(router)
            assert router.lan is not None
            nodes.append(
                Node(
                    alias=h.name,
                    role="host",
                    kind="nat",
                    ns=f"{name}-h-{h.name}",
                    address=router.lan.network_address + 2 + home.index(h.name),
                    prefixlen=router.lan.prefixlen,
                    gateway=router.lan.network_address + 1,
                    wan_address=router.wan_address,
                    jump=router.alias,
                    port=None,
                    lan=router.lan,
                    init=inits.get(h.name, "systemd"),
                    arch=arches.get(h.name, "amd64"),
                )
            )
            continue
        if h.endpoint == "static" and h.dns_name is None:
            assert isinstance(h.address, IPv4Address)
            addr = h.address
        else:
            addr = wan_address(f"{h.endpoint} host {h.name}")
        nodes.append(
            Node(
                alias=h.name,
                role="host",
                kind=h.endpoint,
                ns=f"{name}-h-{h.name}",
                address=addr,
                prefixlen=wan.prefixlen,
                gateway=None,
                wan_address=addr,
                jump=None,
                port=next_port(),
                dns_name=h.dns_name,
                init=inits.get(h.name, "systemd"),
                arch=arches.get(h.name, "amd64"),
            )
        )
    return LabPlan(name, network, wan, controller, tuple(nodes), mesh.lab.login, mesh.lab.kind)


def _homes(mesh: Mesh, problems: list[str]) -> dict[str, tuple[str, ...]]:
    """Each NAT host's LAN, as the hosts on it: `lab.lans`, else the host alone."""
    assert mesh.lab is not None
    kinds = {h.name: h.endpoint for h in mesh.hosts}
    homes: dict[str, tuple[str, ...]] = {}
    for i, lan in enumerate(mesh.lab.lans):
        for h in lan:
            if kinds.get(h) != "nat":
                what = "no host of the inventory" if h not in kinds else f"a {kinds[h]} host"
                problems.append(f"lab.lans[{i}]: {h} is {what}: only NAT hosts share a LAN")
            elif h in homes:
                problems.append(f"lab.lans[{i}]: {h} is on another LAN already")
            else:
                homes[h] = lan
    return {h: homes.get(h, (h,)) for h, kind in kinds.items() if kind == "nat"}


def _lan_blocks(lans: IPv4Network) -> Callable[[int], IPv4Network | None]:
    """Hands out LANs from `lans` in order, each aligned, big enough for a router and `n`
    hosts (a /30 for one host, as before LANs could be shared), or None when none is left."""
    cursor = int(lans.network_address)

    def take(n: int) -> IPv4Network | None:
        nonlocal cursor
        size = 1 << max(32 - LAN_PREFIX, (n + 2).bit_length())  # net, router, hosts, broadcast
        start = -(-cursor // size) * size
        if start + size > int(lans.broadcast_address) + 1:
            return None
        cursor = start + size
        return IPv4Network((start, 32 - size.bit_length() + 1))

    return take


def overlaps(
    network: IPv4Network, addrs: Sequence[Mapping[str, Any]], routes: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What on the machine (`ip -j addr`, `ip -j route`) the lab's network would collide with."""
    found: list[str] = []
    for link in addrs:
        for info in link.get("addr_info", []):
            if info.get("family") != "inet":
                continue
            iface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
            if iface.network.overlaps(network):
                found.append(f"address {iface} on {link.get('ifname', '?')}")
    for route in routes:
        dst = route.get("dst")
        # The default route covers everything; what matters is the prefixes the machine owns.
        if not isinstance(dst, str) or dst == "default":
            continue
        try:
            net = IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue  # IPv6 or something exotic: the lab is IPv4 only
        if net.overlaps(network):
            via = f" via {route['gateway']}" if route.get("gateway") else ""
            found.append(f"route {dst}{via} dev {route.get('dev', '?')}")
    return found


def ports(nodes: Iterable[Node]) -> list[str]:
    return [n.port for n in nodes if n.port]
