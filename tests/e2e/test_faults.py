"""Faults (issue 28), on the lab: each fault strikes in the middle of an `up` (or of `status
--serve`), and each must end the same way. Every host holds the old script or the new one,
never half (its boot script is the one its record says was applied), one
`up` repairs everything, and `status` tells the truth throughout (it names the host at fault,
exits 1 while it is so, and never dies). docs/security.md has the table.

Two inventories that differ on every host (the bridges' ageing) make each `up` apply
everywhere. The module's lab is its own (tests/labs.py). Needs root; under CI=true it must run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mesh_push.lab import sshd
from mesh_push.lab.state import keeper_pid, node_dir
from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import (
    ROOT,
    cli_argv,
    lab_cat,
    lab_exec,
    lab_inventory,
    lab_up,
    mesh_push,
    templates_with,
    whole_boot_script,
)

LAB, NET = labs.lab("mpf")
HOSTS = ["bob", "rho", "pi0"]
STATE = "/var/lib/mesh-push/lab"  # the mesh of inventory/lab.yaml is named lab


@dataclass
class Lab:
    dir: Path
    text: str  # the inventory, with `ageing: 2}` to vary
    slow: Path  # --templates whose host script takes 3 s: an apply is in flight for a while
    runs: int = 0

    def next(self) -> Path:
        """An inventory that differs on every host from whatever was applied before."""
        self.runs += 1
        inv = self.dir / f"lab-{self.runs}.yaml"
        inv.write_text(self.text.replace("ageing: 2}", f"ageing: {2 + self.runs}}}"))
        return inv

    def latest(self) -> Path:
        """The inventory the last fault's `up` repaired to."""
        return self.dir / (f"lab-{self.runs}.yaml" if self.runs else "lab.yaml")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_root()
    d = tmp_path_factory.mktemp("faults")
    a = lab_inventory(d / "lab.yaml", LAB, NET)
    # Three of the write-up's hosts, in a triangle (one wire blocks): enough for every fault,
    # and cheaper than five in a suite that runs on two cores.
    lines = [ln for ln in a.read_text().splitlines() if "vorke" not in ln and "epsilon" not in ln]
    lines.append("  - {hosts: [bob, pi0], vni: 8, latency_ms: 20}")
    text = "\n".join(lines) + "\n"
    assert "ageing: 2}" in text
    # Every inventory shares one state file (public keys), as one inventory edited would.
    text = text.replace("mesh:\n", f"mesh:\n  state: {d}/lab.state.json\n", 1)
    a.write_text(text)
    slow = templates_with(d, "sleep 3\n")
    with lab_up(LAB, a):
        up = mesh_push("up", "-i", str(a), "--yes", "--json")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr
        yield Lab(d, text, slow)


def cat(host: str, path: str) -> str | None:
    return lab_cat(LAB, host, path)


def consistent(hosts: list[str] = HOSTS) -> None:
    """Each host, once no apply runs there any more: the boot script is the one its record
    says was applied, whole. (An upload cut short may leave a `pending.sh`, which nothing
    runs; the next apply replaces it.)"""
    for host in hosts:
        applies_ended(host)
        whole_boot_script(LAB, host, STATE)


def applies_ended(host: str, timeout: float = 120) -> None:
    """The host lock free: a detached apply holds it from the session that received its
    script to its last step (recording the digest after the script became apply.sh), so a
    run the controller abandoned has ended, whatever the load."""
    deadline = time.monotonic() + timeout
    while lab_exec(LAB, host, "flock", "-n", f"{STATE}/lock", "true").returncode != 0:
        assert time.monotonic() < deadline, f"{host}: an apply still runs after {timeout} s"
        time.sleep(0.2)


def status(inv: Path) -> tuple[int, dict[str, Any]]:
    res = mesh_push("status", "-i", str(inv), "--json", timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, json.loads(res.stdout)


def repaired(inv: Path) -> None:
    """One `up` repairs everything; then status is healthy."""
    res = mesh_push("up", "-i", str(inv), "--yes", "--json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    consistent()
    deadline = time.monotonic() + 60
    while True:
        code, data = status(inv)
        if code == 0:
            break
        sick = {h["name"]: h["reasons"] for h in data["hosts"] if not h["healthy"]}
        assert time.monotonic() < deadline, (data["reasons"], sick)
        time.sleep(2)


def up_until_applying(lab: Lab, inv: Path, host: str | None = None) -> subprocess.Popen[str]:
    """`up` with the slow host script started, returned once its first host (or `host`) is
    being applied: its apply then runs for 3 s more."""
    proc = subprocess.Popen(
        cli_argv("up", "-i", str(inv), "--yes", "--templates", str(lab.slow)),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        words = line.split()
        if words[-1:] == ["applying"] and (host is None or host in words):
            # The rest of its progress is not read: a thread drains it, so it never blocks.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc
    raise AssertionError(f"up never applied (exit {proc.wait()}): {''.join(seen)[-2000:]}")


def sshd_pid(host: str) -> int:
    lab = json.loads(mesh_push("lab", "status", "--name", LAB, "--json", check=True).stdout)
    return int(next(n for n in lab[0]["nodes"] if n["alias"] == host)["sshd_pid"])


def tree(pid: int) -> list[int]:
    """`pid` and every process under it, from /proc (by pid, never by name)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue  # it ended since its parent listed it (a session of an earlier gather)
        pids.append(p)
        for task in tasks:
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return pids


def test_the_controller_killed_in_the_middle_of_an_apply(lab: Lab) -> None:
    """SIGKILL of `up` as its first host applies: whatever each host got, it is whole."""
    inv = lab.next()
    proc = up_until_applying(lab, inv)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    consistent()  # a detached apply runs to its end by itself: waited for
    code, data = status(inv)
    assert code in (0, 1) and {h["name"] for h in data["hosts"]} == set(HOSTS)
    repaired(inv)


def test_a_hosts_sshd_killed_in_the_middle_of_an_apply(lab: Lab) -> None:
    """rho's sshd and its sessions killed as rho's apply starts: rho fails alone, its apply
    (detached) still ends whole; back with a new sshd, one `up` repairs it."""
    inv = lab.next()
    listener = sshd_pid("rho")
    proc = up_until_applying(lab, inv, "rho")
    try:
        for pid in tree(listener):
            signal_pid(pid, signal.SIGKILL)
        assert proc.wait(timeout=600) == 1
        consistent(["bob", "pi0"])
        code, data = status(inv)
        rho = next(h for h in data["hosts"] if h["name"] == "rho")
        assert code == 1 and rho["healthy"] is None, rho  # unreachable, said so
    finally:
        keeper = keeper_pid(LAB, "rho")
        assert keeper is not None
        sshd.start({"rho": keeper}, {"rho": node_dir(LAB, "rho")})
    consistent()
    repaired(inv)


def test_a_host_rebooted_in_the_middle_of_an_apply(lab: Lab) -> None:
    """pi0 rebooted (the lab's: its interfaces gone, its boot units run) as the apply
    starts: the boot script it runs is a whole one, and one `up` repairs the rest."""
    inv = lab.next()
    proc = up_until_applying(lab, inv)
    mesh_push("lab", "reboot", "--name", LAB, "pi0", check=True)
    proc.wait(timeout=600)
    consistent()
    code, _ = status(inv)
    assert code in (0, 1)
    repaired(inv)


def test_the_underlay_cut_in_the_middle_of_an_apply(lab: Lab) -> None:
    """bob–rho's underlay cut as the apply starts: the applies end, status says the tree is
    failing over while it is cut; healed, one `up` leaves all healthy."""
    inv = lab.next()
    proc = up_until_applying(lab, inv)
    mesh_push("lab", "cut", "--name", LAB, "bob", "rho", check=True)
    try:
        proc.wait(timeout=600)
        consistent()
        code, data = status(inv)
        # The planned blocking wire (bob–pi0) takes over: status says it is still listening,
        # learning, or forwarding against the plan, whichever it is at that moment.
        said = [r for h in data["hosts"] for r in h["reasons"]] + data["reasons"]
        assert code == 1 and any("bob–pi0" in r or "tree" in r for r in said), data
    finally:
        mesh_push("lab", "heal", "--name", LAB, "bob", "rho", check=True)
    repaired(inv)


def test_a_full_disk_fails_that_host_alone(lab: Lab) -> None:
    """rho's state directory full (a 1 MiB tmpfs over it, filled): its apply fails with the
    disk's own words and keeps the script it had; the others apply; freed, `up` repairs."""
    inv = lab.next()
    script = cat("rho", f"{STATE}/apply.sh")
    fill = (
        f"set -e; mkdir -p /tmp/keep; cp -a {STATE}/. /tmp/keep/; "
        f"mount -t tmpfs -o size=1m,mode=0700 full {STATE}; cp -a /tmp/keep/. {STATE}/; "
        f"dd if=/dev/zero of={STATE}/fill bs=4k 2>/dev/null || true"
    )
    assert lab_exec(LAB, "rho", "sh", "-c", fill).returncode == 0
    try:
        res = mesh_push("up", "-i", str(inv), "--yes", "--json")
        hosts = {h["name"]: h for h in json.loads(res.stdout)["hosts"]}
        assert res.returncode == 1 and hosts["rho"]["status"] == "failed", hosts["rho"]
        assert "No space left on device" in hosts["rho"]["message"], hosts["rho"]
        assert "No space left on device" in hosts["rho"]["output_tail"], hosts["rho"]
        assert {h for h, r in hosts.items() if r["status"] == "failed"} == {"rho"}
        assert cat("rho", f"{STATE}/apply.sh") == script
        consistent()
    finally:
        lab_exec(LAB, "rho", "sh", "-c", f"umount {STATE}; rm -rf /tmp/keep")
    repaired(inv)


def test_down_during_an_up(lab: Lab) -> None:
    """`down` while `up` applies: the host lock puts them one after the other on each host,
    each tells the truth, every host ends whole (with the mesh or without), and one `up`
    builds it again."""
    inv = lab.next()
    proc = up_until_applying(lab, inv)
    down = mesh_push("down", "-i", str(inv), "--yes", "--json", timeout=600)
    assert down.returncode in (0, 1) and "Traceback" not in down.stderr, down.stderr
    proc.wait(timeout=600)
    for host in HOSTS:
        script = cat(host, f"{STATE}/apply.sh")
        if script is not None:  # the up came last here: whole
            digest = hashlib.sha256(script.encode()).hexdigest()
            assert cat(host, f"{STATE}/applied.sha256") == digest + "\n", host
    repaired(inv)


def test_a_host_that_answers_nothing_during_serve(lab: Lab) -> None:
    """rho's sshd stopped (SIGSTOP: connections hang) while `status --serve` runs: each
    gather ends within its bounds, /metrics says rho is down and the others up, /healthz
    stays ok; continued, rho is back at the next gather."""
    inv = lab.latest()
    proc = subprocess.Popen(
        cli_argv("status", "-i", str(inv), "--serve", "127.0.0.1:0", "--interval", "2"),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    listener = sshd_pid("rho")
    stopped: list[int] = []
    try:
        assert proc.stderr is not None
        port = int(proc.stderr.readline().split("http://127.0.0.1:")[1].split("/")[0])
        base = f"http://127.0.0.1:{port}"
        wait_for(base, lambda m: 'mesh_push_mesh_healthy{mesh="lab"} 1.0' in m)
        # The sshd and its sessions as they are now: a session of an earlier gather may
        # have ended since the first healthy one (listed before it, one was gone: ESRCH).
        stopped = tree(listener)
        for pid in stopped:
            signal_pid(pid, signal.SIGSTOP)
        wait_for(base, lambda m: reachable(m, "rho") == 0.0, 90)
        metrics = get(base + "/metrics")
        assert {h: reachable(metrics, h) for h in HOSTS} == {
            **dict.fromkeys(HOSTS, 1.0),
            "rho": 0.0,
        }
        assert get(base + "/healthz").startswith("ok: ")
    finally:
        for pid in stopped:
            signal_pid(pid, signal.SIGCONT)
        try:
            wait_for(base, lambda m: reachable(m, "rho") == 1.0, 90)
        finally:
            proc.terminate()
            proc.wait(10)


def signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # a session that ended meanwhile
        os.kill(pid, sig)


def reachable(metrics: str, host: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith("mesh_push_host_reachable{") and f'host="{host}"' in line:
            return float(line.split()[-1])
    return None


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        body: bytes = r.read()
        return body.decode()


def wait_for(base: str, ok: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        try:
            last = get(base + "/metrics")
        except OSError:
            last = ""
        if ok(last):
            return
        time.sleep(1)
    raise AssertionError(last[-3000:])
