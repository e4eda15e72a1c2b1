"""The scripts rendered from a plan, in either mode: a host's script (the mode's template, with
what every host script gets), the re-resolver it carries, and the down script. Pure apart from
reading the templates."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mesh_push import __version__
from mesh_push.core.model import LEGACY_NAMES, Mesh
from mesh_push.host.templates import host_paths
from mesh_push.modes import names
from mesh_push.modes.base import HostPlan, Plan, WgIface
from mesh_push.modes.mode import Mode

if TYPE_CHECKING:
    import jinja2


def host_script(
    mode: Mode,
    plan: Plan,
    hp: HostPlan,
    env: jinja2.Environment,
    allow_missing_peers: bool = False,
    wireguard: str = "auto",
) -> str:
    """`wireguard`: how the interfaces are made, as the host's facts chose (host/facts.py);
    "auto" (no facts, as for `mesh-push render`) tries the kernel, then wireguard-go.

    No private key is ever in the script. With `keys: controller` the script names the host's
    public key (so its digest changes with the key) and expects the key file in place: `up`
    writes it just before, from the apply program's standard input (programs.apply)."""
    controller_key = None
    if plan.mesh.keys == "controller":
        controller_key = hp.public_key
        if controller_key is None:
            raise ValueError(f"{hp.name}: its public key is unknown (keys: controller)")
    missing = {p.name for p in hp.peers if p.public_key is None}
    if missing and not allow_missing_peers:
        raise ValueError(f"{hp.name}: public keys of {', '.join(sorted(missing))} are unknown")
    if missing:
        # A peer never reached has no key yet: its link waits until it has one.
        hp = mode.leave_out(hp, missing)
    return mode.render(
        plan,
        hp,
        env,
        version=__version__,
        mesh=plan.mesh,
        h=hp,
        **host_paths(plan.mesh),
        controller_key=controller_key,
        wireguard=wireguard,
        reresolver=reresolver(plan, hp, env) if hp.named_peers else "",
        names_block=names.hosts_block(plan),
    )


def without_peers(hp: HostPlan, names: set[str]) -> tuple[WgIface, ...]:
    """`hp`'s interfaces without the peers `names` (an interface left with none goes too)."""
    kept = []
    for iface in hp.wg:
        peers = tuple(p for p in iface.peers if p.name not in names)
        if peers or not iface.peers:
            kept.append(dataclasses.replace(iface, peers=peers))
    return tuple(kept)


def reresolver(plan: Plan, hp: HostPlan, env: jinja2.Environment) -> str:
    """The script that points `hp`'s peers known by DNS name at their current addresses: once
    at apply time, then in a loop. The host script carries it and installs it."""
    return env.get_template("scripts/reresolve.sh.j2").render(
        version=__version__, mesh=plan.mesh, h=hp, **host_paths(plan.mesh)
    )


def down_script(mesh: Mesh, env: jinja2.Environment, purge: bool, keep: bool = False) -> str:
    """What `down` runs on every host: everything with this mesh's mark or name goes, in either
    mode (the down script does not ask which). With `keep` (`down --keep`) the mesh is handed
    back instead: its marks, boot unit and state go, the interfaces (and FRR) keep running."""
    return env.get_template("scripts/down.sh.j2").render(
        version=__version__,
        mesh=mesh,
        # Interfaces with the legacy mark are this mesh's only under a name it plans
        # somewhere: its WireGuard interface, its bridge, a wire (named after a host); or,
        # where the inventory names no interface, under the old default names.
        names=[
            mesh.wg_interface,
            mesh.bridge,
            *(LEGACY_NAMES[key] for key in sorted(mesh.unnamed)),
            *(h.name for h in mesh.hosts),
        ],
        **host_paths(mesh),
        purge=purge,
        keep=keep,
    )
