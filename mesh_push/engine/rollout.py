"""Rollout policy: which hosts, in what batches, how many failures we accept, and the
rollback each host arms for itself when a confirmation is asked for (its shell: host/programs.py).
Pure."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


class RolloutError(ValueError):
    """A bad --limit / --serial / --max-fail / --confirm-timeout: a usage error."""


# --confirm-timeout: below the minimum a fresh SSH connection (handshake, sudo) may not make
# it in time even on a healthy host; above the maximum it is a mistake (a day is plenty).
CONFIRM_MIN_S = 5.0
CONFIRM_MAX_S = 86400.0


@dataclass(frozen=True)
class Options:
    limit: frozenset[str] | None = None  # only these hosts (and their peers if with_peers)
    with_peers: bool = False
    serial: int | None = None  # hosts per batch; the first batch is the canary
    max_fail: str = "100%"  # "N" hosts or "N%" of the hosts to apply
    confirm_timeout: float | None = None

    def budget(self, hosts: int) -> int:
        m = re.fullmatch(r"(\d+)(%?)", self.max_fail.strip())
        if not m:
            raise RolloutError(f"--max-fail {self.max_fail}: give a count (2) or a share (10%)")
        n = int(m.group(1))
        if m.group(2):
            if n > 100:
                raise RolloutError(f"--max-fail {self.max_fail}: a share is at most 100%")
            return math.floor(hosts * n / 100)
        return n


def parse_limit(text: str | None, known: list[str]) -> frozenset[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise RolloutError(f"--limit {text}: not hosts of the inventory: {', '.join(unknown)}")
    return frozenset(names)


def batches(ordered: list[str], serial: int | None) -> list[list[str]]:
    if serial is None or serial >= len(ordered):
        return [ordered] if ordered else []
    if serial < 1:
        raise RolloutError("--serial takes a whole number of hosts, at least 1")
    return [ordered[i : i + serial] for i in range(0, len(ordered), serial)]


def check_confirm_timeout(seconds: float | None) -> None:
    """A number of seconds in [CONFIRM_MIN_S, CONFIRM_MAX_S]; not 0, negative, nan or inf."""
    if seconds is None:
        return
    # `not ... <= ...` also refuses nan, which every comparison answers False.
    if not 0 < seconds <= CONFIRM_MAX_S:
        raise RolloutError(
            f"--confirm-timeout {seconds:g}: give a number of seconds above 0, "
            f"at most {CONFIRM_MAX_S:g} (a day)"
        )
    if seconds < CONFIRM_MIN_S:
        raise RolloutError(
            f"--confirm-timeout {seconds:g}: too short to confirm over a fresh SSH connection "
            f"before the host rolls back; give at least {CONFIRM_MIN_S:g} seconds"
        )
