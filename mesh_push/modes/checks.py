"""The checks both modes' judges make alike, written once: interfaces in the way that the mesh
did not make, the WireGuard interfaces and their peers (keys, pre-shared keys, handshakes), the
bridge, a VXLAN device, the boot unit, and each link seen from both its ends. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesh_push.core.model import LEGACY_MARK, Host, Link, Mesh
from mesh_push.host import boot as boot_kinds
from mesh_push.host.state import HostState, WgIf
from mesh_push.host.state import Link as Seen
from mesh_push.modes.base import HostPlan, Peer, Plan, allowed_text
from mesh_push.modes.judgement import REJECT_AFTER_TIME_S, HostVerdict

# One end of a link as its host has it: (link, here, there, state, problems) → the mode's
# fields of that end, each problem appended to `problems`.
EndFields = Callable[[Link, str, str, HostState, list[str]], dict[str, Any]]
# The whole link once both ends are read: (link, ends, problems).
WholeLink = Callable[[Link, dict[str, dict[str, Any] | None], list[str]], None]


def foreign(mesh: Mesh, names: list[str], st: HostState, v: HostVerdict) -> bool:
    """An interface of a planned name that this mesh did not make: the host script refuses to
    touch it (and so to go on), and what it holds says nothing about this mesh. One with the
    mark every mesh shared before meshes had names is this mesh's (the script re-marks it)."""
    found = [
        name
        for name in names
        if (link := st.links.get(name)) is not None
        and link.alias is not None
        and link.alias not in (mesh.mark, LEGACY_MARK)
    ]
    for name in found:
        v.config(f"{name} exists and was not made by mesh {mesh.name}")
    return bool(found)


def wireguard(mesh: Mesh, hp: HostPlan, st: HostState, v: HostVerdict, inside: set[str]) -> None:
    """Each WireGuard interface of the host, and its peers towards hosts in `inside`."""
    for iface in hp.wg:
        link = st.links.get(iface.name)
        if link is None:
            v.config(f"{iface.name} missing")
            continue
        w = st.wg.get(iface.name) or WgIf()
        if not link.up:
            v.config(f"{iface.name} down")
        if link.mtu != mesh.mtu.wireguard:
            v.config(f"{iface.name} MTU {link.mtu}, planned {mesh.mtu.wireguard}")
        for a in (iface.address, iface.address6):
            if a is not None and str(a) not in link.addresses:
                v.config(f"{iface.name} lacks its address {a}")
        if w.listen_port is not None and w.listen_port != iface.port:
            v.config(f"{iface.name} listens on {w.listen_port}, planned {iface.port}")
        if hp.public_key and w.public_key and w.public_key != hp.public_key:
            v.config(f"{iface.name} has another key than the planned one")
        for peer in iface.peers:
            if peer.public_key is not None and peer.name in inside:
                _peer(peer, w, st.handshake_age(iface.name, peer.public_key), v)
        planned = {pe.public_key for pe in iface.peers}
        if None not in planned and any(key not in planned for key in w.allowed_ips):
            v.config(f"{iface.name} has a peer that is not planned")


def _peer(peer: Peer, w: WgIf, age: float | None, v: HostVerdict) -> None:
    key = peer.public_key or ""
    if key not in w.allowed_ips:
        v.config(f"peer {peer.name} not configured")
        return
    if allowed_text(w.allowed_ips[key].split()) != peer.allowed_ips_text:
        v.config(f"peer {peer.name} allowed-ips {w.allowed_ips[key]}")
    keepalive = w.keepalives.get(key)
    if keepalive is not None and keepalive != str(peer.keepalive or "off"):
        v.config(f"peer {peer.name} keepalive {keepalive}")
    _psk(peer, w.psks.get(key), v)
    if age is None:
        v.runtime(f"no handshake with {peer.name}")
    elif age > REJECT_AFTER_TIME_S:
        v.runtime(f"handshake with {peer.name} is {age:.0f} s old")


def _psk(peer: Peer, have: str | None, v: HostVerdict) -> None:
    """`have`: the fingerprint of the pre-shared key `wg` uses with `peer`, "none", or None
    (not read). The key is never known here, only whether it is the planned one."""
    if have is None:
        return
    if peer.psk and have == "none":
        v.config(f"peer {peer.name} has no pre-shared key")
    elif peer.psk and peer.psk_fp and have != peer.psk_fp:
        v.config(f"peer {peer.name} has another pre-shared key than the planned one")
    elif not peer.psk and have != "none":
        v.config(f"peer {peer.name} has a pre-shared key, none planned")


def boot(host: Host, st: HostState, v: HostVerdict) -> None:
    """The hook that brings the mesh back at boot, for the init the host runs (host/boot.py)."""
    if st.boot is None:
        return
    kind = boot_kinds.choose(host.boot, st.boot.init)
    if kind is None:
        v.config(f"nothing brings the mesh back at boot: {boot_kinds.missing(st.boot.init)}")
    elif kind.name not in st.boot.hooks:
        v.config(f"boot unit missing ({kind.name})")
    elif not st.boot.script:
        v.config("the script the boot unit runs is missing")


def names(block: str, st: HostState, v: HostVerdict) -> None:
    """The mesh's block of names in /etc/hosts (modes/names.py): `block` as planned."""
    if st.names is None or st.names == block:
        return
    if not block:
        v.config("/etc/hosts holds the mesh's names, and mesh.names is not set")
    elif not st.names:
        v.config("/etc/hosts lacks the mesh's names")
    else:
        v.config("/etc/hosts: the mesh's names differ from the plan")


def bridge(
    mesh: Mesh, hp: HostPlan, st: HostState, v: HostVerdict, addresses: list[str]
) -> Seen | None:
    """The bridge: there, up, its MTU, `addresses` and MAC; returned for the mode's checks."""
    br = st.links.get(mesh.bridge)
    if br is None:
        v.config(f"bridge {mesh.bridge} missing")
        return None
    if not br.up:
        v.config(f"bridge {mesh.bridge} down")
    if br.mtu != mesh.mtu.bridge:
        v.config(f"bridge MTU {br.mtu}, planned {mesh.mtu.bridge}")
    for want in addresses:
        if want not in br.addresses:
            v.config(f"bridge lacks its address {want}")
    if br.mac and br.mac != hp.bridge_mac:
        v.config(f"bridge address {br.mac}, planned {hp.bridge_mac}")
    return br


def vxlan(
    v: HostVerdict,
    label: str,
    link: Seen,
    mesh: Mesh,
    vni: int,
    local: object,
    remote: object | None = None,
    tx: tuple[bool | None, str | None] = (None, None),
) -> bool:
    """A VXLAN device against its plan: up, VNI, ends, UDP port, MTU, TX checksum offload
    (`tx`: as planned, as read), and a port of the mesh's bridge (returned)."""
    if not link.up:
        v.config(f"{label} down")
    if link.vni != vni:
        v.config(f"{label} has VNI {link.vni}, planned {vni}")
    if link.local is not None and link.local != str(local):
        v.config(f"{label} leaves from {link.local}, planned {local}")
    if remote is not None and link.remote is not None and link.remote != str(remote):
        v.config(f"{label} goes to {link.remote}, planned {remote}")
    if link.port is not None and link.port != mesh.vxlan_port:
        v.config(f"{label} on UDP {link.port}, planned {mesh.vxlan_port}")
    if link.mtu != mesh.mtu.bridge:
        v.config(f"{label} MTU {link.mtu}, planned {mesh.mtu.bridge}")
    planned_tx, seen_tx = tx
    want = None if planned_tx is None else ("on" if planned_tx else "off")
    if want is not None and seen_tx != want:
        v.config(f"{label} tx checksumming {seen_tx or 'unknown'}, planned {want}")
    if link.master != mesh.bridge:
        v.config(f"{label} not plugged into {mesh.bridge}")
        return False
    return True


def links(
    p: Plan,
    states: dict[str, HostState],
    verdicts: dict[str, HostVerdict],
    fields: EndFields,
    whole: WholeLink | None = None,
) -> list[dict[str, Any]]:
    """Each link judged from both ends: the handshake and pre-shared key at each (two
    different keys never complete a handshake: said at once, not 180 s later), with the
    mode's `fields` of each end and its `whole` view of the link."""
    out = []
    for lk in p.mesh.links:
        if lk.a not in verdicts and lk.b not in verdicts:
            continue
        ends: dict[str, dict[str, Any] | None] = {}
        problems: list[str] = []
        psks: dict[str, str] = {}  # each end's pre-shared key, as a fingerprint or "none"
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            st = states.get(here) if here in verdicts and verdicts[here].reachable else None
            found = p.host(here).peer(there)
            if st is None or found is None:
                ends[here] = None
                continue
            iface, peer = found
            key = peer.public_key
            psk = (st.wg.get(iface.name) or WgIf()).psks.get(key) if key else None
            if psk is not None:
                psks[here] = psk
            ends[here] = {
                "handshake_age_s": st.handshake_age(iface.name, key) if key else None,
                **fields(lk, here, there, st, problems),
                "preshared_key": psk != "none" if psk is not None else None,
                "preshared_key_age_s": st.psk_age(there),
            }
        if len(psks) == 2 and psks[lk.a] != psks[lk.b]:
            if "none" in psks.values():
                only = lk.a if psks[lk.b] == "none" else lk.b
                problems.append(f"pre-shared key at {only} only: no handshake can succeed")
            else:
                problems.append("the ends have different pre-shared keys: no handshake can succeed")
        if whole is not None:
            whole(lk, ends, problems)
        for here in (lk.a, lk.b):
            end = ends.get(here)
            if end is not None and end["handshake_age_s"] is None:
                problems.append(f"no handshake at {here}")
            elif end is not None and end["handshake_age_s"] > REJECT_AFTER_TIME_S:
                problems.append(f"handshake at {here} {end['handshake_age_s']:.0f} s old")
        out.append({"hosts": [lk.a, lk.b], "vni": lk.vni, "ends": ends, "problems": problems})
    return out
