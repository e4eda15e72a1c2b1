"""A mesh keeps its name: where `mesh.name` is not set, the first `up` writes the name it stands
for (the file's stem) into the inventory, as one line under `mesh:` (or a `mesh:` section of
its own), every comment and line of the user's kept. Moving or copying the file later renames
nothing: the mesh's interfaces on the hosts carry that name."""

from __future__ import annotations

from pathlib import Path

import yaml

from mesh_push.inventory.edit import RewriteError, replace

NOTE = "written by the first `up`: the mesh keeps this name wherever the file goes"


def rewrite(text: str, name: str) -> str:
    """`text` with `name: "NAME"` added to its `mesh:` mapping. Raises RewriteError where the
    text cannot be edited safely (flow style, an anchor)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise RewriteError(f"cannot read the inventory as YAML: {e}") from None
    if not isinstance(root, yaml.MappingNode) or root.flow_style or not root.value:
        raise RewriteError("the inventory is not a block-style YAML mapping")
    # A safe name, quoted: 1e3, yes or 0x10 would otherwise be read as something else.
    line = f'name: "{name}"   # {NOTE}\n'
    for key, value in root.value:
        if key.value != "mesh":
            continue
        if not isinstance(value, yaml.MappingNode) or value.flow_style or not value.value:
            raise RewriteError("mesh: is not a block-style mapping")
        first = value.value[0][0]
        column: int = first.start_mark.column
        at: int = first.start_mark.index - column
        return text[:at] + " " * column + line + text[at:]
    top: int = root.value[0][0].start_mark.index
    return text[:top] + "mesh:\n  " + line + text[top:]


def write(path: Path, name: str) -> None:
    """Write the mesh's name into the inventory at `path`; the result must mean the same
    inventory with only the name added."""
    text = path.read_text()
    new_text = rewrite(text, name)
    before, after = yaml.safe_load(text), yaml.safe_load(new_text)
    mesh = before.get("mesh") or {}
    if not isinstance(mesh, dict) or after != {**before, "mesh": {"name": name, **mesh}}:
        raise RewriteError("adding mesh.name would change more than the name: nothing written")
    replace(path, new_text)
