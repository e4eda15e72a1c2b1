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

KINDS = {"wireguard.interface": "wireguard", "bridge.name": "bridge"}


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
                    and link.kind == KINDS[key]
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
