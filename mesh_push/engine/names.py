"""A mesh keeps its interface names. Where its inventory names neither its WireGuard interface
nor its bridge, they are DEFAULT_NAMES; but a mesh made while the defaults were LEGACY_NAMES
(wg0 and internet) has those on its hosts, marked as its own, and keeps them: renaming them
would take the mesh down on every host. The first `up` that finds them writes them into the
inventory (inventory/pin_name.py), so that later runs, and `plan`, know them. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from mesh_push.core.model import LEGACY_MARK, LEGACY_NAMES, Mesh
from mesh_push.host.state import HostState


def _is(key: str, name: str, kind: str, st: HostState) -> bool:
    """The interface is of the sort `key` names: a bridge; or a WireGuard interface, which
    wireguard-go makes as a TUN device (`wg show` lists it either way)."""
    if key == "bridge.name":
        return kind == "bridge"
    return kind == "wireguard" or name in st.wg


def kept(mesh: Mesh, states: Mapping[str, HostState]) -> Mesh:
    """`mesh` with the legacy name of each unnamed interface that some host has under this
    mesh's mark (evpn's WireGuard interfaces are WG-VNI); `mesh` itself when none."""
    found: dict[str, str] = {}
    for key in mesh.unnamed:
        old = LEGACY_NAMES[key]
        for st in states.values():
            for name, link in st.links.items():
                if (
                    (name == old or (key == "wireguard.interface" and name.startswith(old + "-")))
                    and _is(key, name, link.kind, st)
                    and link.alias in (mesh.mark, LEGACY_MARK)
                ):
                    found[key] = old
    if not found:
        return mesh
    return dataclasses.replace(
        mesh,
        wg_interface=found.get("wireguard.interface", mesh.wg_interface),
        bridge=found.get("bridge.name", mesh.bridge),
        unnamed=mesh.unnamed - found.keys(),
    )
