"""A mesh keeps its names. Where `mesh.name` is not set, the first `up` writes the name it stands
for (the file's stem) into the inventory; where the inventory names no WireGuard interface or
bridge and the hosts have the old default names (engine/names.py), it writes those. Each is
one line (or one key in an existing mapping) under `mesh:`, every comment and line of the
user's kept. Moving or copying the file later renames nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from mesh_push.inventory.edit import RewriteError, replace

NOTE = "written by the first `up`: the mesh keeps this name wherever the file goes"
KEPT = "kept by `up`: the mesh was made under this name"

Field = tuple[str, ...]  # a path under `mesh:`, like ("name",) or ("bridge", "name")


def rewrite(text: str, fields: dict[Field, str]) -> str:
    """`text` with each field set under its `mesh:` mapping (none of them may be set yet).
    Raises RewriteError where the text cannot be edited safely (flow style, an anchor)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise RewriteError(f"cannot read the inventory as YAML: {e}") from None
    if not isinstance(root, yaml.MappingNode) or root.flow_style or not root.value:
        raise RewriteError("the inventory is not a block-style YAML mapping")
    mesh = next((v for k, v in root.value if k.value == "mesh"), None)
    if mesh is not None and (
        not isinstance(mesh, yaml.MappingNode) or mesh.flow_style or not mesh.value
    ):
        raise RewriteError("mesh: is not a block-style mapping")
    edits: list[tuple[int, str]] = []
    lines: list[str] = []
    for path, value in fields.items():
        note = NOTE if path == ("name",) else KEPT
        sub = None
        if len(path) == 2 and mesh is not None:
            sub = next((v for k, v in mesh.value if k.value == path[0]), None)
        if len(path) == 1 or sub is None:
            entry = (
                f"{path[0]}: {value}" if len(path) == 1 else f"{path[0]}: {{{path[1]}: {value}}}"
            )
            lines.append(f"{entry}   # {note}\n")
        elif isinstance(sub, yaml.MappingNode) and sub.flow_style:
            edits.append(
                (sub.start_mark.index + 1, f"{path[1]}: {value}" + (", " if sub.value else ""))
            )
        elif isinstance(sub, yaml.MappingNode) and sub.value:
            first = sub.value[0][0]
            at = first.start_mark.index - first.start_mark.column
            edits.append((at, " " * first.start_mark.column + f"{path[1]}: {value}   # {note}\n"))
        else:
            raise RewriteError(f"mesh.{path[0]} is not a mapping")
    if lines:
        if mesh is None:
            top: int = root.value[0][0].start_mark.index
            edits.append((top, "mesh:\n" + "".join("  " + line for line in lines)))
        else:
            first = mesh.value[0][0]
            column: int = first.start_mark.column
            at = first.start_mark.index - column
            edits.append((at, "".join(" " * column + line for line in lines)))
    out = text
    for at, new in sorted(edits, reverse=True):
        out = out[:at] + new + out[at:]
    return out


def write(path: Path, fields: dict[Field, str]) -> None:
    """Write `fields` into the `mesh:` section of the inventory at `path`; the result must mean
    the same inventory with only those added."""
    text = path.read_text()
    new_text = rewrite(text, {f: _quoted(v) for f, v in fields.items()})
    before, after = yaml.safe_load(text), yaml.safe_load(new_text)
    expected: dict[str, Any] = copy.deepcopy(before)
    mesh = expected.setdefault("mesh", {})
    if not isinstance(mesh, dict):
        raise RewriteError("mesh: is not a mapping: nothing written")
    for field, value in fields.items():
        here = mesh
        for part in field[:-1]:
            here = here.setdefault(part, {})
        here[field[-1]] = value
    if after != expected:
        raise RewriteError("adding the names would change more than them: nothing written")
    replace(path, new_text)


def _quoted(value: str) -> str:
    # A safe name, quoted: 1e3, yes or 0x10 would otherwise be read as something else.
    return f'"{value}"'
