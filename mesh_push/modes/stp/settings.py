"""`mesh.stp`: the bridges' 802.1D timers, the root, MAC ageing (docs/inventory.md). Pure."""

from __future__ import annotations

from mesh_push.core.model import Stp
from mesh_push.core.problems import Problems
from mesh_push.core.section import Draft, Section


def read(sec: Section) -> Stp:
    hello = sec.int_in("hello", 1, 10, 2)
    fd = sec.int_in("forward_delay", 2, 30, 15)
    max_age = sec.int_in("max_age", 6, 40, 20)
    ageing = sec.int_in("ageing", 1, 1_000_000, 300)
    root = sec.get("root", str, None)
    sec.done()
    if None not in (hello, fd, max_age) and not (2 * (fd - 1) >= max_age >= 2 * (hello + 1)):
        sec.problems.add(
            sec.path,
            f"timers break 2 × (forward_delay − 1) ≥ max_age ≥ 2 × (hello + 1): "
            f"2 × ({fd} − 1) = {2 * (fd - 1)}, max_age = {max_age}, "
            f"2 × ({hello} + 1) = {2 * (hello + 1)}",
        )
    return Stp(hello or 2, fd or 15, max_age or 20, root, ageing or 300)


def check(stp: Stp, draft: Draft, problems: Problems) -> None:
    if stp.root is not None and stp.root not in {h.name for h in draft.hosts}:
        problems.add(("mesh", "stp", "root"), f"unknown host {stp.root!r}")
