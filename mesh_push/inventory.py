"""Inventory YAML → validated `Mesh`. Every problem is collected before anything is raised."""

from __future__ import annotations

import base64
import dataclasses
import difflib
import hashlib
import ipaddress
import math
import os
import re
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from .model import (
    Become,
    EndpointKind,
    Host,
    KeyMode,
    LabLogin,
    LabSettings,
    Link,
    Mesh,
    Mtu,
    MtuPolicy,
    SshDefaults,
    SshTarget,
    Stp,
)
from .problems import InventoryError, Problem, Problems, YamlPath

T = TypeVar("T")
MISSING: Any = object()

LAB_ROOT = Path("/run/mesh-push/lab")
RESERVED_NAMES = {"lo", "all", "default", "br", "dev"}
IFNAME_BAD = re.compile(r"[/:\s]")
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
MAX_NODES = 100_000  # YAML values after expanding aliases: stops a "billion laughs" file


def lab_dir(name: str) -> Path:
    return LAB_ROOT / name


# --------------------------------------------------------------------------- YAML with lines


class _Unreadable(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.line = node.start_mark.line + 1
        self.message = message


# libyaml's parser when PyYAML was built with it: the same nodes and marks, several times
# faster on large inventories.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str, file: Path) -> tuple[Any, dict[YamlPath, int], list[Problem]]:
    try:
        return _compose_with(_Loader, text, file)
    except InventoryError:
        if _Loader is yaml.SafeLoader:
            raise
        # A broken file: the pure-Python parser's messages are the ones we explain well.
        return _compose_with(yaml.SafeLoader, text, file)


def _compose_with(
    loader_class: Any, text: str, file: Path
) -> tuple[Any, dict[YamlPath, int], list[Problem]]:
    """Parse YAML keeping each node's line. Syntax errors raise at once (nothing else can be
    read); a duplicate key keeps its first value and is reported with the other problems."""
    lines: dict[YamlPath, int] = {}
    found: list[Problem] = []
    try:
        # The reader already rejects control characters here, so this is inside the try.
        loader = loader_class(text)
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        why = f"not a YAML text file: control character #x{e.character:04x}"
        raise InventoryError([Problem(file, (), line, why)]) from None
    try:
        root = loader.get_single_node()
        if root is None:
            return None, lines, found

        budget = [MAX_NODES]
        inside: set[int] = set()  # the nodes being walked: an alias to one of them is a loop

        def walk(node: yaml.Node, path: YamlPath) -> Any:
            budget[0] -= 1
            if budget[0] < 0:
                raise _Unreadable(node, f"more than {MAX_NODES} values (aliases expanding?)")
            if id(node) in inside:
                raise _Unreadable(node, "a YAML alias that contains itself")
            lines[path] = node.start_mark.line + 1
            if isinstance(node, yaml.CollectionNode) and node.tag not in STANDARD_TAGS:
                raise _Unreadable(node, f"YAML tag {node.tag} is not allowed")
            inside.add(id(node))
            try:
                return walk_node(node, path)
            finally:
                inside.discard(id(node))

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
                    key = loader.construct_object(knode, deep=True)
                    if not isinstance(key, str | int) or isinstance(key, bool):
                        text = knode.value if isinstance(knode, yaml.ScalarNode) else str(key)
                        why = "keys must be plain names"
                        if isinstance(key, bool) or key is None:
                            why += f" (YAML reads {text!r} as {_kind(key)}: quote it)"
                        found.append(Problem(file, (*path, str(text)), kline, why))
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
            return loader.construct_object(node, deep=True)

        data = walk(root, ())
    except _Unreadable as e:
        raise InventoryError([Problem(file, (), e.line, e.message)]) from None
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
        raise InventoryError([Problem(file, (), at, f"not valid YAML: {why}")]) from None
    except yaml.YAMLError as e:
        why = " ".join(str(e).split())
        raise InventoryError([Problem(file, (), None, f"not valid YAML: {why}")]) from None
    finally:
        loader.dispose()
    return data, lines, found


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
    }
    return names.get(type(value), type(value).__name__)


def _article(t: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", list: "a list"}.get(
        t, t.__name__
    )


def ifname_problem(name: str) -> str | None:
    if not 1 <= len(name.encode()) <= 15:
        return "must be 1 to 15 bytes to be an interface name"
    if IFNAME_BAD.search(name) or name in {".", ".."}:
        return "cannot be an interface name (no '/', ':' or whitespace)"
    return None


def public_key_problem(key: str) -> str | None:
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    if len(key) != 44 or len(raw) != 32 or base64.b64encode(raw).decode() != key:
        return "not a WireGuard public key (44 characters of canonical base64 for 32 bytes)"
    return None


def _ip(value: str) -> IPv4Address | IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
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
    """An endpoint `address`: an IP address, else a DNS name (its trailing dot dropped: the
    hosts file, which the lab relies on, does not match `name.`), else why it is neither."""
    ip = _ip(text)
    if ip is not None:
        return ip, None
    if why := dns_name_problem(text):
        return None, f"neither an IP address nor a DNS name: {text!r} ({why})"
    return text.removesuffix("."), None


# --------------------------------------------------------------------------- the inventory


def load(path: str | os.PathLike[str]) -> Mesh:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError([Problem(file, (), None, "no such file")]) from None
    except IsADirectoryError:
        raise InventoryError([Problem(file, (), None, "is a directory, not a file")]) from None
    except UnicodeDecodeError as e:
        raise InventoryError(
            [Problem(file, (), None, f"not a YAML text file (not UTF-8 at byte {e.start})")]
        ) from None
    except OSError as e:
        raise InventoryError([Problem(file, (), None, f"cannot read: {e.strerror or e}")]) from None
    return parse(text, file)


def parse(text: str, file: Path) -> Mesh:
    data, lines, early = _compose(text, file)
    problems = Problems(file, lines)
    problems.items.extend(early)
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
    name = m.get("name", str, file.stem)
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
    stp_sec = m.sub("stp")
    stp = _stp(stp_sec, problems)
    keys: KeyMode = m.choice("keys", ("host", "controller"), "host")
    state = m.get("state", str, None)
    keystore = m.get("keystore", str, None)
    m.done()

    for p, value in (((*wg.path, "interface"), wg_if), ((*br.path, "name"), br_name)):
        if isinstance(value, str) and (why := ifname_problem(value)):
            problems.add(p, why)
    if isinstance(wg_if, str) and wg_if == br_name:
        problems.add((*br.path, "name"), "the bridge and the WireGuard interface need two names")
    if wg_net and br_net and wg_net.overlaps(br_net):
        problems.add((*br.path, "network"), f"overlaps the WireGuard network {wg_net}")

    if isinstance(name, str) and (not name.strip() or "/" in name or name in {".", ".."}):
        problems.add((*m.path, "name"), "must be a plain name without '/' (it names a directory)")
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
    links = _links(top, problems, {h.name: h for h in hosts})
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
    )


def inventory_id(file: Path, name: str) -> str:
    """What names this inventory's own state on the controller (its default keystore): the
    mesh name and a short hash of the inventory file's absolute path, so that
    prod/mesh.yaml and staging/mesh.yaml, both named `mesh`, never share keys."""
    where = os.path.realpath(file)
    return f"{name}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


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
    login: LabLogin = sec.choice("login", LAB_LOGINS, "root")
    sec.done()
    if isinstance(name, str) and not LAB_NAME.match(name):
        problems.add((*sec.path, "name"), "must be 1 to 6 lowercase letters or digits")
        return None
    return LabSettings(name, net, login or "root") if net else None


def _ssh_defaults(
    sec: Section, base: Path, lab: LabSettings | None, problems: Problems
) -> SshDefaults:
    user = sec.get("user", str, "root")
    port = sec.int_in("port", 1, 65535, 22)
    identity = sec.get("identity", str, None)
    become: Become | None = sec.choice("become", BECOME, None)
    config = sec.get("config", str, None)
    known = sec.get("known_hosts", str, None)
    timeout = sec.get("connect_timeout", float, 10.0)
    sec.done()
    if isinstance(timeout, float) and timeout <= 0:
        problems.add((*sec.path, "connect_timeout"), "must be more than 0 seconds")
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
        for key, ip in (("address", endpoint_ip), ("ssh.address", _ip(f["ssh"].address or ""))):
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
    for cycle in _via_cycles({h.name: h.ssh.via for h in hosts}):
        problems.add(
            ("hosts", cycle[0], "ssh", "via"), "jump hosts form a cycle: " + " → ".join(cycle)
        )
    return hosts


def _host_fields(sec: Section, problems: Problems) -> dict[str, Any]:
    endpoint: EndpointKind | None = sec.choice("endpoint", ("static", "dynamic", "nat"))
    addr_raw = sec.get("address", str, None, "an IP address or a DNS name")
    number = sec.int_in("number", 1, 65534, None)
    key: str | None = sec.get("public_key", str, None)
    location = sec.get("location", str, None)
    s = sec.sub("ssh")
    ssh = SshTarget(
        address=s.get("address", str, None),
        user=s.get("user", str, None),
        port=s.int_in("port", 1, 65535, None),
        identity=s.get("identity", str, None),
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


def _links(top: Section, problems: Problems, hosts: dict[str, Host]) -> list[Link]:
    raw = top.raw("links")
    path: YamlPath = ("links",)
    if raw is MISSING or raw is None:
        return []
    entries: list[tuple[YamlPath, str, str, int | None, float | None, int | None]] = []
    if raw == "full":
        names = list(hosts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                # Two hosts without a static address can never find each other.
                if "static" in (hosts[a].endpoint, hosts[b].endpoint):
                    entries.append((path, a, b, None, None, None))
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
    for p, _a, _b, vni, _lat, _cost in entries:
        if vni is not None:
            if vni in vnis:
                problems.add((*p, "vni"), f"VNI {vni} is already used by links{_idx(vnis[vni])}")
            vnis.setdefault(vni, p)
    free = (v for v in range(1, VNI_MAX + 1) if v not in vnis)
    # A link that was dropped would make the graph look cut: report only the first cause.
    bad = isinstance(raw, list) and len(entries) < len(raw)
    for p, a, b, vni, lat, cost in entries:
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
        links.append(Link(a, b, vni if vni is not None else next(free), lat, cost))
    if not bad and hosts and len(hosts) > 1:
        _check_connected(hosts, links, path, problems)
    return links


def _idx(p: YamlPath) -> str:
    return f"[{p[-1]}]" if p and isinstance(p[-1], int) else ""


def _did_you_mean(name: str, names: dict[str, Any]) -> str:
    hint = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _link_entry(
    item: Any, p: YamlPath, problems: Problems
) -> tuple[YamlPath, str, str, int | None, float | None, int | None] | None:
    vni = lat = cost = None
    if isinstance(item, dict):
        sec = Section(item, p, problems)
        pair = sec.get("hosts", list, None, "a list of two host names")
        vni = sec.int_in("vni", 1, VNI_MAX, None)
        lat = sec.get("latency_ms", float, None, "a number of milliseconds")
        cost = sec.int_in("cost", 1, 65535, None)
        sec.done()
        if lat is not None and lat < 0:
            problems.add((*p, "latency_ms"), "must not be negative")
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
    return (p, pair[0], pair[1], vni, lat, cost)


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
