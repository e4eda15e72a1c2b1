"""How long traffic stops when a lab link is cut: a fast ping from one lab host to another's
bridge address, the cut in the middle, the longest silence measured from the replies'
timestamps. Shared by the evpn tests and benchmarks/mode_bench.py (STP and EVPN alike)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass

from mesh_push.lab import ops

REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from", re.M)


@dataclass(frozen=True)
class Outage:
    seconds: float  # the longest silence between replies after the cut
    replies_before: int
    replies_after: int


def replies(text: str) -> list[float]:
    return [float(m.group(1)) for m in REPLY.finditer(text)]


def outage(stamps: list[float], t_cut: float) -> float | None:
    """The longest silence between two replies from just before the cut on: how long traffic
    stopped (a fraction of the ping interval when it never did); None when no reply came
    back after the cut."""
    after = [t for t in stamps if t >= t_cut]
    if not after:
        return None
    last = max([t for t in stamps if t < t_cut], default=t_cut)
    gap = 0.0
    for t in after:
        gap = max(gap, t - last)
        last = t
    return gap


def measure(
    lab: str,
    src: str,
    address: str,
    cut: tuple[str, str],
    settle: float = 1.0,
    window: float = 8.0,
    interval: float = 0.02,
) -> Outage | None:
    """Ping `address` from host `src` of lab `lab` every `interval`, cut `cut` after `settle`
    seconds, keep pinging `window` seconds more; the cut is healed before returning. None:
    no reply came back within the window."""
    # No count or deadline: ping sends more slowly while replies fail (and -w can end it
    # early on a burst of errors). It is stopped with SIGINT once the window is over.
    argv = ["ping", "-D", "-n", "-i", str(interval), "-W", "1", address]
    ping = subprocess.Popen(
        ops.exec_argv(lab, src, argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    cut_done = False
    try:
        time.sleep(settle)
        t_cut = time.time()
        ops.set_cut(lab, *cut, True)
        cut_done = True
        time.sleep(window)
        ping.send_signal(signal.SIGINT)
        out, _ = ping.communicate(timeout=30)
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait(10)
        if cut_done:
            ops.set_cut(lab, *cut, False)
    stamps = replies(out)
    seconds = outage(stamps, t_cut)
    if seconds is None:
        return None
    return Outage(
        seconds, sum(1 for t in stamps if t < t_cut), sum(1 for t in stamps if t >= t_cut)
    )
