"""The inventory's `links`: host pairs, or `full`, each with its VNI, latency, cost and
pre-shared key; every host reachable."""

from __future__ import annotations

import difflib
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from mesh_push.core.model import Host, Link, LinkEndpoint
from mesh_push.core.problems import Problems, YamlPath
from mesh_push.core.section import MISSING, Section, kind
from mesh_push.core.values import VNI_MAX, ip_of, quoted, unusable_ip

LATENCY_MAX_MS = 60_000.0


# One link as read: its path, hosts, vni, latency_ms, cost, psk (None: mesh.psk), endpoints.
_LinkEntry = tuple[
    YamlPath, str, str, int | None, float | None, int | None, bool | None, tuple[LinkEndpoint, ...]
]


def read_links(
    top: Section, problems: Problems, hosts: dict[str, Host], psk_default: bool
) -> list[tuple[YamlPath, Link]]:
    """The links, each with its YAML path (`links` itself for `links: full`)."""
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
                    entries.append((path, a, b, None, None, None, None, ()))
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

    links: list[tuple[YamlPath, Link]] = []
    pairs: dict[frozenset[str], YamlPath] = {}
    vnis: dict[int, YamlPath] = {}
    for p, _a, _b, vni, *_rest in entries:
        if vni is not None:
            if vni in vnis:
                problems.add((*p, "vni"), f"VNI {vni} is already used by links{_idx(vnis[vni])}")
            vnis.setdefault(vni, p)
    free = (v for v in range(1, VNI_MAX + 1) if v not in vnis)
    # A link that was dropped would make the graph look cut: report only the first cause.
    bad = isinstance(raw, list) and len(entries) < len(raw)
    for p, a, b, vni, lat, cost, psk, ends in entries:
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
        for e in ends:
            if e.host not in pair:
                problems.add((*p, "endpoints", e.host), f"{e.host!r} is not an end of this link")
        ends = tuple(e for e in ends if e.host in pair)
        if "static" not in (hosts[a].endpoint, hosts[b].endpoint) and not ends:
            problems.add(
                p,
                f"neither {a} ({hosts[a].endpoint}) nor {b} ({hosts[b].endpoint}) has a static "
                "endpoint: they can never find each other (unless the link gives the address "
                "one of them is reached at: `endpoints`, as on a shared LAN)",
            )
        psk = psk_default if psk is None else psk
        vni = vni if vni is not None else next(free)
        links.append((p, Link(a, b, vni, lat, cost, psk, ends)))
    if not bad and hosts and len(hosts) > 1:
        _check_connected(hosts, [lk for _p, lk in links], path, problems)
    return links


def _idx(p: YamlPath) -> str:
    return f"[{p[-1]}]" if p and isinstance(p[-1], int) else ""


def _did_you_mean(name: str, names: dict[str, Any]) -> str:
    hint = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _link_entry(item: Any, p: YamlPath, problems: Problems) -> _LinkEntry | None:
    vni = lat = cost = psk = None
    ends: tuple[LinkEndpoint, ...] = ()
    if isinstance(item, dict):
        sec = Section(item, p, problems)
        pair = sec.get("hosts", list, None, "a list of two host names")
        vni = sec.int_in("vni", 1, VNI_MAX, None)
        lat = sec.get("latency_ms", float, None, "a number of milliseconds")
        cost = sec.int_in("cost", 1, 65535, None)
        psk = sec.get("psk", bool, None, "true or false")
        ends = _endpoints(sec.get("endpoints", dict, {}, "a mapping of host: address"), p, problems)
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
        problems.add(p, f"must be a pair like [a, b] or a mapping with hosts:, not {kind(item)}")
        return None
    if len(pair) != 2 or not all(isinstance(x, str) for x in pair):
        problems.add(p, "a link joins exactly two host names")
        return None
    return (p, pair[0], pair[1], vni, lat, cost, psk, ends)


def _endpoints(raw: dict[Any, Any], p: YamlPath, problems: Problems) -> tuple[LinkEndpoint, ...]:
    """`endpoints: {HOST: ADDRESS[:PORT]}`: an IP address (an IPv6 one in brackets when a
    port follows), never a name: a LAN address is what the link is for."""
    out = []
    for host, value in raw.items():
        at = (*p, "endpoints", str(host))
        if not isinstance(host, str) or not isinstance(value, str):
            problems.add(at, "must be a host name and an address like 192.168.1.10[:51820]")
            continue
        parsed = _address_port(value)
        if isinstance(parsed, str):
            problems.add(at, parsed)
            continue
        out.append(LinkEndpoint(host, *parsed))
    return tuple(out)


def _address_port(text: str) -> tuple[IPv4Address | IPv6Address, int | None] | str:
    """ADDRESS, ADDRESS:PORT or [IPV6]:PORT; else why not."""
    addr, port = text, None
    if ip_of(text) is None:
        head, sep, tail = text.rpartition(":")
        if sep and tail.isdigit() and tail.isascii():
            addr, port = head.removeprefix("[").removesuffix("]"), int(tail)
            if ":" in addr and not head.startswith("["):
                return f"{quoted(text)}: write an IPv6 address with a port as [ADDRESS]:PORT"
    ip = ip_of(addr)
    if ip is None:
        return f"not an IP address: {quoted(text)} (a link's endpoint is an address on its LAN)"
    if why := unusable_ip(ip, endpoint=True):
        return why
    if port is not None and not 1 <= port <= 65535:
        return f"port {port} is not in 1–65535"
    return ip, port


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
