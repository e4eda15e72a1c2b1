"""The hosts' names on the mesh (`mesh.names`), in both modes: the block every host's
/etc/hosts holds, between the mesh's own first and last lines (model.Mesh.names_begin,
names_end), naming every host's bridge address NAME.DOMAIN and NAME. Pure."""

from __future__ import annotations

from mesh_push.modes.base import Plan


def hosts_block(p: Plan) -> str:
    """The whole block with its first and last lines; "" without `mesh.names`."""
    m = p.mesh
    if not m.names_domain:
        return ""
    # (The address as the scripts print it, up to its prefix: str() is what they interpolate.)
    rows = [
        f"{address}\t{hp.name}.{m.names_domain}\t{hp.name}"
        for hp in p.hosts
        for address in (a.partition("/")[0] for a in hp.bridge_addresses)
    ]
    return "\n".join([m.names_begin, *rows, m.names_end])


def zone(p: Plan, serial: int) -> str:
    """`plan --zone`: the names as a DNS zone (RFC 1035 master file) for an authoritative
    server of one's own: an A record per host, the first host named as the zone's server."""
    m = p.mesh
    assert m.names_domain
    first = p.hosts[0].name
    rows = [f"{hp.name}\tIN\tA\t{hp.bridge_address.ip}" for hp in p.hosts]
    rows += [
        f"{hp.name}\tIN\tAAAA\t{hp.bridge_address6.ip}" for hp in p.hosts if hp.bridge_address6
    ]
    return _zone(m.name, m.names_domain, f"{first}.{m.names_domain}.", serial, rows)


def reverse_zone(p: Plan, serial: int) -> str:
    """`plan --zone reverse`: the PTR records of the bridge network, in the in-addr.arpa zone
    of the bridge network's prefix rounded down to whole octets."""
    m = p.mesh
    assert m.names_domain
    net = m.bridge_network
    whole_octets = max(1, min(3, net.prefixlen // 8))
    origin = ".".join(reversed(str(net.network_address).split(".")[:whole_octets]))
    rows = []
    for hp in p.hosts:
        rest = str(hp.bridge_address.ip).split(".")[whole_octets:]
        rows.append(f"{'.'.join(reversed(rest))}\tIN\tPTR\t{hp.name}.{m.names_domain}.")
    server = f"{p.hosts[0].name}.{m.names_domain}."
    return _zone(m.name, f"{origin}.in-addr.arpa", server, serial, rows)


def reverse_zone6(p: Plan, serial: int) -> str:
    """`plan --zone reverse6`: the PTR records of the bridge's IPv6 /64 in its ip6.arpa zone
    (the mesh has IPv6: mesh.bridge_network6)."""
    m = p.mesh
    assert m.names_domain and m.bridge_network6
    origin = m.bridge_network6.network_address.reverse_pointer[16 * 2 :]  # the /64's nibbles
    rows = []
    for hp in p.hosts:
        if hp.bridge_address6:
            owner = hp.bridge_address6.ip.reverse_pointer[: 16 * 2 - 1]
            rows.append(f"{owner}\tIN\tPTR\t{hp.name}.{m.names_domain}.")
    server = f"{p.hosts[0].name}.{m.names_domain}."
    return _zone(m.name, origin, server, serial, rows)


def _zone(mesh: str, origin: str, server: str, serial: int, rows: list[str]) -> str:
    head = [
        f"; the names of mesh {_comment(mesh)}, from mesh-push plan --zone",
        f"$ORIGIN {origin}.",
        "$TTL 300",
        f"@\tIN\tSOA\t{server} hostmaster.{server} ({serial} 3600 600 86400 300)",
        f"@\tIN\tNS\t{server}",
    ]
    return "\n".join([*head, *rows]) + "\n"


def _comment(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)
