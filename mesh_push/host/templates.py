"""Plan → one shell script per host, from templates/. Pure apart from reading templates."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

from mesh_push import __version__
from mesh_push.core import model
from mesh_push.core.model import Mesh
from mesh_push.files.fsutil import private_dir
from mesh_push.modes.evpn import underlay as evpn
from mesh_push.modes.plan import HostPlan, Plan


def builtin_templates() -> Path:
    package = Path(__file__).parents[1]
    installed = package / "templates"
    # In a source checkout (editable install) the templates sit beside the package.
    return installed if installed.is_dir() else package.parent / "templates"


def load_templates(directory: Path | None = None) -> jinja2.Environment:
    # Imported here: `--help` never renders, and should not pay for Jinja.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory or builtin_templates())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # `{{ value | sh }}`: one shell word whatever the value holds (names come from users).
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    # `# ... {{ value | comment }}`: text in a comment stays on its line (a newline in a value
    # would end the comment and start a command).
    env.filters["comment"] = comment
    env.filters["frr"] = frr_word
    return env


FRR_WORD = re.compile(r"[A-Za-z0-9_.:/-]+")


def frr_word(value: object) -> str:
    """`value` as one word of FRR's configuration, or no configuration at all: the inventory
    allows nothing else in names and addresses, and this holds whatever made the plan."""
    text = str(value)
    if not FRR_WORD.fullmatch(text):
        raise ValueError(f"{text!r} cannot be a word of an FRR configuration")
    return text


def comment(value: object) -> str:
    """`value` as text that stays inside a shell comment: every character that is not
    printable (newlines, other controls, line separators) becomes `?`."""
    return "".join(c if c.isprintable() else "?" for c in str(value))


def host_paths(mesh: Mesh) -> dict[str, Any]:
    """What a mesh owns on a host, and what an older mesh-push left there: every template
    that touches them gets them from here (model.Mesh names them)."""
    return {
        "state_dir": mesh.state_dir,
        "key_file": mesh.key_file,
        "psk_dir": mesh.psk_dir,
        "mark": mesh.mark,
        "boot_unit": mesh.boot_unit,
        "boot_wants": mesh.boot_wants,
        "pathspace": mesh.frr_pathspace,
        "legacy": {
            "mark": model.LEGACY_MARK,
            "state_dir": model.LEGACY_STATE_DIR,
            "boot_unit": model.LEGACY_BOOT_UNIT,
            "boot_wants": model.LEGACY_BOOT_WANTS,
            "key_file": mesh.legacy_key_file,
        },
    }


def render_host(
    plan: Plan,
    hp: HostPlan,
    env: jinja2.Environment,
    allow_missing_peers: bool = False,
    wireguard: str = "auto",
) -> str:
    """`wireguard`: how the interface is made, as the host's facts chose (backends.py);
    "auto" (no facts, as for `mesh-push render`) tries the kernel, then wireguard-go.

    No private key is ever in the script. With `keys: controller` the script names the host's
    public key (so its digest changes with the key) and expects the key file in place: `up`
    writes it just before, from the apply program's standard input (hostcmd.apply)."""
    controller_key = None
    if plan.mesh.keys == "controller":
        controller_key = hp.public_key
        if controller_key is None:
            raise ValueError(f"{hp.name}: its public key is unknown (keys: controller)")
    if hp.evpn is not None:
        return _render_evpn_host(plan, hp, env, allow_missing_peers, wireguard, controller_key)
    missing = {p.name for p in hp.peers if p.public_key is None}
    if missing and not allow_missing_peers:
        raise ValueError(f"{hp.name}: public keys of {', '.join(sorted(missing))} are unknown")
    if missing:
        # A peer never reached has no key yet: leave its tunnel and wire out until it has.
        hp = dataclasses.replace(
            hp,
            peers=tuple(p for p in hp.peers if p.name not in missing),
            wires=tuple(w for w in hp.wires if w.name not in missing),
        )
    return env.get_template("host.sh.j2").render(
        version=__version__,
        mesh=plan.mesh,
        h=hp,
        **host_paths(plan.mesh),
        controller_key=controller_key,
        wireguard=wireguard,
        reresolver=render_reresolver(plan, hp, env) if hp.named_peers else "",
    )


def _render_evpn_host(
    plan: Plan,
    hp: HostPlan,
    env: jinja2.Environment,
    allow_missing_peers: bool,
    wireguard: str,
    controller_key: str | None,
) -> str:
    assert hp.evpn is not None
    e = hp.evpn
    missing = {lk.peer for lk in e.links if lk.public_key is None}
    if missing and not allow_missing_peers:
        raise ValueError(f"{hp.name}: public keys of {', '.join(sorted(missing))} are unknown")
    if missing:
        # A peer never reached has no key yet: its link waits until it has one.
        e = dataclasses.replace(e, links=tuple(lk for lk in e.links if lk.peer not in missing))
    return env.get_template("host-evpn.sh.j2").render(
        version=__version__,
        mesh=plan.mesh,
        h=hp,
        e=e,
        vx=plan.mesh.evpn_vxlan,
        **host_paths(plan.mesh),
        controller_key=controller_key,
        wireguard=wireguard,
        frr_conf=render_frr(plan, hp, e, env),
        frr_daemons=env.get_template("frr-daemons.j2").render(
            version=__version__, mesh=plan.mesh, e=e
        ),
    )


def render_frr(plan: Plan, hp: HostPlan, e: evpn.EvpnHost, env: jinja2.Environment) -> str:
    return env.get_template("frr.conf.j2").render(version=__version__, mesh=plan.mesh, h=hp, e=e)


def render_reresolver(plan: Plan, hp: HostPlan, env: jinja2.Environment) -> str:
    """The script that points `hp`'s peers known by DNS name at their current addresses: once
    at apply time, then in a loop. The host script carries it and installs it."""
    return env.get_template("reresolve.sh.j2").render(
        version=__version__,
        mesh=plan.mesh,
        h=hp,
        **host_paths(plan.mesh),
    )


def render_down(plan: Plan, env: jinja2.Environment, purge: bool) -> str:
    return env.get_template("down.sh.j2").render(
        version=__version__,
        mesh=plan.mesh,
        # Interfaces with the legacy mark are this mesh's only under a name it plans
        # somewhere: its WireGuard interface, its bridge, a wire (named after a host).
        names=[plan.mesh.wg_interface, plan.mesh.bridge, *(h.name for h in plan.mesh.hosts)],
        **host_paths(plan.mesh),
        purge=purge,
    )


def write_all(plan: Plan, out: Path, env: jinja2.Environment) -> list[Path]:
    """`mesh-push render`: one 0600 file per host in `out`, made 0700 if missing; an existing
    directory is used as it is, if only we can write to it (fsutil.private_dir)."""
    scripts = {hp.name: render_host(plan, hp, env) for hp in plan.hosts}
    with private_dir(out) as d:
        return [d.write(f"{name}.sh", text, 0o600) for name, text in scripts.items()]
