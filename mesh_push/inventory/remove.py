"""`down HOST...`: the inventory without some hosts and their links, edited in its text so
that the user's comments, order and layout stay. Every host and link that remains keeps its
number and VNI: where one was chosen automatically and would move (docs/inventory.md
#allocation), it is written down. The result is checked to load as exactly the mesh without
those hosts, with the same checks as any inventory (a mesh left split is refused). Pure but
for `write`."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path

import yaml

from mesh_push.core.model import Mesh
from mesh_push.core.problems import InventoryError, UsageError, format_path, printable
from mesh_push.inventory.edit import RewriteError, replace
from mesh_push.inventory.schema import parse


def without(mesh: Mesh, text: str, gone: Collection[str]) -> tuple[Mesh, str]:
    """The mesh left once `gone` leave it, and the inventory's new text. UsageError where the
    rest would not be a mesh (every reason); RewriteError where the text cannot be edited
    safely. Nothing is written."""
    names = [h.name for h in mesh.hosts]
    unknown = [n for n in gone if n not in names]
    if unknown:
        raise UsageError(f"not hosts of {mesh.source}: {', '.join(map(printable, unknown))}")
    if len(set(names) - set(gone)) < 2:
        raise UsageError(
            "that would leave fewer than two hosts: `mesh-push down` without host names takes "
            "the whole mesh down"
        )
    reasons = []
    if mesh.stp.root in gone:
        reasons.append(f"mesh.stp.root is {mesh.stp.root}: name another root first")
    for h in mesh.hosts:
        if h.name not in gone and h.ssh.via in gone:
            reasons.append(f"{h.name} is reached via {h.ssh.via}: change its ssh.via first")
    if reasons:
        raise UsageError("; ".join(reasons))
    stays = tuple(h for h in mesh.hosts if h.name not in gone)
    kept = tuple(lk for lk in mesh.links if not set(lk.hosts) & set(gone))
    rest = dataclasses.replace(mesh, hosts=stays, links=kept)
    first = _cut(text, gone)
    moved = _load(first, mesh, gone)
    numbers = {h.name: h.number for h, now in zip(stays, moved.hosts, strict=True) if h != now}
    vnis = {lk.hosts: lk.vni for lk, now in zip(kept, moved.links, strict=True) if lk != now}
    new_text = _pin(first, numbers, vnis) if numbers or vnis else first
    if _load(new_text, mesh, gone) != rest:
        raise RewriteError(
            "removing the hosts from the inventory would change more than them and their links "
            "(anchors or aliases?): nothing done"
        )
    return rest, new_text


def write(path: Path, new_text: str) -> None:
    replace(path, new_text)


def _load(text: str, mesh: Mesh, gone: Collection[str]) -> Mesh:
    try:
        return parse(text, mesh.source)
    except InventoryError as e:
        why = "; ".join(f"{format_path(p.path)}: {printable(p.message)}" for p in e.problems)
        names = ", ".join(gone)
        raise UsageError(f"without {names} the inventory would not be a mesh: {why}") from None


def _compose(text: str) -> yaml.MappingNode:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise RewriteError(f"cannot read the inventory as YAML: {e}") from None
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise RewriteError("the inventory is not a block-style YAML mapping")
    return root


def _section(root: yaml.MappingNode, key: str) -> yaml.Node | None:
    return next((v for k, v in root.value if k.value == key), None)


def _last_line(node: yaml.Node) -> int:
    """The last line that holds any of `node` (a block collection's end mark is already on the
    next entry's line)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1])
    line: int = node.end_mark.line
    return line


def _pair(item: yaml.Node) -> frozenset[str] | None:
    if isinstance(item, yaml.MappingNode):
        hosts = next((v for k, v in item.value if k.value == "hosts"), None)
        item = hosts if hosts is not None else item
    if isinstance(item, yaml.SequenceNode):
        return frozenset(str(x.value) for x in item.value)
    return None


def _cut(text: str, gone: Collection[str]) -> str:
    """The text without the lines of `gone`'s entries under `hosts:` and their links."""
    root = _compose(text)
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()
    hosts = _section(root, "hosts")
    if not isinstance(hosts, yaml.MappingNode) or hosts.flow_style:
        raise RewriteError("`hosts:` is not a block-style mapping: remove the hosts by hand")
    for key, value in hosts.value:
        if key.value in gone:
            drop |= _own_lines(lines, key.start_mark, _last_line(value), "")
    links = _section(root, "links")
    if isinstance(links, yaml.SequenceNode):
        if links.flow_style:
            raise RewriteError("`links:` is a flow-style list: remove the links by hand")
        for item in links.value:
            pair = _pair(item)
            if pair is None:
                raise RewriteError(f"a link on line {item.start_mark.line + 1} names no hosts")
            if pair & set(gone):
                drop |= _own_lines(lines, item.start_mark, _last_line(item), "-")
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def _own_lines(lines: list[str], start: yaml.Mark, last: int, lead: str) -> set[int]:
    """The lines from `start` to `last`, which must hold nothing else: before `start` only
    indentation (and a list's `-`)."""
    before = lines[start.line][: start.column].strip()
    if before not in ("", lead):
        raise RewriteError(f"line {start.line + 1} holds more than one entry: edit it by hand")
    return set(range(start.line, last + 1))


def _pin(text: str, numbers: dict[str, int], vnis: dict[tuple[str, str], int]) -> str:
    """Each host of `numbers` with its `number:` and each link of `vnis` with its `vni:`
    written down, where the removal would otherwise move them."""
    root = _compose(text)
    edits: list[tuple[int, int, str]] = []
    hosts = _section(root, "hosts")
    assert isinstance(hosts, yaml.MappingNode)
    for key, value in hosts.value:
        if key.value in numbers:
            edits.append(_add(text, value, "number", numbers[key.value], key.value))
    links = _section(root, "links")
    by_pair = {frozenset(pair): vni for pair, vni in vnis.items()}
    if by_pair and not isinstance(links, yaml.SequenceNode):
        raise RewriteError(
            "removing the hosts would renumber the VNIs of the links left (links: full): "
            "list the links with their vni first"
        )
    for item in links.value if isinstance(links, yaml.SequenceNode) else []:
        pair = _pair(item)
        if pair in by_pair:
            vni = by_pair[pair]
            if isinstance(item, yaml.SequenceNode) and item.flow_style:  # [a, b]
                start, end = item.start_mark.index, item.end_mark.index
                edits.append((start, end, f"{{hosts: {text[start:end]}, vni: {vni}}}"))
            else:
                edits.append(_add(text, item, "vni", vni, "-".join(sorted(pair))))
    out = text
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new + out[end:]
    return out


def _add(text: str, node: yaml.Node, key: str, value: int, what: str) -> tuple[int, int, str]:
    if isinstance(node, yaml.MappingNode) and node.flow_style:
        at = node.start_mark.index + 1  # just after `{`
        return (at, at, f"{key}: {value}" + (", " if node.value else ""))
    if isinstance(node, yaml.MappingNode) and node.value:
        last = node.value[-1][1]
        if not (isinstance(last, yaml.ScalarNode) or getattr(last, "flow_style", False)):
            raise RewriteError(f"{what}: write its {key} ({value}) by hand, then remove")
        indent = " " * node.value[0][0].start_mark.column
        return (last.end_mark.index, last.end_mark.index, f"\n{indent}{key}: {value}")
    raise RewriteError(f"{what}: write its {key} ({value}) by hand, then remove")
