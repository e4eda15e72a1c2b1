"""`mesh.stp`: the bridges' 802.1D timers, the root, MAC ageing (docs/inventory.md). Pure."""

from __future__ import annotations

from mesh_push.core.model import Stp
from mesh_push.core.problems import Problems
from mesh_push.core.section import Draft, Section
from mesh_push.core.values import IFNAME_MAX, NAME_CHARS, chars


def read(sec: Section) -> Stp:
    hello = sec.int_in("hello", 1, 10, 2)
    fd = sec.int_in("forward_delay", 2, 30, 15)
    max_age = sec.int_in("max_age", 6, 40, 20)
    ageing = sec.int_in("ageing", 1, 1_000_000, 300)
    root = sec.get("root", str, None)
    prefix = sec.get("wire_prefix", str, "", "a string") or ""
    if prefix and (why := _unsafe(prefix)):
        sec.problems.add((*sec.path, "wire_prefix"), why)
        prefix = ""
    sec.done()
    if None not in (hello, fd, max_age) and not (2 * (fd - 1) >= max_age >= 2 * (hello + 1)):
        sec.problems.add(
            sec.path,
            f"timers break 2 × (forward_delay − 1) ≥ max_age ≥ 2 × (hello + 1): "
            f"2 × ({fd} − 1) = {2 * (fd - 1)}, max_age = {max_age}, "
            f"2 × ({hello} + 1) = {2 * (hello + 1)}",
        )
    return Stp(hello or 2, fd or 15, max_age or 20, root, ageing or 300, prefix)


def check(stp: Stp, draft: Draft, problems: Problems) -> None:
    if stp.root is not None and stp.root not in {h.name for h in draft.hosts}:
        problems.add(("mesh", "stp", "root"), f"unknown host {stp.root!r}")
    leaves = {h.name for h in draft.hosts if not h.transit}
    if stp.root in leaves:
        problems.add(
            ("mesh", "stp", "root"),
            f"{stp.root} has transit: false: the root carries every other host's traffic",
        )
    if stp.wire_prefix:
        linked = sorted({name for _, lk in draft.links for name in lk.hosts})
        too_long = [n for n in linked if len((stp.wire_prefix + n).encode()) > IFNAME_MAX]
        if too_long:
            problems.add(
                ("mesh", "stp", "wire_prefix"),
                f"the wires {', '.join(stp.wire_prefix + n for n in too_long)} would be longer "
                f"than an interface name ({IFNAME_MAX} bytes)",
            )


def _unsafe(prefix: str) -> str | None:
    if len(prefix.encode()) >= IFNAME_MAX:
        return f"must be shorter than {IFNAME_MAX} bytes, to leave room for a host name"
    if bad := set(prefix) - NAME_CHARS:
        return f"holds {chars(bad)}: only ASCII letters, digits, '-' and '_' are allowed"
    return None
