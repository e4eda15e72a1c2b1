"""evpn mode's plan (docs/evpn.md): per link a WireGuard interface with its own port and /31,
routed by the mesh's FRR instance (OSPF over the links, BGP EVPN between the VTEPs through two
route reflectors), and one VXLAN device in the bridge. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

from mesh_push.core.model import Host, Link, Mesh
from mesh_push.modes import plan as common
from mesh_push.modes.base import HostPlan, Plan, WgIface, address
from mesh_push.modes.evpn.underlay import Underlay, link_addresses, underlay
from mesh_push.modes.topology import edge

# A link's one peer may send from, and be sent, any address: FRR's routes choose the link.
OSPF_HELLOS = IPv4Network("224.0.0.5/32")  # AllSPFRouters


@dataclass(frozen=True)
class LinkEnd:
    """One end of a link: this host's WireGuard interface to `peer`, and the link's place in
    the underlay."""

    iface: WgIface  # named WG-VNI, listening on port + VNI (both ends alike), on its /31
    vni: int
    peer: str
    peer_address: IPv4Address  # the other end's address on the /31
    cost: int
    latency_ms: float | None

    @property
    def name(self) -> str:
        return self.iface.name

    @property
    def port(self) -> int:
        return self.iface.port

    @property
    def address(self) -> IPv4Interface:
        return self.iface.address


@dataclass(frozen=True)
class EvpnHost(HostPlan):
    vtep: IPv4Address  # router id, BGP source, VXLAN local address
    links: tuple[LinkEnd, ...]
    reflector: bool
    neighbors: tuple[tuple[str, IPv4Address], ...]  # BGP sessions: (host, its VTEP)


@dataclass(frozen=True)
class EvpnPlan(Plan):
    underlay: Underlay

    def evpn_host(self, name: str) -> EvpnHost:
        hp = self.host(name)
        assert isinstance(hp, EvpnHost)
        return hp


def own(p: Plan) -> EvpnPlan:
    """The plan this mode made (every method of the mode gets back its own)."""
    assert isinstance(p, EvpnPlan)
    return p


def vxlan_name(mesh: Mesh) -> str:
    """The mesh's one VXLAN device, named after the WireGuard interface (as WG-VNI)."""
    return f"{mesh.wg_interface}-vx"


def vtep(mesh: Mesh, host: Host) -> IPv4Address:
    return address(mesh.wg_network, host)


def link_allowed(mesh: Mesh, theirs: IPv4Address) -> tuple[IPv4Network, ...]:
    """What may cross a link, and so its peer's allowed-ips: VXLAN, BGP and transit between
    VTEPs (the VTEPs' network), OSPF and BFD from its link address, and OSPF's hellos (sent to
    224.0.0.5 on a point-to-point network, which WireGuard routes by allowed-ips too). A peer
    can send from no other address: nothing from outside the mesh enters through a link."""
    return (mesh.wg_network, IPv4Network(f"{theirs}/32"), OSPF_HELLOS)


def mesh_routes(mesh: Mesh) -> tuple[IPv4Network, ...]:
    """All a host may learn from OSPF (docs/security.md#evpn): every VTEP's /32 and every
    link's /31, nothing else (no default, no address outside the mesh)."""
    vteps = [IPv4Network(f"{vtep(mesh, h)}/32") for h in mesh.hosts]
    links = [IPv4Network(f"{link_addresses(lk)[0]}/31") for lk in mesh.links]
    return tuple(sorted(vteps) + sorted(links))


def build(
    mesh: Mesh,
    public_keys: Mapping[str, str],
    psk_fps: Mapping[Link, str | None] | None = None,
) -> EvpnPlan:
    u = underlay(mesh)
    order = common.waves(mesh)
    wave_of = common.wave_of(order)
    by_name = {h.name: h for h in mesh.hosts}
    links_of = common.links_by_host(mesh)
    plans: list[HostPlan] = []
    for h in mesh.hosts:
        ends = []
        for lk in links_of[h.name]:
            other = by_name[lk.other(h.name)]
            first, second = link_addresses(lk)
            mine, theirs = (first, second) if lk.a == h.name else (second, first)
            port = mesh.wg_port + lk.vni
            allowed: tuple[IPv4Network | IPv6Network, ...] = link_allowed(mesh, theirs)
            mine6 = None
            if mesh.wg_network6:  # the link's /127, by its VNI: the first end, then the second
                base = mesh.wg_network6.network_address + 2 * lk.vni
                here6, there6 = (base, base + 1) if lk.a == h.name else (base + 1, base)
                mine6 = IPv6Interface((here6, 127))
                allowed += (IPv6Network((there6, 128)),)
            peer = common.peer(mesh, h, other, lk, public_keys, psk_fps, allowed, port, theirs)
            iface = WgIface(
                f"{mesh.wg_interface}-{lk.vni}",
                port,
                IPv4Interface(f"{mine}/31"),
                (peer,),
                True,
                mine6,
            )
            cost = u.cost[edge(lk.a, lk.b)]
            ends.append(LinkEnd(iface, lk.vni, other.name, theirs, cost, lk.latency_ms))
        ends.sort(key=lambda e: e.vni)
        reflector = h.name in u.reflectors
        peers = [x for x in mesh.hosts if x.name != h.name]
        if not reflector:
            peers = [x for x in peers if x.name in u.reflectors]
        plans.append(
            EvpnHost(
                **common.host_fields(mesh, h, wave_of[h.name], public_keys),
                wg=tuple(e.iface for e in ends),
                vtep=vtep(mesh, h),
                links=tuple(ends),
                reflector=reflector,
                neighbors=tuple((x.name, vtep(mesh, x)) for x in peers),
            )
        )
    return EvpnPlan(mesh, tuple(plans), order, u)
