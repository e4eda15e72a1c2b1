"""Mesh → what every host must have. Pure: no I/O, same input, same plan."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from mesh_push.core.model import ENDPOINT_RANK, Host, Link, Mesh
from mesh_push.modes.evpn import underlay as evpn
from mesh_push.modes.stp import tree as stp

KEEPALIVE_S = 25


@dataclass(frozen=True)
class Peer:
    name: str
    public_key: str | None
    allowed_ip: IPv4Interface  # the peer's WireGuard address as a /32
    endpoint: str | None  # only static peers can be dialled
    keepalive: int | None  # set on the side of a link that has no static address
    # The DNS name in `endpoint`, when the peer is known by name: the host resolves it at
    # apply time and re-resolves it every `mesh.wg_reresolve` seconds.
    endpoint_name: str | None = None
    # A pre-shared key on this link: the file the host keeps it in, and the fingerprint
    # (keys.psk_fingerprint) of the key that belongs there, where the controller knows it.
    psk_file: str | None = None
    psk_fp: str | None = None

    @property
    def psk(self) -> bool:
        return self.psk_file is not None


@dataclass(frozen=True)
class Wire:
    name: str  # named after the peer host, as in the write-up
    vni: int
    local: IPv4Address
    remote: IPv4Address
    cost: int
    latency_ms: float | None


@dataclass(frozen=True)
class HostPlan:
    host: Host
    wave: int
    public_key: str | None
    wg_address: IPv4Interface
    bridge_address: IPv4Interface
    bridge_mac: str
    bridge_priority: int
    peers: tuple[Peer, ...]  # stp mode: wg0's peers
    wires: tuple[Wire, ...]  # stp mode: one VXLAN wire per link
    evpn: evpn.EvpnHost | None = None  # evpn mode: the host's links, VTEP, BGP sessions

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def named_peers(self) -> tuple[Peer, ...]:
        return tuple(p for p in self.peers if p.endpoint_name is not None)


@dataclass(frozen=True)
class Plan:
    mesh: Mesh
    hosts: tuple[HostPlan, ...]
    waves: tuple[tuple[str, ...], ...]
    tree: stp.TreePlan
    underlay: evpn.Underlay | None = None  # evpn mode

    def host(self, name: str) -> HostPlan:
        for hp in self.hosts:
            if hp.name == name:
                return hp
        raise KeyError(name)


def bridge_mac(name: str) -> str:
    """Locally administered unicast, stable per host: the bridge id no longer depends on
    whichever random MAC a port happened to get."""
    digest = hashlib.sha256(name.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def waves(mesh: Mesh) -> tuple[tuple[str, ...], ...]:
    """Static hosts first (others dial them), then dynamic and NAT hosts together; a jump
    host always in an earlier wave than the hosts reached through it."""
    via = {h.name: h.ssh.via for h in mesh.hosts}
    rank = {h.name: ENDPOINT_RANK[h.endpoint] for h in mesh.hosts}
    wave: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in wave:
            jump = via.get(name)
            wave[name] = max(rank[name], of(jump) + 1 if jump in rank else 0)
        return wave[name]

    for h in mesh.hosts:
        of(h.name)
    out: dict[int, list[str]] = {}
    for h in mesh.hosts:
        out.setdefault(wave[h.name], []).append(h.name)
    return tuple(tuple(out[w]) for w in sorted(out))


def build(
    mesh: Mesh, public_keys: dict[str, str], psk_fps: Mapping[Link, str | None] | None = None
) -> Plan:
    """`psk_fps`: the fingerprint of each link's pre-shared key (None: not known), from
    psk.py; a link with `psk` that it leaves out has none yet (its key waits for its first
    end). Without it, every link with `psk` has one, of an unknown fingerprint."""
    wg_net, br_net = mesh.wg_network, mesh.bridge_network
    wg_addr = {h.name: wg_net.network_address + h.number for h in mesh.hosts}
    tree = stp.plan_tree(mesh, {h.name: bridge_mac(h.name) for h in mesh.hosts})
    order = waves(mesh)
    wave_of = {name: i for i, names in enumerate(order) for name in names}

    by_name = {h.name: h for h in mesh.hosts}
    links_of: dict[str, list[Link]] = {h.name: [] for h in mesh.hosts}
    for link in mesh.links:
        links_of[link.a].append(link)
        links_of[link.b].append(link)

    under = evpn.underlay(mesh) if mesh.mode == "evpn" else None
    plans: list[HostPlan] = []
    for h in mesh.hosts:
        peers: list[Peer] = []
        wires: list[Wire] = []
        for link in links_of[h.name] if under is None else ():
            other = by_name[link.other(h.name)]
            has_psk = link.psk and (psk_fps is None or link in psk_fps)
            peers.append(
                Peer(
                    name=other.name,
                    public_key=public_keys.get(other.name),
                    allowed_ip=IPv4Interface(f"{wg_addr[other.name]}/32"),
                    endpoint=_endpoint(other, mesh.wg_port),
                    keepalive=None if h.endpoint == "static" else KEEPALIVE_S,
                    endpoint_name=other.dns_name if other.endpoint == "static" else None,
                    psk_file=mesh.psk_file(other.name) if has_psk else None,
                    psk_fp=(psk_fps or {}).get(link) if has_psk else None,
                )
            )
            wires.append(
                Wire(
                    name=other.name,
                    vni=link.vni,
                    local=wg_addr[h.name],
                    remote=wg_addr[other.name],
                    cost=tree.port_cost[(h.name, other.name)],
                    latency_ms=link.latency_ms,
                )
            )
        # In evpn mode the host's address in the WireGuard network is its VTEP, a /32.
        prefix = wg_net.prefixlen if under is None else 32
        plans.append(
            HostPlan(
                host=h,
                wave=wave_of[h.name],
                public_key=public_keys.get(h.name),
                wg_address=IPv4Interface(f"{wg_addr[h.name]}/{prefix}"),
                bridge_address=IPv4Interface(
                    f"{br_net.network_address + h.number}/{br_net.prefixlen}"
                ),
                bridge_mac=tree.mac[h.name],
                bridge_priority=tree.priority[h.name],
                peers=tuple(sorted(peers, key=lambda p: p.name)),
                wires=tuple(sorted(wires, key=lambda w: w.name)),
                evpn=None if under is None else evpn.host_plan(mesh, under, h, public_keys),
            )
        )
    return Plan(mesh, tuple(plans), order, tree, under)


def _endpoint(host: Host, port: int) -> str | None:
    if host.endpoint != "static" or host.address is None:
        return None
    if isinstance(host.address, str):
        return f"{host.address}:{port}"  # `wg set` resolves it, as WireGuard's configs allow
    if host.address.version == 6:
        return f"[{host.address}]:{port}"
    return f"{host.address}:{port}"
