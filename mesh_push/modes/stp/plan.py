"""stp mode's plan: one WireGuard interface with a peer per link, one VXLAN wire per link into
an STP bridge, and the spanning tree planned and pinned (tree.py). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

from mesh_push.core.model import Link, Mesh
from mesh_push.modes import plan as common
from mesh_push.modes.base import HostPlan, Peer, Plan, WgIface, address
from mesh_push.modes.stp import tree as stp


@dataclass(frozen=True)
class Wire:
    name: str  # mesh.stp.wire_prefix + the peer's name (the write-up: the peer's name)
    peer: str
    vni: int
    local: IPv4Address
    remote: IPv4Address
    cost: int
    latency_ms: float | None


@dataclass(frozen=True)
class StpHost(HostPlan):
    bridge_priority: int
    wires: tuple[Wire, ...]

    @property
    def wg_address(self) -> IPv4Interface:
        return self.wg[0].address


@dataclass(frozen=True)
class StpPlan(Plan):
    tree: stp.TreePlan

    def stp_host(self, name: str) -> StpHost:
        hp = self.host(name)
        assert isinstance(hp, StpHost)
        return hp


def own(p: Plan) -> StpPlan:
    """The plan this mode made (every method of the mode gets back its own)."""
    assert isinstance(p, StpPlan)
    return p


def build(
    mesh: Mesh,
    public_keys: Mapping[str, str],
    psk_fps: Mapping[Link, str | None] | None = None,
) -> StpPlan:
    macs = {h.name: common.bridge_mac(h.name) for h in mesh.hosts}
    tree = stp.plan_tree(mesh, macs)
    order = common.waves(mesh)
    wave_of = common.wave_of(order)
    by_name = {h.name: h for h in mesh.hosts}
    links_of = common.links_by_host(mesh)

    wg_net = mesh.wg_network
    wg_addr = {h.name: address(wg_net, h) for h in mesh.hosts}
    plans: list[HostPlan] = []
    for h in mesh.hosts:
        peers: list[Peer] = []
        wires: list[Wire] = []
        for link in links_of[h.name]:
            other = by_name[link.other(h.name)]
            there = wg_addr[other.name]
            allowed: tuple[IPv4Network | IPv6Network, ...] = (IPv4Network(f"{there}/32"),)
            if mesh.wg_network6:
                allowed += (IPv6Network((mesh.wg_network6.network_address + other.number, 128)),)
            peers.append(
                common.peer(
                    mesh, h, other, link, public_keys, psk_fps, allowed, mesh.wg_port, there
                )
            )
            wires.append(
                Wire(
                    name=mesh.stp.wire_prefix + other.name,
                    peer=other.name,
                    vni=link.vni,
                    local=wg_addr[h.name],
                    remote=wg_addr[other.name],
                    cost=tree.port_cost[(h.name, other.name)],
                    latency_ms=link.latency_ms,
                )
            )
        iface = WgIface(
            name=mesh.wg_interface,
            port=mesh.wg_port,
            address=IPv4Interface(f"{wg_addr[h.name]}/{wg_net.prefixlen}"),
            peers=tuple(sorted(peers, key=lambda p: p.name)),
            address6=(
                IPv6Interface((mesh.wg_network6.network_address + h.number, 64))
                if mesh.wg_network6
                else None
            ),
        )
        plans.append(
            StpHost(
                **common.host_fields(mesh, h, wave_of[h.name], public_keys),
                wg=(iface,),
                bridge_priority=tree.priority[h.name],
                wires=tuple(sorted(wires, key=lambda w: w.name)),
            )
        )
    return StpPlan(mesh, tuple(plans), order, tree)
