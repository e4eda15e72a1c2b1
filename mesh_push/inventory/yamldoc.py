"""YAML with lines, hardened: every node's line kept; no file can make the loader build a huge
graph, nest too deep, or construct anything but plain values. Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mesh_push.core.problems import InventoryError, Problem, YamlPath
from mesh_push.core.section import kind

MAX_NODES = 100_000  # YAML values after expanding aliases: stops a "billion laughs" file
# Nodes parsed (keys and values, aliases not expanded): a file within MAX_NODES values has at
# most one key per value, so this refuses (earlier) what the value count would, except a file
# of over 100,000 duplicate or merge keys, whose values are never walked.
MAX_PARSED = 2 * MAX_NODES + 1
MAX_DEPTH = 32  # an inventory nests 5 deep (hosts.NAME.ssh.address); a flood of [ is refused
STANDARD_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class _Unreadable(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _BadSyntax(InventoryError):
    """Not valid YAML: the pure-Python parser may explain it better than libyaml."""


# libyaml's parser when PyYAML was built with it: the same events and marks, several times
# faster on large inventories.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compose(text: str, file: Path) -> tuple[Any, dict[YamlPath, int], list[Problem], set[YamlPath]]:
    try:
        return _compose_with(_Loader, text, file)
    except _BadSyntax:
        if _Loader is yaml.SafeLoader:
            raise
        # A broken file: the pure-Python parser's messages are the ones we explain well.
        return _compose_with(yaml.SafeLoader, text, file)


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


def _nodes(loader: Any) -> yaml.Node | None:
    """The single document's node graph, built from the parser's events without recursion:
    at most MAX_PARSED nodes, nested at most MAX_DEPTH deep, so that no file can make the
    loader build a huge graph or overflow a stack before it is refused."""
    loader.get_event()  # StreamStartEvent
    if loader.check_event(yaml.StreamEndEvent):
        loader.get_event()
        return None
    start = loader.get_event()  # DocumentStartEvent
    anchors: dict[str, yaml.Node] = {}
    open_: list[yaml.CollectionNode] = []
    keys: list[yaml.Node | None] = []  # per open mapping: a key waiting for its value
    root: yaml.Node | None = None
    parsed = 0
    while True:
        event: Any = loader.get_event()
        if isinstance(event, yaml.DocumentEndEvent):
            break
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            done = open_.pop()
            keys.pop()
            done.end_mark = event.end_mark
            continue
        node: yaml.Node
        mark: Any = event.start_mark  # libyaml's marks or PyYAML's: the same fields
        end: Any = event.end_mark
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise yaml.composer.ComposerError(
                    None, None, f"found undefined alias {event.anchor!r}", mark
                )
            node = anchors[event.anchor]
        else:
            parsed += 1
            if parsed > MAX_PARSED:
                raise _Unreadable(_line(event.start_mark), f"more than {MAX_NODES} values")
            tag = event.tag
            if isinstance(event, yaml.ScalarEvent):
                if tag is None or tag == "!":
                    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, mark, end, style=event.style)
            elif isinstance(event, yaml.SequenceStartEvent):
                if tag is None or tag == "!":
                    tag = loader.resolve(yaml.SequenceNode, None, event.implicit)
                node = yaml.SequenceNode(tag, [], mark, None, event.flow_style)
            else:
                if tag is None or tag == "!":
                    tag = loader.resolve(yaml.MappingNode, None, event.implicit)
                node = yaml.MappingNode(tag, [], mark, None, event.flow_style)
            if event.anchor is not None:
                if event.anchor in anchors:
                    first = _line(anchors[event.anchor].start_mark)
                    raise _Unreadable(
                        _line(event.start_mark),
                        f"YAML anchor &{event.anchor} is defined twice (first on line {first})",
                    )
                anchors[event.anchor] = node
        if not open_:
            root = node
        else:
            parent = open_[-1]
            if isinstance(parent, yaml.SequenceNode):
                parent.value.append(node)
            elif keys[-1] is None:
                keys[-1] = node
            else:
                parent.value.append((keys[-1], node))
                keys[-1] = None
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise _Unreadable(
                    _line(event.start_mark), f"values nested more than {MAX_DEPTH} levels deep"
                )
            assert isinstance(node, yaml.CollectionNode)
            open_.append(node)
            keys.append(None)
    if not loader.check_event(yaml.StreamEndEvent):
        second: Any = loader.get_event()
        raise yaml.composer.ComposerError(
            "expected a single document in the stream",
            start.start_mark,
            "but found another document",
            second.start_mark,
        )
    loader.get_event()
    return root


def _compose_with(
    loader_class: Any, text: str, file: Path
) -> tuple[Any, dict[YamlPath, int], list[Problem], set[YamlPath]]:
    """Parse YAML keeping each node's line. Syntax errors raise at once (nothing else can be
    read); a duplicate key keeps its first value and is reported with the other problems, as
    is a value YAML cannot make (its path is then silenced: one mistake, one problem)."""
    lines: dict[YamlPath, int] = {}
    found: list[Problem] = []
    silenced: set[YamlPath] = set()
    try:
        # The reader already rejects control characters here, so this is inside the try.
        loader = loader_class(text)
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        why = f"not a YAML text file: control character #x{e.character:04x}"
        raise InventoryError([Problem(file, (), line, why)]) from None
    aliased = [False]
    try:
        root = _nodes(loader)
        if root is None:
            return None, lines, found, silenced

        budget = [MAX_NODES]
        inside: set[int] = set()  # the nodes being walked: an alias to one of them is a loop
        walked: set[int] = set()  # a node walked twice is reached through an alias

        def walk(node: yaml.Node, path: YamlPath) -> Any:
            budget[0] -= 1
            if budget[0] < 0:
                why = f"more than {MAX_NODES} values"
                if aliased[0]:
                    why += " (aliases expanding?)"
                raise _Unreadable(_line(node.start_mark), why)
            if id(node) in inside:
                raise _Unreadable(_line(node.start_mark), "a YAML alias that contains itself")
            if id(node) in walked:
                aliased[0] = True
            walked.add(id(node))
            if len(path) > MAX_DEPTH:
                # Aliases can nest deeper than the text does.
                raise _Unreadable(
                    _line(node.start_mark), f"values nested more than {MAX_DEPTH} levels deep"
                )
            lines[path] = node.start_mark.line + 1
            if isinstance(node, yaml.CollectionNode) and node.tag not in STANDARD_TAGS:
                raise _Unreadable(_line(node.start_mark), f"YAML tag {node.tag} is not allowed")
            inside.add(id(node))
            try:
                return walk_node(node, path)
            finally:
                inside.discard(id(node))

        def scalar(node: yaml.Node, path: YamlPath) -> Any:
            try:
                return loader.construct_object(node, deep=True)
            except (ValueError, OverflowError) as e:
                # int() of more than 4300 digits, a date like 2024-13-45, ...
                kind = str(node.tag).rpartition(":")[2]
                why = f"YAML cannot read this {kind} ({' '.join(str(e).split())[:80]})"
                if "digits" in str(e):
                    why = f"a number of {len(str(node.value))} digits: far too long"
                found.append(Problem(file, path, _line(node.start_mark), why))
                silenced.add(path)
                return None

        def walk_node(node: yaml.Node, path: YamlPath) -> Any:
            if isinstance(node, yaml.MappingNode):
                out: dict[Any, Any] = {}
                key_line: dict[Any, int] = {}
                for knode, vnode in node.value:
                    kline = knode.start_mark.line + 1
                    if knode.tag == "tag:yaml.org,2002:merge":
                        found.append(
                            Problem(file, path, kline, "YAML merge keys (<<) are not supported")
                        )
                        continue
                    if not isinstance(knode, yaml.ScalarNode):
                        # A list or mapping as a key: not walked (it could be a huge alias).
                        text = "[...]" if isinstance(knode, yaml.SequenceNode) else "{...}"
                        why = "keys must be plain names, not a list or a mapping"
                        found.append(Problem(file, (*path, text), kline, why))
                        continue
                    kpath = (*path, str(knode.value))
                    key = scalar(knode, kpath)
                    if kpath in silenced:
                        continue
                    if not isinstance(key, str | int) or isinstance(key, bool):
                        why = "keys must be plain names"
                        if isinstance(key, bool) or key is None:
                            why += f" (YAML reads {knode.value!r} as {kind(key)}: quote it)"
                        found.append(Problem(file, kpath, kline, why))
                        continue
                    if key in out:
                        first = key_line[key]
                        found.append(
                            Problem(
                                file,
                                (*path, key),
                                kline,
                                f"duplicate key (first on line {first}; only that one is used)",
                            )
                        )
                        continue
                    key_line[key] = kline
                    out[key] = walk(vnode, (*path, key))
                    lines[(*path, key)] = kline  # point at the key, not its block below
                return out
            if isinstance(node, yaml.SequenceNode):
                return [walk(v, (*path, i)) for i, v in enumerate(node.value)]
            return scalar(node, path)

        data = walk(root, ())
    except _Unreadable as e:
        raise InventoryError([Problem(file, (), e.line, e.message)]) from None
    except RecursionError:
        # Only the pure-Python parser recurses (the events above do not): a file nested
        # deeper than its stack.
        why = f"values nested more than {MAX_DEPTH} levels deep"
        raise InventoryError([Problem(file, (), None, why)]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = mark.line + 1 if mark else None
        why = e.problem or str(e)
        if "'\\t'" in why:
            why = "a tab character: YAML indents with spaces only"
        elif why.startswith("but ") and e.context:
            why = f"{e.context}, {why}"
        elif e.context and e.context_mark and e.context_mark.line + 1 != at:
            why += f" ({e.context} that starts on line {e.context_mark.line + 1})"
        raise _BadSyntax([Problem(file, (), at, f"not valid YAML: {why}")]) from None
    except yaml.YAMLError as e:
        why = " ".join(str(e).split())
        raise _BadSyntax([Problem(file, (), None, f"not valid YAML: {why}")]) from None
    finally:
        loader.dispose()
    return data, lines, found, silenced
