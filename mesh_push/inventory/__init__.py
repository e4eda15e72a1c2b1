"""Inventory YAML → validated `Mesh`. Every problem is collected before anything is raised."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import difflib
import hashlib
import ipaddress
import math
import os
import re
import stat
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from mesh_push.core.model import (
    Become,
    EndpointKind,
    Evpn,
    Host,
    KeyMode,
    LabKind,
    LabLogin,
    LabSettings,
    Link,
    Mesh,
    MeshMode,
    Mtu,
    MtuPolicy,
    SshDefaults,
    SshTarget,
    Stp,
)
from mesh_push.core.problems import InventoryError, Problem, Problems, YamlPath, is_control

T = TypeVar("T")
MISSING: Any = object()

LAB_ROOT = Path("/run/mesh-push/lab")
RESERVED_NAMES = {"lo", "all", "default", "br", "dev"}
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
IFNAME_MAX = 15  # the kernel's IFNAMSIZ less the NUL
MESH_NAME_MAX = 64
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]*\$?")
USER_NAME_MAX = 32
PATH_MAX = 4096
LOCATION_MAX = 200
LATENCY_MAX_MS = 60_000.0
CONNECT_TIMEOUT_MAX = 3600.0
MAX_JUMPS = 8  # jump hosts before a host: ssh.py follows no more
THIS_NETWORK = IPv4Network("0.0.0.0/8")
BROADCAST = IPv4Address("255.255.255.255")
LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,5}$")
DNS_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
RERESOLVE_MAX = 86_400
VNI_MAX = 16_777_215
# wg-quick assumes the worst case (IPv6 underlay): 80 bytes of WireGuard overhead.
WG_OVERHEAD = 80
VXLAN_OVERHEAD = 50
MIN_MTU = 1280
STANDARD_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
BECOME: tuple[Become, ...] = ("sudo", "none")
LAB_LOGINS: tuple[LabLogin, ...] = ("root", "sudo", "sudo-password")
LAB_KINDS: tuple[LabKind, ...] = ("netns", "vm")
MODES: tuple[MeshMode, ...] = ("stp", "evpn")
# In evpn mode a link's VNI numbers its WireGuard interface (WG-VNI), its port (port + VNI)
# and its /31 (169.254.0.0 + 2 × VNI): up to here the /31s stay below 169.254.169.0/24, where
# clouds answer their metadata requests.
EVPN_VNI_MAX = 21_000
# WG-VNI and WG-vx must be interface names: WG leaves room for "-21000".
EVPN_WG_NAME_MAX = IFNAME_MAX - 6
ASN_MAX = 4_294_967_294
MAX_NODES = 100_000  # YAML values after expanding aliases: stops a "billion laughs" file
# Nodes parsed (keys and values, aliases not expanded): a file within MAX_NODES values has at
# most one key per value, so this refuses (earlier) what the value count would, except a file
# of over 100,000 duplicate or merge keys, whose values are never walked.
MAX_PARSED = 2 * MAX_NODES + 1
MAX_DEPTH = 32  # an inventory nests 5 deep (hosts.NAME.ssh.address); a flood of [ is refused
MAX_BYTES = 8 * 1024 * 1024  # an inventory of 10,000 hosts is about 1 MiB


def lab_dir(name: str) -> Path:
    return LAB_ROOT / name


# --------------------------------------------------------------------------- YAML with lines


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


def _compose(
    text: str, file: Path
) -> tuple[Any, dict[YamlPath, int], list[Problem], set[YamlPath]]:
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
                            why += f" (YAML reads {knode.value!r} as {_kind(key)}: quote it)"
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


# --------------------------------------------------------------------------- typed field reader


class Section:
    """A mapping being read: typed getters record problems and unread keys are reported."""

    def __init__(self, data: Any, path: YamlPath, problems: Problems) -> None:
        self.path = path
        self.problems = problems
        self.ok = isinstance(data, dict)
        if data is not None and not self.ok:
            problems.add(path, f"must be a mapping, not {_kind(data)}")
        self.data: dict[Any, Any] = data if isinstance(data, dict) else {}
        self.seen: set[Any] = set()

    def raw(self, key: str, default: Any = MISSING) -> Any:
        self.seen.add(key)
        if key in self.data and self.data[key] is not None:
            return self.data[key]
        if default is MISSING and self.ok:
            self.problems.add((*self.path, key), "required field is missing")
        return default

    def get(self, key: str, want: type[T], default: Any = MISSING, what: str = "") -> T:
        value = self.raw(key, default)
        if value is default:
            return cast(T, None if value is MISSING else value)
        # YAML 1.1 booleans are ints to Python; a port of `yes` is still an error.
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            return cast(T, float(value))
        if want is float and isinstance(value, float) and not math.isfinite(value):
            self.problems.add((*self.path, key), f"must be a finite number, not {value}")
            return cast(T, default if default is not MISSING else None)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            self.problems.add(
                (*self.path, key), f"must be {what or _article(want)}, not {_kind(value)}"
            )
            return cast(T, default if default is not MISSING else None)
        return value

    def int_in(self, key: str, lo: int, hi: int, default: Any = MISSING) -> Any:
        value = self.get(key, int, default, "a whole number")
        if isinstance(value, int) and not lo <= value <= hi:
            self.problems.add((*self.path, key), f"must be between {lo} and {hi}, not {value}")
            return default if default is not MISSING else None
        return value

    def choice(self, key: str, options: tuple[str, ...], default: Any = MISSING) -> Any:
        value = self.get(key, str, default, "one of " + ", ".join(options))
        if isinstance(value, str) and value not in options:
            self.problems.add(
                (*self.path, key), f"must be one of {', '.join(options)}, not {value!r}"
            )
            return default if default is not MISSING else None
        return value

    def network(self, key: str, default: str) -> IPv4Network | None:
        value = self.get(key, str, default, "an IPv4 network like 10.88.88.0/24")
        try:
            net = IPv4Network(value, strict=True)
        except ValueError as e:
            self.problems.add((*self.path, key), f"not an IPv4 network: {e}")
            return None
        if net.num_addresses < 4:
            self.problems.add((*self.path, key), "network too small: at least a /30")
            return None
        return net

    def sub(self, key: str) -> Section:
        return Section(self.raw(key, None), (*self.path, key), self.problems)

    def done(self) -> None:
        for key in self.data:
            if key in self.seen:
                continue
            known = [str(k) for k in self.seen]
            hint = difflib.get_close_matches(str(key), known, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            self.problems.add((*self.path, key), f"unknown key{extra}")


def _kind(value: Any) -> str:
    names = {
        bool: "true/false",
        type(None): "null",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        bytes: "binary data",
        datetime.date: "a date",
        datetime.datetime: "a date and time",
    }
    return names.get(type(value), type(value).__name__)


def _article(t: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", list: "a list"}.get(
        t, t.__name__
    )


def _chars(chars: set[str] | list[str]) -> str:
    return repr("".join(sorted(set(chars))))


def _unsafe(name: str) -> str | None:
    if SAFE_NAME.fullmatch(name):
        return None
    if bad := set(name) - NAME_CHARS:
        return f"it holds {_chars(bad)}: only ASCII letters, digits, '-' and '_' are allowed"
    return f"it starts with {name[0]!r}, not with a letter or a digit"


def name_problem(name: str, most: int) -> str | None:
    """Why `name` is not a safe name of 1 to `most` bytes: ASCII letters, digits, '-' and
    '_', starting with a letter or a digit. Such a name can be an interface name, a file name
    and a shell word as it is: it holds no option, path, quote, glob or control character."""
    size = len(name.encode())
    if not 1 <= size <= most:
        return f"must be 1 to {most} bytes, not {size}"
    if why := _unsafe(name):
        return f"is not a safe name: {why}"
    return None


def ifname_problem(name: str) -> str | None:
    if not 1 <= len(name.encode()) <= IFNAME_MAX:
        return f"must be 1 to {IFNAME_MAX} bytes to be an interface name"
    if why := _unsafe(name):
        return f"cannot be an interface name: {why}"
    return None


def user_problem(user: str) -> str | None:
    if not 1 <= len(user) <= USER_NAME_MAX or not USER_NAME.fullmatch(user):
        return (
            f"not a user name: 1 to {USER_NAME_MAX} of a-z, 0-9, '_' and '-', starting with a "
            "letter or '_' (and perhaps a final '$')"
        )
    return None


def control_problem(text: str) -> str | None:
    if bad := [ch for ch in text if is_control(ch)]:
        return f"holds a control character ({_chars(bad)[1:-1]})"
    return None


def path_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > PATH_MAX:
        return f"is {len(value)} characters long, more than a path's {PATH_MAX}"
    if why := control_problem(value):
        return why
    if value.startswith("~"):
        try:
            Path(value).expanduser()
        except RuntimeError:
            return f"starts with {value.partition('/')[0]}, a user this machine does not know"
    return None


def text_problem(value: str, most: int) -> str | None:
    if len(value) > most:
        return f"is {len(value)} characters long, more than {most}"
    return control_problem(value)


def public_key_problem(key: str) -> str | None:
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    if len(key) != 44 or len(raw) != 32 or base64.b64encode(raw).decode() != key:
        return "not a WireGuard public key (44 characters of canonical base64 for 32 bytes)"
    return None


def _ip(value: str) -> IPv4Address | IPv6Address | None:
    """An IP address; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 it maps."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def unusable_ip(ip: IPv4Address | IPv6Address, endpoint: bool) -> str | None:
    """Why `ip` cannot be dialled: by the controller (SSH), or by every peer (`endpoint`)."""
    if ip.is_unspecified or ip in THIS_NETWORK:
        return f"{ip} means 'this host' (0.0.0.0/8, ::): nothing can dial it"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip == BROADCAST:
        return f"{ip} is the broadcast address"
    if not endpoint:
        return None
    if ip.is_loopback:
        return f"{ip} is a loopback address: each peer would dial itself"
    if ip.is_link_local:
        return f"{ip} is a link-local address: it is not routed, so peers elsewhere cannot reach it"
    if isinstance(ip, IPv6Address) and ip.scope_id:
        return f"{ip} has a zone (%{ip.scope_id}), which means nothing to the peers"
    return None


def dns_name_problem(name: str) -> str | None:
    """Why `name` is not a host name by RFC 1123 (one trailing dot, the DNS root, allowed)."""
    bare = name[:-1] if name.endswith(".") else name
    if not bare:
        return "it is empty"
    if not bare.isascii():
        return "only ASCII: write an internationalised name in its xn-- form"
    if len(bare) > 253:
        return f"it has {len(bare)} characters, more than a DNS name's 253"
    labels = bare.split(".")
    for label in labels:
        if not label:
            return "it has an empty label: a leading dot, or two dots in a row"
        if len(label) > 63:
            return f"its label {label[:16]}... has {len(label)} characters, more than 63"
        if bad := sorted(set(label) - DNS_LABEL_CHARS):
            return f"its label {label!r} holds {''.join(bad)!r}: only letters, digits and '-'"
        if label.startswith("-") or label.endswith("-"):
            return f"its label {label!r} starts or ends with '-'"
    if labels[-1].isdigit():
        return f"its last label {labels[-1]!r} is all digits"
    return None


def endpoint_address(text: str) -> tuple[IPv4Address | IPv6Address | str | None, str | None]:
    """An endpoint `address`: an IP address (a mapped IPv4 one as that IPv4), else a DNS
    name (its trailing dot dropped: the hosts file, which the lab relies on, does not match
    `name.`), else why it is neither or cannot be dialled."""
    ip = _ip(text)
    if ip is not None:
        if why := unusable_ip(ip, endpoint=True):
            return None, why
        return ip, None
    if why := dns_name_problem(text):
        return None, f"neither an IP address nor a DNS name: {_short(text)} ({why})"
    return text.removesuffix("."), None


def ssh_address_problem(text: str) -> str | None:
    ip = _ip(text)
    if ip is not None:
        return unusable_ip(ip, endpoint=False)
    if why := dns_name_problem(text):
        return f"neither an IP address nor a DNS name: {_short(text)} ({why})"
    return None


def _short(text: str, most: int = 260) -> str:
    """`text` quoted for a message, cut when long: a message never repeats a huge value."""
    return repr(text) if len(text) <= most else repr(text[:most]) + f"… ({len(text)} characters)"


# --------------------------------------------------------------------------- the inventory


def load(path: str | os.PathLike[str]) -> Mesh:
    file = Path(path)
    return parse(read_text(file), file)


FILE_KINDS = (
    (stat.S_ISDIR, "is a directory, not a file"),
    (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)


def read_text(file: Path) -> str:
    """The inventory's text: a regular file of at most MAX_BYTES, refused before parsing
    otherwise. Never blocks (a FIFO is refused, not read) and never reads more than
    MAX_BYTES + 1 bytes, whatever the file claims its size is."""

    def fail(why: str) -> InventoryError:
        return InventoryError([Problem(file, (), None, why)])

    def kind_problem(mode: int) -> str | None:
        for test, why in FILE_KINDS:
            if test(mode):
                return why
        return None if stat.S_ISREG(mode) else "is not a regular file"

    too_big = (
        f"is more than {MAX_BYTES // (1024 * 1024)} MiB ({MAX_BYTES} bytes), the most an "
        "inventory may be"
    )
    try:
        # stat first: opening a FIFO or a device can block or act on it.
        if why := kind_problem(os.stat(file).st_mode):
            raise fail(why)
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as e:
        raise fail(f"cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)  # what was opened, should it have changed since the stat
        if why := kind_problem(st.st_mode):
            raise fail(why)
        if st.st_size > MAX_BYTES:
            raise fail(f"{too_big}: it has {st.st_size} bytes")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise fail(f"cannot read: {e.strerror or e}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_BYTES:
        raise fail(too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail(f"not a YAML text file (not UTF-8 at byte {e.start})") from None


def parse(text: str, file: Path) -> Mesh:
    if len(text) > MAX_BYTES:
        raise InventoryError([Problem(file, (), None, f"is more than {MAX_BYTES} bytes")])
    data, lines, early, silenced = _compose(text, file)
    problems = Problems(file, lines)
    problems.items.extend(early)
    problems.silenced |= silenced
    if data is None:
        problems.add((), "the inventory is empty: it needs at least `hosts:` and `links:`")
        problems.raise_if_any()
    if not isinstance(data, dict):
        problems.add(
            (),
            f"the inventory must be a YAML mapping with `hosts:` and `links:`, not {_kind(data)}",
        )
        problems.raise_if_any()
    top = Section(data, (), problems)
    base = file.parent

    m = top.sub("mesh")
    name = m.get("name", str, None)
    wg = m.sub("wireguard")
    wg_if = wg.get("interface", str, "wg0")
    wg_port = wg.int_in("port", 1, 65535, 51820)
    wg_net = wg.network("network", "10.88.88.0/24")
    reresolve = wg.int_in("reresolve", 0, RERESOLVE_MAX, 60)
    wg.done()
    br = m.sub("bridge")
    br_name = br.get("name", str, "internet")
    br_net = br.network("network", "10.99.99.0/24")
    br.done()
    vxlan_port = m.int_in("vxlan_port", 1, 65535, 4789)
    mtu = _mtu(m, problems)
    mode: MeshMode = m.choice("mode", MODES, "stp") or "stp"
    stp_sec = m.sub("stp")
    stp = _stp(stp_sec, problems)
    evpn_sec = m.sub("evpn")
    evpn = _evpn(evpn_sec)
    for other, sec in (("stp", stp_sec), ("evpn", evpn_sec)):
        if other != mode and sec.data:
            problems.add(sec.path, f"applies to mesh.mode {other} only, and this mesh is {mode}")
    keys: KeyMode = m.choice("keys", ("host", "controller"), "host")
    psk = m.get("psk", bool, False, "true or false")
    state = _path_field(m, "state")
    keystore = _path_field(m, "keystore")
    m.done()

    for p, value in (((*wg.path, "interface"), wg_if), ((*br.path, "name"), br_name)):
        if isinstance(value, str) and (why := ifname_problem(value)):
            problems.add(p, why)
    if isinstance(wg_if, str) and wg_if == br_name:
        problems.add((*br.path, "name"), "the bridge and the WireGuard interface need two names")
    if wg_net and br_net and wg_net.overlaps(br_net):
        problems.add((*br.path, "network"), f"overlaps the WireGuard network {wg_net}")

    if isinstance(name, str):
        if why := name_problem(name, MESH_NAME_MAX):
            problems.add((*m.path, "name"), f"{why} (it names the keystore directory)")
    elif "name" not in m.data or m.data["name"] is None:
        name = file.stem
        if why := name_problem(name, MESH_NAME_MAX):
            problems.add(
                (*m.path, "name"),
                f"not set, and the file's name {_short(name)} cannot stand in for it ({why}): "
                "set mesh.name",
            )
    lab = _lab(top.sub("lab"), problems)
    if lab:
        for p, net in (((*wg.path, "network"), wg_net), ((*br.path, "network"), br_net)):
            if net and net.overlaps(lab.network):
                problems.add(p, f"overlaps the lab's network {lab.network}")
    ssh = _ssh_defaults(top.sub("ssh"), base, lab, problems)

    own_ifaces = {wg_if, br_name} - {None}
    hosts = _hosts(top, problems, own_ifaces, [n for n in (wg_net, br_net) if n])
    host_names = {h.name for h in hosts}
    if stp.root is not None and stp.root not in host_names:
        problems.add((*stp_sec.path, "root"), f"unknown host {stp.root!r}")
    links = _links(top, problems, {h.name: h for h in hosts}, bool(psk))
    if mode == "evpn":
        _evpn_limits(top, wg, wg_if, wg_port, bool(psk), hosts, links, problems)
    top.done()
    problems.raise_if_any()

    state_file = _path(state, base) if state else base / f"{file.stem}.state.json"
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    default_keystore = data_home / "mesh-push" / inventory_id(file, name) / "keys"
    return Mesh(
        source=file,
        name=name,
        wg_interface=wg_if,
        wg_port=wg_port,
        wg_network=cast(IPv4Network, wg_net),
        bridge=br_name,
        bridge_network=cast(IPv4Network, br_net),
        vxlan_port=vxlan_port,
        mtu=cast(Mtu, mtu),
        stp=stp,
        keys=keys,
        ssh=ssh,
        hosts=tuple(hosts),
        links=tuple(links),
        state_file=state_file,
        keystore=_path(keystore, base) if keystore else default_keystore,
        legacy_keystore=None if keystore else data_home / "mesh-push" / name / "keys",
        lab=lab,
        wg_reresolve=60 if reresolve is None else reresolve,
        psk=bool(psk),
        mode=mode,
        evpn=evpn,
    )


def inventory_id(file: Path, name: str) -> str:
    """What names this inventory's own state on the controller (its default keystore): the
    mesh name and a short hash of the inventory file's absolute path, so that
    prod/mesh.yaml and staging/mesh.yaml, both named `mesh`, never share keys."""
    where = os.path.realpath(file)
    return f"{name}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def _path(value: str, base: Path) -> Path:
    try:
        p = Path(value).expanduser()
    except RuntimeError:  # ~user of no known user: path_problem reported it
        p = Path(value)
    return p if p.is_absolute() else base / p


def _path_field(sec: Section, key: str) -> str | None:
    value = sec.get(key, str, None, "a path")
    if isinstance(value, str) and (why := path_problem(value)):
        sec.problems.add((*sec.path, key), why)
        return None
    return value


def _user_field(sec: Section, key: str) -> str | None:
    value = sec.get(key, str, None, "a user name")
    if isinstance(value, str) and (why := user_problem(value)):
        sec.problems.add((*sec.path, key), f"{why}, not {_short(value)}")
        return None
    return value


def _mtu(m: Section, problems: Problems) -> Mtu | None:
    raw = m.raw("mtu", "fragment")
    path = (*m.path, "mtu")
    if isinstance(raw, str):
        sec = Section({"policy": raw}, path, problems)
    elif not isinstance(raw, dict):
        problems.add(path, f"must be fragment, clamp or a mapping with policy:, not {_kind(raw)}")
        return None
    else:
        sec = Section(raw, path, problems)
    policy: MtuPolicy | None = sec.choice("policy", ("fragment", "clamp"), "fragment")
    underlay = sec.int_in("underlay", 576, 65535, 1500)
    bridge = sec.int_in("bridge", 68, 65535, None)
    sec.done()
    if policy is None or underlay is None:
        return None
    if policy == "fragment":
        # Frames of any size cross: wg0 is big enough and the underlay fragments the UDP.
        bridge = bridge or 1500
        wg = bridge + VXLAN_OVERHEAD
        if bridge < MIN_MTU or wg > 65535:
            problems.add(path, f"fragment cannot give a bridge MTU of {bridge} (1280 to 65485)")
            return None
        return Mtu("fragment", underlay, wg, bridge)
    wg = underlay - WG_OVERHEAD
    most = wg - VXLAN_OVERHEAD
    bridge = bridge or most
    if bridge > most or bridge < MIN_MTU:
        problems.add(
            path,
            f"clamp cannot give a bridge MTU of {bridge} over a {underlay}-byte underlay: "
            f"it must be between {MIN_MTU} and {most}",
        )
        return None
    return Mtu("clamp", underlay, wg, bridge)


def _evpn(sec: Section) -> Evpn:
    asn = sec.int_in("asn", 1, ASN_MAX, 65000)
    vni = sec.int_in("vni", 1, VNI_MAX, 100)
    sec.done()
    return Evpn(asn or 65000, vni or 100)


def _evpn_limits(
    top: Section,
    wg: Section,
    wg_if: str | None,
    wg_port: int | None,
    psk: bool,
    hosts: list[Host],
    links: list[Link],
    problems: Problems,
) -> None:
    """What evpn mode needs beyond stp mode (docs/evpn.md): each link numbers an interface,
    a port and a /31, so its VNI is bounded; some stp-mode features are not there yet."""
    if isinstance(wg_if, str) and len(wg_if.encode()) > EVPN_WG_NAME_MAX:
        problems.add(
            (*wg.path, "interface"),
            f"must be at most {EVPN_WG_NAME_MAX} bytes in evpn mode: it names the link "
            f"interfaces ({wg_if}-VNI) and the VXLAN device ({wg_if}-vx)",
        )
    if psk:
        problems.add(("mesh", "psk"), "pre-shared keys are not supported in evpn mode yet")
    for h in hosts:
        if h.dns_name is not None:
            problems.add(
                ("hosts", h.name, "address"),
                "a DNS name is not supported in evpn mode yet: give an IP address",
            )
    raw = top.data.get("links")
    # Each link's own path when every entry made a link (else the others are reported already).
    own = isinstance(raw, list) and len(raw) == len(links)
    for i, lk in enumerate(links):
        p: YamlPath = ("links", i) if own else ("links",)
        if lk.vni > EVPN_VNI_MAX:
            problems.add((*p, "vni"), f"must be at most {EVPN_VNI_MAX} in evpn mode, not {lk.vni}")
        elif wg_port is not None and wg_port + lk.vni > 65535:
            problems.add(
                (*p, "vni"),
                f"mesh.wireguard.port + vni must be a port (at most 65535) in evpn mode: "
                f"{wg_port} + {lk.vni}",
            )
        if lk.psk and not psk:
            problems.add(p, "pre-shared keys are not supported in evpn mode yet")


def _stp(sec: Section, problems: Problems) -> Stp:
    hello = sec.int_in("hello", 1, 10, 2)
    fd = sec.int_in("forward_delay", 2, 30, 15)
    max_age = sec.int_in("max_age", 6, 40, 20)
    ageing = sec.int_in("ageing", 1, 1_000_000, 300)
    root = sec.get("root", str, None)
    sec.done()
    if None not in (hello, fd, max_age) and not (2 * (fd - 1) >= max_age >= 2 * (hello + 1)):
        problems.add(
            sec.path,
            f"timers break 2 × (forward_delay − 1) ≥ max_age ≥ 2 × (hello + 1): "
            f"2 × ({fd} − 1) = {2 * (fd - 1)}, max_age = {max_age}, "
            f"2 × ({hello} + 1) = {2 * (hello + 1)}",
        )
    return Stp(hello or 2, fd or 15, max_age or 20, root, ageing or 300)


def _lab(sec: Section, problems: Problems) -> LabSettings | None:
    if not sec.ok:
        return None
    name = sec.get("name", str, "mplab")
    net = sec.network("network", "198.18.0.0/23")
    kind: LabKind = sec.choice("kind", LAB_KINDS, "netns") or "netns"
    # A VM guest is a cloud image: its login is the sudo user, never root.
    login: LabLogin = sec.choice("login", LAB_LOGINS, "sudo" if kind == "vm" else "root")
    sec.done()
    if isinstance(name, str) and not LAB_NAME.match(name):
        problems.add((*sec.path, "name"), "must be 1 to 6 lowercase letters or digits")
        return None
    if kind == "vm" and login not in (None, "sudo"):
        # `lab exec` and `lab reboot` reach a guest through its sudo rule, without a password.
        problems.add((*sec.path, "login"), "a `kind: vm` lab logs in as a sudo user: `sudo` only")
        return None
    return LabSettings(name, net, login or "root", kind) if net else None


def _ssh_defaults(
    sec: Section, base: Path, lab: LabSettings | None, problems: Problems
) -> SshDefaults:
    user = _user_field(sec, "user") or "root"
    port = sec.int_in("port", 1, 65535, 22)
    identity = _path_field(sec, "identity")
    become: Become | None = sec.choice("become", BECOME, None)
    config = _path_field(sec, "config")
    known = _path_field(sec, "known_hosts")
    timeout = sec.get("connect_timeout", float, 10.0)
    sec.done()
    if isinstance(timeout, float) and timeout <= 0:
        problems.add((*sec.path, "connect_timeout"), "must be more than 0 seconds")
    elif isinstance(timeout, float) and timeout > CONNECT_TIMEOUT_MAX:
        problems.add(
            (*sec.path, "connect_timeout"), f"must be at most {CONNECT_TIMEOUT_MAX:g} seconds"
        )
    labdir = lab_dir(lab.name) if lab else None
    return SshDefaults(
        user=user,
        port=port,
        identity=str(_path(identity, base)) if identity else None,
        become=become,
        config=_path(config, base) if config else (labdir / "ssh_config" if labdir else None),
        known_hosts=_path(known, base) if known else (labdir / "known_hosts" if labdir else None),
        connect_timeout=timeout or 10.0,
    )


def _hosts(
    top: Section, problems: Problems, own_ifaces: set[str], networks: list[IPv4Network]
) -> list[Host]:
    raw = top.raw("hosts")
    path: YamlPath = ("hosts",)
    if raw is MISSING or raw is None:
        return []
    if not isinstance(raw, dict):
        problems.add(path, f"must be a mapping of host name to host settings, not {_kind(raw)}")
        return []
    if not raw:
        problems.add(path, "lists no hosts")
        return []

    pending: list[tuple[str, Section, dict[str, Any]]] = []
    for name, body in raw.items():
        hpath: YamlPath = (*path, name)
        if not isinstance(name, str):
            problems.add(hpath, "a host name must be a string")
            continue
        if why := ifname_problem(name):
            problems.add(hpath, f"host name {why} (wires are named after hosts)")
        elif name in own_ifaces or name in RESERVED_NAMES:
            problems.add(hpath, f"host name {name!r} collides with an interface of the mesh")
        sec = Section(body if body is not None else {}, hpath, problems)
        pending.append((name, sec, _host_fields(sec, problems)))

    used: dict[int, str] = {}
    for name, sec, f in pending:
        n = f["number"]
        if n is None:
            continue
        if n in used:
            problems.add((*sec.path, "number"), f"number {n} is already {used[n]}'s")
        used[n] = name
    smallest = min(networks, key=lambda net: net.num_addresses, default=None)
    limit = smallest.num_addresses - 2 if smallest else 254
    free = (n for n in range(1, limit + 1) if n not in used)

    hosts: list[Host] = []
    seen_addr: dict[str, str] = {}
    for name, sec, f in pending:
        number = f["number"]
        if number is None:
            number = next(free, None)
            if number is None:
                problems.add(sec.path, f"no free host number left in the networks (max {limit})")
                continue
        elif number > limit:
            problems.add(
                (*sec.path, "number"),
                f"{number} does not fit the network {smallest}: host numbers are 1..{limit}",
            )
        addr = f["address"]
        if addr is not None:
            # DNS names are case-insensitive; a name and an IP are not compared (no lookups).
            same = addr.lower() if isinstance(addr, str) else str(addr)
            if same in seen_addr:
                problems.add((*sec.path, "address"), f"same address as {seen_addr[same]}")
            seen_addr[same] = name
        endpoint_ip = None if isinstance(addr, str) else addr
        ssh_ip = _ip(f["ssh"].address or "")
        for key, ip in (("address", endpoint_ip), ("ssh.address", ssh_ip)):
            for net in networks:
                if ip is not None and ip in net:
                    problems.add((*sec.path, *key.split(".")), f"{ip} lies inside the mesh's {net}")
        hosts.append(
            Host(
                name=name,
                endpoint=f["endpoint"] or "static",
                address=addr,
                number=number,
                ssh=f["ssh"],
                public_key=f["public_key"],
                location=f["location"],
            )
        )

    names = {h.name for h in hosts}
    for h in hosts:
        if h.ssh.via is not None and h.ssh.via not in names:
            problems.add(("hosts", h.name, "ssh", "via"), f"unknown host {h.ssh.via!r}")
    via = {h.name: h.ssh.via for h in hosts}
    for cycle in _via_cycles(via):
        problems.add(
            ("hosts", cycle[0], "ssh", "via"), "jump hosts form a cycle: " + " → ".join(cycle)
        )
    for h in hosts:
        chain = [h.name]
        nxt = via.get(h.name)
        while nxt is not None and nxt in via and nxt not in chain and len(chain) <= MAX_JUMPS:
            chain.append(nxt)
            nxt = via.get(nxt)
        if len(chain) > MAX_JUMPS and nxt is not None and nxt in via and nxt not in chain:
            problems.add(
                ("hosts", h.name, "ssh", "via"),
                f"{h.name} is more than {MAX_JUMPS} jump hosts away "
                f"({' → '.join(chain)} → {nxt} …): at most {MAX_JUMPS}",
            )
    return hosts


def _host_fields(sec: Section, problems: Problems) -> dict[str, Any]:
    endpoint: EndpointKind | None = sec.choice("endpoint", ("static", "dynamic", "nat"))
    addr_raw = sec.get("address", str, None, "an IP address or a DNS name")
    number = sec.int_in("number", 1, 65534, None)
    key: str | None = sec.get("public_key", str, None)
    location: str | None = sec.get("location", str, None)
    if isinstance(location, str) and (why := text_problem(location, LOCATION_MAX)):
        problems.add((*sec.path, "location"), why)
        location = None
    s = sec.sub("ssh")
    ssh_address: str | None = s.get("address", str, None, "an IP address or a DNS name")
    if isinstance(ssh_address, str) and (why := ssh_address_problem(ssh_address)):
        problems.add((*s.path, "address"), why)
        ssh_address = None
    ssh = SshTarget(
        address=ssh_address,
        user=_user_field(s, "user"),
        port=s.int_in("port", 1, 65535, None),
        identity=_path_field(s, "identity"),
        via=s.get("via", str, None),
        become=s.choice("become", BECOME, None),
    )
    s.done()
    sec.done()
    addr: IPv4Address | IPv6Address | str | None = None
    if isinstance(addr_raw, str):
        addr, why = endpoint_address(addr_raw)
        if why:
            problems.add((*sec.path, "address"), why)
        elif endpoint in ("dynamic", "nat"):
            problems.add(
                (*sec.path, "address"),
                f"a {endpoint} host has no fixed endpoint address; drop it or make it static",
            )
            addr = None
    elif endpoint == "static" and sec.data.get("address") is None:
        problems.add((*sec.path, "address"), "a static host needs its public endpoint address")
    if isinstance(key, str) and (why := public_key_problem(key)):
        problems.add((*sec.path, "public_key"), why)
        key = None
    if ssh.via is not None and ssh.via == sec.path[-1]:
        problems.add((*sec.path, "ssh", "via"), "a host cannot be its own jump host")
        ssh = dataclasses.replace(ssh, via=None)
    return {
        "endpoint": endpoint,
        "address": addr,
        "number": number,
        "public_key": key,
        "location": location,
        "ssh": ssh,
    }


def _via_cycles(via: dict[str, str | None]) -> Iterator[list[str]]:
    reported: set[str] = set()
    for start in via:
        chain = [start]
        nxt = via.get(start)
        while nxt is not None and nxt in via and nxt not in chain:
            chain.append(nxt)
            nxt = via.get(nxt)
        if nxt is not None and nxt in chain:
            cycle = chain[chain.index(nxt) :]
            key = min(cycle)
            if key not in reported:
                reported.add(key)
                yield [*cycle, nxt]


# One link as read: its path, hosts, vni, latency_ms, cost and psk (None: mesh.psk).
_LinkEntry = tuple[YamlPath, str, str, int | None, float | None, int | None, bool | None]


def _links(
    top: Section, problems: Problems, hosts: dict[str, Host], psk_default: bool
) -> list[Link]:
    raw = top.raw("links")
    path: YamlPath = ("links",)
    if raw is MISSING or raw is None:
        return []
    entries: list[_LinkEntry] = []
    if raw == "full":
        names = list(hosts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                # Two hosts without a static address can never find each other.
                if "static" in (hosts[a].endpoint, hosts[b].endpoint):
                    entries.append((path, a, b, None, None, None, None))
    elif not isinstance(raw, list):
        problems.add(path, "must be a list of host pairs, or `full`")
        return []
    else:
        for i, item in enumerate(raw):
            parsed = _link_entry(item, (*path, i), problems)
            if parsed:
                entries.append(parsed)
    if not hosts:
        return []  # the hosts are missing or broken, already reported: names cannot be checked

    links: list[Link] = []
    pairs: dict[frozenset[str], YamlPath] = {}
    vnis: dict[int, YamlPath] = {}
    for p, _a, _b, vni, _lat, _cost, _psk in entries:
        if vni is not None:
            if vni in vnis:
                problems.add((*p, "vni"), f"VNI {vni} is already used by links{_idx(vnis[vni])}")
            vnis.setdefault(vni, p)
    free = (v for v in range(1, VNI_MAX + 1) if v not in vnis)
    # A link that was dropped would make the graph look cut: report only the first cause.
    bad = isinstance(raw, list) and len(entries) < len(raw)
    for p, a, b, vni, lat, cost, psk in entries:
        unknown = [h for h in (a, b) if h not in hosts]
        for h in unknown:
            problems.add(p, f"unknown host {h!r}" + _did_you_mean(h, hosts))
        if unknown:
            bad = True
            continue
        if a == b:
            problems.add(p, f"a link from {a} to itself")
            bad = True
            continue
        pair = frozenset((a, b))
        if pair in pairs:
            problems.add(p, f"duplicate link {a}–{b} (also links{_idx(pairs[pair])})")
            continue
        pairs[pair] = p
        if "static" not in (hosts[a].endpoint, hosts[b].endpoint):
            problems.add(
                p,
                f"neither {a} ({hosts[a].endpoint}) nor {b} ({hosts[b].endpoint}) has a static "
                "endpoint: they can never find each other",
            )
        psk = psk_default if psk is None else psk
        links.append(Link(a, b, vni if vni is not None else next(free), lat, cost, psk))
    if not bad and hosts and len(hosts) > 1:
        _check_connected(hosts, links, path, problems)
    return links


def _idx(p: YamlPath) -> str:
    return f"[{p[-1]}]" if p and isinstance(p[-1], int) else ""


def _did_you_mean(name: str, names: dict[str, Any]) -> str:
    hint = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _link_entry(item: Any, p: YamlPath, problems: Problems) -> _LinkEntry | None:
    vni = lat = cost = psk = None
    if isinstance(item, dict):
        sec = Section(item, p, problems)
        pair = sec.get("hosts", list, None, "a list of two host names")
        vni = sec.int_in("vni", 1, VNI_MAX, None)
        lat = sec.get("latency_ms", float, None, "a number of milliseconds")
        cost = sec.int_in("cost", 1, 65535, None)
        psk = sec.get("psk", bool, None, "true or false")
        sec.done()
        if lat is not None and not 0 <= lat <= LATENCY_MAX_MS:
            why = "must not be negative" if lat < 0 else f"must be at most {LATENCY_MAX_MS:g} ms"
            problems.add((*p, "latency_ms"), why)
            lat = None
        if pair is None:
            if "hosts" not in item:
                problems.add((*p, "hosts"), "required field is missing")
            return None
    elif isinstance(item, list):
        pair = item
    else:
        problems.add(p, f"must be a pair like [a, b] or a mapping with hosts:, not {_kind(item)}")
        return None
    if len(pair) != 2 or not all(isinstance(x, str) for x in pair):
        problems.add(p, "a link joins exactly two host names")
        return None
    return (p, pair[0], pair[1], vni, lat, cost, psk)


def _check_connected(
    hosts: dict[str, Host], links: list[Link], path: YamlPath, problems: Problems
) -> None:
    adj: dict[str, set[str]] = {h: set() for h in hosts}
    for lk in links:
        adj[lk.a].add(lk.b)
        adj[lk.b].add(lk.a)
    start = next(iter(hosts))
    seen = {start}
    stack = [start]
    while stack:
        for n in adj[stack.pop()] - seen:
            seen.add(n)
            stack.append(n)
    cut_off = [h for h in hosts if h not in seen]
    if cut_off:
        problems.add(
            path,
            f"the links do not connect every host: {', '.join(cut_off)} cannot reach {start}",
        )
