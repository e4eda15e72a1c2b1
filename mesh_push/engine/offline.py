"""The commands that contact no host (engine/commands.py has the others): `plan` and `render`,
Keys (read only: they make no key) → Plan (→ Render). Nothing here loads SSH."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mesh_push import modes
from mesh_push.core.model import Mesh
from mesh_push.engine import keys
from mesh_push.files.fsutil import private_dir
from mesh_push.modes import scripts
from mesh_push.modes.base import Plan

if TYPE_CHECKING:
    import jinja2


def plan(mesh: Mesh) -> Plan:
    """`plan`: read only, it makes no key."""
    return modes.of(mesh).plan(mesh, keys.public_keys(mesh))


def render(mesh: Mesh, templates: jinja2.Environment, out: Path) -> tuple[list[Path], list[str]]:
    """`render`: one 0600 file per host in `out`, made 0700 if missing; an existing directory
    is used as it is, if only we can write to it (fsutil.private_dir). It makes no key and
    writes nothing else. A host whose public key is not known yet (no `up` has run) gets a
    stand-in key, as `up --check` does; the second value names those hosts."""
    known = keys.public_keys(mesh)
    stand_ins = [h.name for h in mesh.hosts if h.name not in known]
    if stand_ins and mesh.keys == "controller" and (hint := keys.legacy_hint(mesh)):
        raise keys.KeystoreError(f"no keystore at {mesh.keystore}.{hint}")
    known.update((n, keys.stand_in_key(n)) for n in stand_ins)
    mode = modes.of(mesh)
    p = mode.plan(mesh, known)
    texts = {hp.name: scripts.host_script(mode, p, hp, templates) for hp in p.hosts}
    with private_dir(out) as d:
        return [d.write(f"{name}.sh", text, 0o600) for name, text in texts.items()], stand_ins
