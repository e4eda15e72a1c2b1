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
from tests.e2e.labkit import ROOT, cli_argv, lab_exec, lab_inventory, lab_up, mesh_push

LAB, NET = labs.lab("mpf")
HOSTS = ["bob", "rho", "pi0"]
STATE = "/var/lib/mesh-push/lab"  # the mesh of inventory/lab.yaml is named lab


@dataclass
class Lab:
    a: Path  # two inventories that differ on every host's script
    b: Path
    current: Path

    def other(self) -> Path:
        return self.b if self.current == self.a else self.a


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_root()
    d = tmp_path_factory.mktemp("faults")
    a = lab_inventory(d / "lab.yaml", LAB, NET)
    # Three of the write-up's hosts, in a triangle (one wire blocks): enough for every fault,
    # and cheaper than five in a suite that runs on two cores.
    lines = [ln for ln in a.read_text().splitlines() if "vorke" not in ln and "epsilon" not in ln]
    lines.append("  - {hosts: [bob, pi0], vni: 8, latency_ms: 20}")
    a.write_text("\n".join(lines) + "\n")
    b = d / "lab-b.yaml"
    text = a.read_text()
    assert "ageing: 2}" in text
    b.write_text(text.replace("ageing: 2}", "ageing: 3}"))
    # Both share one state file (public keys), as one inventory edited would.
    b_text = b.read_text().replace("mesh:\n", f"mesh:\n  state: {d}/lab.state.json\n", 1)
    b.write_text(b_text)
    with lab_up(LAB, a):
        up = mesh_push("up", "-i", str(a), "--yes", "--json")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr
        yield Lab(a, b, a)


def cat(host: str, path: str) -> str | None:
    res = lab_exec(LAB, host, "cat", path)
    return res.stdout if res.returncode == 0 else None


def consistent() -> None:
    """Every host: the boot script is the one its record says was applied, whole. (An upload
    cut short may leave a `pending.sh`, which nothing runs; the next apply replaces it.)"""
    for host in HOSTS:
        script = cat(host, f"{STATE}/apply.sh")
        assert script is not None, host
        digest = hashlib.sha256(script.encode()).hexdigest()
        assert cat(host, f"{STATE}/applied.sha256") == digest + "\n", host


def status(inv: Path) -> tuple[int, dict[str, Any]]:
    res = mesh_push("status", "-i", str(inv), "--json", timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, json.loads(res.stdout)


def repaired(lab: Lab, inv: Path) -> None:
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
    lab.current = inv


def up_until_applying(inv: Path) -> subprocess.Popen[str]:
    """`up` started, returned once its first host is being applied."""
    proc = subprocess.Popen(
        cli_argv("up", "-i", str(inv), "--yes"),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.rstrip().endswith("applying"):
            return proc
    raise AssertionError(f"up never applied (exit {proc.wait()})")


def sshd_tree(host: str) -> list[int]:
    """The pids of the host's sshd and every session it serves (by pid, never by name)."""
    lab = json.loads(mesh_push("lab", "status", "--name", LAB, "--json", check=True).stdout)
    node = next(n for n in lab[0]["nodes"] if n["alias"] == host)
    pids, todo = [], [int(node["sshd_pid"])]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            children = (task / "children").read_text().split() if task.exists() else []
            todo += [int(c) for c in children]
    return pids


def test_the_controller_killed_in_the_middle_of_an_apply(lab: Lab) -> None:
    """SIGKILL of `up` as its first host applies: whatever each host got, it is whole."""
    inv = lab.other()
    proc = up_until_applying(inv)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # a detached apply on a host runs to its end by itself
    consistent()
    code, data = status(inv)
    assert code in (0, 1) and {h["name"] for h in data["hosts"]} == set(HOSTS)
    repaired(lab, inv)


def test_a_hosts_sshd_killed_in_the_middle_of_an_apply(lab: Lab) -> None:
    """rho's sshd and its sessions killed as the apply starts: rho fails alone, its apply
    (detached) still ends whole; back with a new sshd, one `up` repairs it."""
    inv = lab.other()
    proc = up_until_applying(inv)
    for pid in sshd_tree("rho"):
        signal_pid(pid, signal.SIGKILL)
    assert proc.wait(timeout=600) == 1
    time.sleep(2)
    consistent()
    code, data = status(inv)
    rho = next(h for h in data["hosts"] if h["name"] == "rho")
    assert code == 1 and rho["healthy"] is None, rho  # unreachable, said so
    keeper = keeper_pid(LAB, "rho")
    assert keeper is not None
    sshd.start({"rho": keeper}, {"rho": node_dir(LAB, "rho")})
    repaired(lab, inv)


def test_a_host_rebooted_in_the_middle_of_an_apply(lab: Lab) -> None:
    """pi0 rebooted (the lab's: its interfaces gone, its boot units run) as the apply
    starts: the boot script it runs is a whole one, and one `up` repairs the rest."""
    inv = lab.other()
    proc = up_until_applying(inv)
    mesh_push("lab", "reboot", "--name", LAB, "pi0", check=True)
    proc.wait(timeout=600)
    consistent()
    code, _ = status(inv)
    assert code in (0, 1)
    repaired(lab, inv)


def test_the_underlay_cut_in_the_middle_of_an_apply(lab: Lab) -> None:
    """bob–rho's underlay cut as the apply starts: up says what it could not verify, status
    names the wire while it is cut; healed, one `up` leaves all healthy."""
    inv = lab.other()
    proc = up_until_applying(inv)
    mesh_push("lab", "cut", "--name", LAB, "bob", "rho", check=True)
    try:
        proc.wait(timeout=600)
        consistent()
        code, data = status(inv)
        assert code == 1 and not data["healthy"], data
        wire = next(w for w in data["wires"] if set(w["hosts"]) == {"bob", "rho"})
        assert wire["problems"], wire
    finally:
        mesh_push("lab", "heal", "--name", LAB, "bob", "rho", check=True)
    repaired(lab, inv)


def test_a_full_disk_fails_that_host_alone(lab: Lab) -> None:
    """rho's state directory full (a 1 MiB tmpfs over it, filled): its apply fails with the
    disk's own words and keeps the script it had; the others apply; freed, `up` repairs."""
    inv = lab.other()
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
        assert {h for h, r in hosts.items() if r["status"] == "failed"} == {"rho"}
        assert cat("rho", f"{STATE}/apply.sh") == script
        consistent()
    finally:
        lab_exec(LAB, "rho", "sh", "-c", f"umount {STATE}; rm -rf /tmp/keep")
    repaired(lab, inv)


def test_down_during_an_up(lab: Lab) -> None:
    """`down` while `up` applies: the host lock puts them one after the other on each host,
    each tells the truth, every host ends whole (with the mesh or without), and one `up`
    builds it again."""
    inv = lab.other()
    proc = up_until_applying(inv)
    down = mesh_push("down", "-i", str(inv), "--yes", "--json", timeout=600)
    assert down.returncode in (0, 1) and "Traceback" not in down.stderr, down.stderr
    proc.wait(timeout=600)
    for host in HOSTS:
        script = cat(host, f"{STATE}/apply.sh")
        if script is not None:  # the up came last here: whole
            digest = hashlib.sha256(script.encode()).hexdigest()
            assert cat(host, f"{STATE}/applied.sha256") == digest + "\n", host
    repaired(lab, inv)


def test_a_host_that_answers_nothing_during_serve(lab: Lab) -> None:
    """rho's sshd stopped (SIGSTOP: connections hang) while `status --serve` runs: each
    gather ends within its bounds, /metrics says rho is down and the others up, /healthz
    stays ok; continued, rho is back at the next gather."""
    inv = lab.current
    proc = subprocess.Popen(
        cli_argv("status", "-i", str(inv), "--serve", "127.0.0.1:0", "--interval", "2"),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped = sshd_tree("rho")
    try:
        assert proc.stderr is not None
        port = int(proc.stderr.readline().split("http://127.0.0.1:")[1].split("/")[0])
        base = f"http://127.0.0.1:{port}"
        wait_for(base, lambda m: 'mesh_push_mesh_healthy{mesh="lab"} 1.0' in m)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
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
