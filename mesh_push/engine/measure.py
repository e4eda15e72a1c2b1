"""Stage Measure (`mesh-push measure`): the round trip of every link over its WireGuard tunnel.
One SSH command per host pings every peer's tunnel address at once; a link's figure is the
average of its two ends' median round trips (one end alone if the other could not be asked)."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mesh_push.core.reported import decimal, whole
from mesh_push.host import programs
from mesh_push.modes.base import Plan

if TYPE_CHECKING:
    from mesh_push.engine.session import HostError, Session

MARK = "=== mesh-push measure "
TIME_RE = re.compile(r"time[=<](\S+?) ?ms")
SENT_RE = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
PING_TIMEOUT_S = 60


@dataclass
class End:
    host: str
    sent: int = 0
    received: int = 0
    times_ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None


@dataclass
class LinkResult:
    a: str
    b: str
    vni: int
    inventory_ms: float | None
    ends: dict[str, End]

    @property
    def measured_ms(self) -> float | None:
        meds = [m for e in self.ends.values() if (m := e.median_ms) is not None]
        return statistics.fmean(meds) if meds else None

    def as_json(self) -> dict[str, Any]:
        return {
            "hosts": [self.a, self.b],
            "vni": self.vni,
            "inventory_ms": self.inventory_ms,
            "measured_ms": _round(self.measured_ms),
            "ends": {
                name: {
                    "median_ms": _round(e.median_ms),
                    "sent": e.sent,
                    "received": e.received,
                    "error": e.error,
                }
                for name, e in self.ends.items()
            },
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def ping_command(targets: list[tuple[str, str]], count: int) -> str:
    """All pings at once (each into its own file), then their outputs one after the other,
    each under a marker line naming the peer."""
    return programs.measure(targets, count, MARK)


def parse_pings(text: str) -> dict[str, End]:
    out: dict[str, End] = {}
    cur: End | None = None
    for line in text.splitlines():
        if line.startswith(MARK):
            name = line[len(MARK) :].strip()
            cur = out[name] = End(name)
            continue
        if cur is None:
            continue
        if m := TIME_RE.search(line):
            cur.times_ms.append(decimal(m.group(1), "ping's time"))
        elif m := SENT_RE.search(line):
            cur.sent = whole(m.group(1), "ping's count")
            cur.received = whole(m.group(2), "ping's count")
    for end in out.values():
        if not end.times_ms:
            end.error = "no reply"
    return out


def format_ms(v: float) -> str:
    """Two decimals, trailing zeros dropped, never 0 (0.01 at least)."""
    v = max(0.01, round(v, 2))
    return f"{v:.2f}".rstrip("0").rstrip(".")


def measure(session: Session, p: Plan, count: int) -> tuple[list[LinkResult], dict[str, str]]:
    """Every link's round trip from both its ends; and why each host could not be asked."""
    errors: dict[str, str] = {
        n: r.details for n, r in session.reports.items() if n not in session.conns
    }

    def one(name: str) -> dict[str, End]:
        targets = [(pe.name, str(pe.address)) for pe in p.host(name).peers if pe.address]
        if not targets:
            return {}
        res = session.run(name, ping_command(targets, count), timeout=PING_TIMEOUT_S)
        return parse_pings(res.stdout)

    def failed(name: str, err: HostError) -> None:
        errors[name] = err.why

    per_host = session.each(list(session.conns), one, failed)
    results = []
    for lk in p.mesh.links:
        ends: dict[str, End] = {}
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            got = per_host.get(here, {}).get(there)
            if got is None:
                got = End(there, error=errors.get(here, "not measured"))
            got.host = here
            ends[here] = got
        results.append(LinkResult(lk.a, lk.b, lk.vni, lk.latency_ms, ends))
    return results, errors
