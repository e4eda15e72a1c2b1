"""Rollout policy: which hosts, in what batches, how many failures we accept, and the
rollback each host arms for itself when a confirmation is asked for. Pure but for the shell
text it renders."""

from __future__ import annotations

import base64
import math
import re
import shlex
from dataclasses import dataclass

from .model import STATE_DIR


class RolloutError(ValueError):
    """A bad --limit / --serial / --max-fail: a usage error."""


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


def _armed(token: str, seconds: float) -> str:
    """Runs on the host, detached: unless confirmed in time, converge back to what the
    previous script described (the scripts are convergent, so running the old one *is* the
    rollback) and record that it happened."""
    d = STATE_DIR
    return (
        f"sleep {seconds:g}\n"
        f"[ -e {d}/confirmed.{token} ] && exit 0\n"
        f"sh {d}/rollback.sh > {d}/rollback.log 2>&1 || true\n"
        f"mkdir -p {d}\n"
        f"if [ -e {d}/rollback.sha256 ]; then\n"
        f"  cp {d}/rollback.sh {d}/apply.sh && mv {d}/rollback.sha256 {d}/applied.sha256\n"
        f"else\n"
        f"  rm -f {d}/applied.sha256\n"
        f"fi\n"
        f"echo {token} > {d}/rolled-back\n"
    )


def arm_command(token: str, seconds: float, fallback: str) -> str:
    """Shell run before the new script replaces the old: keep the old script as the rollback
    (or `fallback`, the down script, on a host that had none), then start the timer."""
    d = STATE_DIR
    enc = base64.b64encode
    return (
        f"mkdir -p {d}; rm -f {d}/rolled-back {d}/confirmed.*; "
        f"if [ -s {d}/apply.sh ] && [ -e {d}/applied.sha256 ]; then "
        f"cp {d}/apply.sh {d}/rollback.sh; cp {d}/applied.sha256 {d}/rollback.sha256; "
        f"else echo {enc(fallback.encode()).decode()} | base64 -d > {d}/rollback.sh; "
        f"rm -f {d}/rollback.sha256; fi; "
        f"echo {enc(_armed(token, seconds).encode()).decode()} | base64 -d > {d}/armed.sh; "
        f"setsid sh {d}/armed.sh </dev/null >/dev/null 2>&1 & "
    )


def confirm_command(token: str) -> str:
    d = STATE_DIR
    # Fails if the timer already fired: the host is back in its old state.
    return f"[ ! -e {d}/rolled-back ] && touch {d}/confirmed.{shlex.quote(token)}"


def rolled_back_command() -> str:
    return f"cat {STATE_DIR}/rolled-back 2>/dev/null || true"
