"""What both modes plan (docs/design.md#modes). Pure.

A host's plan in either mode is the same at its edges: a wave, its bridge and address, and its
WireGuard interfaces with their peers (stp: one interface with a peer per link; evpn: one
interface per link). What lies between, a spanning tree or a routed underlay, is the mode's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

from mesh_push.core.model import Host, Mesh


@dataclass(frozen=True)
class Peer:
    """One WireGuard peer of one interface."""

    name: str
    public_key: str | None
    # What the peer may send from, and what goes to it (WireGuard's cryptokey routing): stp
    # its tunnel address; evpn the VTEPs, its link address and OSPF's multicast group.
    allowed_ips: tuple[IPv4Network | IPv6Network, ...]
    endpoint: str | None  # only static peers can be dialled
    keepalive: int | None  # set on the side of a link that has no static address
    # The DNS name in `endpoint`, when the peer is known by name: the host resolves it at
    # apply time and re-resolves it every `mesh.wg_reresolve` seconds.
    endpoint_name: str | None = None
    # A pre-shared key on this link: the file the host keeps it in, and the fingerprint
    # (keys.psk_fingerprint) of the key that belongs there, where the controller knows it.
    psk_file: str | None = None
    psk_fp: str | None = None
    port: int = 0  # the port it listens on (its endpoint's, for a peer known by name)
    # Its address at the far end of the tunnel (`measure` pings it there).
    address: IPv4Address | None = None

    @property
    def psk(self) -> bool:
        return self.psk_file is not None

    @property
    def dialled_at(self) -> str | None:
        """The endpoint this end sets: an address; a peer known by name is set by the
        re-resolver, one with none by its own handshakes."""
        return self.endpoint if self.endpoint and not self.endpoint_name else None

    @property
    def allowed_ips_text(self) -> str:
        """As the host scripts and the judge compare them with `wg show`: sorted, one space."""
        return allowed_text(str(n) for n in self.allowed_ips)


def allowed_text(networks: Iterable[str]) -> str:
    return " ".join(sorted(networks))


@dataclass(frozen=True)
class WgIface:
    """One WireGuard interface of a host and its peers."""

    name: str
    port: int
    address: IPv4Interface
    peers: tuple[Peer, ...]
    # Routed (evpn): forwarding and multicast on, for OSPF's hellos and transit traffic.
    routed: bool = False
    # Its IPv6 address (mesh.wg_network6), beside the IPv4 one; None: none.
    address6: IPv6Interface | None = None


@dataclass(frozen=True)
class HostPlan:
    host: Host
    wave: int
    public_key: str | None
    bridge_address: IPv4Interface
    bridge_mac: str
    wg: tuple[WgIface, ...]
    # Its IPv6 address on the bridge (mesh.bridge_network6), beside the IPv4 one; None: none.
    bridge_address6: IPv6Interface | None

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def bridge_addresses(self) -> list[str]:
        """Its addresses on the bridge, as `ip` lists them: IPv4, and IPv6 where planned."""
        six = [str(self.bridge_address6)] if self.bridge_address6 else []
        return [str(self.bridge_address), *six]

    @property
    def peers(self) -> tuple[Peer, ...]:
        """Every peer of every interface: one per link."""
        return tuple(p for i in self.wg for p in i.peers)

    @property
    def named_peers(self) -> tuple[tuple[WgIface, Peer], ...]:
        return tuple((i, p) for i in self.wg for p in i.peers if p.endpoint_name is not None)

    def peer(self, name: str) -> tuple[WgIface, Peer] | None:
        """The interface and peer of the link to host `name`."""
        return next(((i, p) for i in self.wg for p in i.peers if p.name == name), None)


@dataclass(frozen=True)
class Plan:
    mesh: Mesh
    hosts: tuple[HostPlan, ...]
    waves: tuple[tuple[str, ...], ...]

    def host(self, name: str) -> HostPlan:
        for hp in self.hosts:
            if hp.name == name:
                return hp
        raise KeyError(name)


def address(net: IPv4Network, host: Host) -> IPv4Address:
    return net.network_address + host.number
