"""Checks of single values from users or hosts: names, paths, addresses, keys. Each says why a
value is unfit, or None. Pure."""

from __future__ import annotations

import base64
import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path

from mesh_push.core.problems import is_control

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
IFNAME_MAX = 15  # the kernel's IFNAMSIZ less the NUL
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]*\$?")
USER_NAME_MAX = 32
PATH_MAX = 4096
THIS_NETWORK = IPv4Network("0.0.0.0/8")
BROADCAST = IPv4Address("255.255.255.255")
DNS_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
VNI_MAX = 16_777_215


def host_list(words: list[str] | tuple[str, ...]) -> list[str]:
    """Hosts as the command line takes them, one spelling everywhere: `a,b` (as --limit),
    separate words (as rotate-keys), or both (`a,b c`)."""
    return [name.strip() for word in words for name in word.split(",") if name.strip()]


def chars(found: set[str] | list[str]) -> str:
    return repr("".join(sorted(set(found))))


def _unsafe(name: str) -> str | None:
    if SAFE_NAME.fullmatch(name):
        return None
    if bad := set(name) - NAME_CHARS:
        return f"it holds {chars(bad)}: only ASCII letters, digits, '-' and '_' are allowed"
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


DOMAIN_MAX = 253
DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def dns_label_problem(label: str) -> str | None:
    """Why `label` cannot be one label of a host's DNS name (RFC 1123): 1 to 63 letters,
    digits and '-', not at either end."""
    if DNS_LABEL.fullmatch(label):
        return None
    return f"{quoted(label)} is not a DNS label (1 to 63 letters, digits and '-', not at an end)"


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
        return f"holds a control character ({chars(bad)[1:-1]})"
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


def ip_of(value: str) -> IPv4Address | IPv6Address | None:
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
    ip = ip_of(text)
    if ip is not None:
        if why := unusable_ip(ip, endpoint=True):
            return None, why
        return ip, None
    if why := dns_name_problem(text):
        return None, f"neither an IP address nor a DNS name: {quoted(text)} ({why})"
    return text.removesuffix("."), None


def ssh_address_problem(text: str) -> str | None:
    ip = ip_of(text)
    if ip is not None:
        return unusable_ip(ip, endpoint=False)
    if why := dns_name_problem(text):
        return f"neither an IP address nor a DNS name: {quoted(text)} ({why})"
    return None


def quoted(text: str, most: int = 260) -> str:
    """`text` quoted for a message, cut when long: a message never repeats a huge value."""
    return repr(text) if len(text) <= most else repr(text[:most]) + f"… ({len(text)} characters)"
