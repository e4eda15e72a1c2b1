"""`measure --write`: the inventory's `latency_ms` values set in its text, at the positions YAML
reports for each link, so the user's comments, order and layout stay; the result is checked to
load as the same inventory with only the latencies changed, then written atomically."""

from __future__ import annotations

from pathlib import Path

import yaml

from mesh_push.inventory.edit import RewriteError, replace


def rewrite(text: str, new: dict[frozenset[str], str]) -> str:
    """The inventory text with each listed link's latency_ms set (or added), nothing else
    touched. Raises RewriteError where the text cannot be edited safely."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise RewriteError(f"cannot read the inventory as YAML: {e}") from None
    if not isinstance(root, yaml.MappingNode):
        raise RewriteError("the inventory is not a YAML mapping")
    links = next((v for k, v in root.value if k.value == "links"), None)
    if not isinstance(links, yaml.SequenceNode):
        raise RewriteError(
            "--write needs `links:` as a list of host pairs (links: full has nowhere to keep "
            "latencies: list the links)"
        )
    edits: list[tuple[int, int, str]] = []
    for item in links.value:
        if isinstance(item, yaml.SequenceNode):  # [a, b]
            names = [x.value for x in item.value]
            key = frozenset(names)
            if key not in new:
                continue
            if not item.flow_style:
                raise RewriteError(
                    f"link {'-'.join(names)} (line {item.start_mark.line + 1}): write it as "
                    "{hosts: [a, b]} to let --write add its latency"
                )
            start, end = item.start_mark.index, item.end_mark.index
            edits.append((start, end, f"{{hosts: {text[start:end]}, latency_ms: {new[key]}}}"))
            continue
        if not isinstance(item, yaml.MappingNode):
            continue
        fields = {k.value: (k, v) for k, v in item.value}
        if "hosts" not in fields or not isinstance(fields["hosts"][1], yaml.SequenceNode):
            continue
        key = frozenset(x.value for x in fields["hosts"][1].value)
        if key not in new:
            continue
        if "latency_ms" in fields:
            v = fields["latency_ms"][1]
            edits.append((v.start_mark.index, v.end_mark.index, new[key]))
        elif item.flow_style:
            last = item.value[-1][1]
            pos = last.end_mark.index
            edits.append((pos, pos, f", latency_ms: {new[key]}"))
        else:
            first_key = item.value[0][0]
            indent = " " * first_key.start_mark.column
            last = item.value[-1][1]
            pos = last.end_mark.index
            # Block mapping: after the last value's end (before any comment on that line).
            edits.append((pos, pos, f"\n{indent}latency_ms: {new[key]}"))
    out = text
    for start, end, rep in sorted(edits, reverse=True):
        out = out[:start] + rep + out[end:]
    return out


def check_rewrite(old: str, new_text: str, new: dict[frozenset[str], str]) -> None:
    """The new text must mean the old one with only those latencies changed."""
    before = yaml.safe_load(old)
    after = yaml.safe_load(new_text)
    expected = before
    for i, item in enumerate(expected["links"]):
        pair = item["hosts"] if isinstance(item, dict) else item
        key = frozenset(pair)
        if key in new:
            if not isinstance(item, dict):
                item = expected["links"][i] = {"hosts": pair}
            item["latency_ms"] = yaml.safe_load(new[key])
    if after != expected:
        raise RewriteError(
            "editing the inventory would change more than the latencies (anchors or aliases "
            "in links?): nothing written"
        )


def write(path: Path, text: str, new: dict[frozenset[str], str]) -> str | None:
    new_text = rewrite(text, new)
    if new_text == text:
        return None
    check_rewrite(text, new_text, new)
    replace(path, new_text)
    return str(path)
