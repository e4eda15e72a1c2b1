"""What both modes plan alike: push waves, bridge addresses and MACs, and the WireGuard peer at
each end of a link. Pure: no I/O, same input, same plan."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import Any

from mesh_push.core.model import ENDPOINT_RANK, Host, Link, Mesh
from mesh_push.modes.base import Peer, address

KEEPALIVE_S = 25


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


def links_by_host(mesh: Mesh) -> dict[str, list[Link]]:
    """Each host's links, in the inventory's order (Mesh.links_of for every host at once)."""
    out: dict[str, list[Link]] = {h.name: [] for h in mesh.hosts}
    for link in mesh.links:
        out[link.a].append(link)
        out[link.b].append(link)
    return out


def wave_of(order: tuple[tuple[str, ...], ...]) -> dict[str, int]:
    return {name: i for i, names in enumerate(order) for name in names}


def host_fields(mesh: Mesh, h: Host, wave: int, public_keys: Mapping[str, str]) -> dict[str, Any]:
    """The fields of a HostPlan that both modes fill alike (wg aside)."""
    br = mesh.bridge_network
    return {
        "host": h,
        "wave": wave,
        "public_key": public_keys.get(h.name),
        "bridge_address": IPv4Interface(f"{address(br, h)}/{br.prefixlen}"),
        "bridge_mac": bridge_mac(h.name),
        "bridge_address6": (
            IPv6Interface((mesh.bridge_network6.network_address + h.number, 64))
            if mesh.bridge_network6
            else None
        ),
    }


def peer(
    mesh: Mesh,
    here: Host,
    other: Host,
    link: Link,
    public_keys: Mapping[str, str],
    psk_fps: Mapping[Link, str | None] | None,
    allowed: tuple[IPv4Network | IPv6Network, ...],
    port: int,
    address: IPv4Address,
) -> Peer:
    """`here`'s peer `other` at the far end of `link`, listening on `port`, at `address` in
    the tunnel. A link with `psk`
    that `psk_fps` leaves out has no key yet (it waits for its first end); without `psk_fps`,
    every link with `psk` has one, of an unknown fingerprint."""
    has_psk = link.psk and (psk_fps is None or link in psk_fps)
    # A link's own endpoint for `other` (its LAN address) wins over `other`'s public one; a
    # host that the link's far end can dial needs no keepalive to be found.
    lan = link.reached_at(other.name)
    dialled = here.endpoint == "static" or link.reached_at(here.name) is not None
    return Peer(
        name=other.name,
        public_key=public_keys.get(other.name),
        allowed_ips=allowed,
        endpoint=address_port(lan.address, lan.port or port) if lan else endpoint(other, port),
        keepalive=None if dialled else KEEPALIVE_S,
        endpoint_name=other.dns_name if other.endpoint == "static" and not lan else None,
        psk_file=mesh.psk_file(other.name) if has_psk else None,
        psk_fp=(psk_fps or {}).get(link) if has_psk else None,
        port=port,
        address=address,
    )


def endpoint(host: Host, port: int) -> str | None:
    if host.endpoint != "static" or host.address is None:
        return None
    if isinstance(host.address, str):
        return f"{host.address}:{port}"  # `wg set` resolves it, as WireGuard's configs allow
    return address_port(host.address, port)


def address_port(address: IPv4Address | IPv6Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
