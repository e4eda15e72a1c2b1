"""A mapping of an inventory being read: typed getters that record every problem with its YAML
path, and report unknown keys; and the draft of a mesh that a mode's own checks see. Pure."""

from __future__ import annotations

import datetime
import difflib
import math
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Any, TypeVar, cast

from mesh_push.core.model import Host, Link
from mesh_push.core.problems import Problems, YamlPath

T = TypeVar("T")
MISSING: Any = object()


@dataclass(frozen=True)
class Draft:
    """What a mode's checks of the inventory see of the rest of it, as read so far: a value
    that had a problem is None (reported already), a host or link that had one is left out."""

    wg_interface: str | None
    wg_port: int | None
    hosts: tuple[Host, ...]
    links: tuple[tuple[YamlPath, Link], ...]  # each link with its YAML path


class Section:
    """A mapping being read: typed getters record problems and unread keys are reported."""

    def __init__(self, data: Any, path: YamlPath, problems: Problems) -> None:
        self.path = path
        self.problems = problems
        self.ok = isinstance(data, dict)
        if data is not None and not self.ok:
            problems.add(path, f"must be a mapping, not {kind(data)}")
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
                (*self.path, key), f"must be {what or article(want)}, not {kind(value)}"
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

    def network6(self, key: str) -> IPv6Network | None:
        """An IPv6 /64 (one address per host number), or None when not set."""
        value = self.get(key, str, None, "an IPv6 /64 like fd12:3456:789a:1::/64")
        if value is None:
            return None
        try:
            net = IPv6Network(value, strict=True)
        except ValueError as e:
            self.problems.add((*self.path, key), f"not an IPv6 network: {e}")
            return None
        if net.prefixlen != 64:
            self.problems.add((*self.path, key), f"must be a /64, not a /{net.prefixlen}")
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


def kind(value: Any) -> str:
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


def article(t: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", list: "a list"}.get(
        t, t.__name__
    )
