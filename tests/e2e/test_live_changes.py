"""Changing a live mesh without hurting it (issue 7), on the lab: no-op re-runs, adding a
host and taking it off with `down HOST`, key rotation, reboots and an apply whose SSH
connection dies half way. Needs root; under CI=true it must run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesh_push import cli
from mesh_push.engine import ssh
from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import (
    HOSTS,
    ROOT,
    cli_argv,
    lab_exec,
    lab_inventory,
    lab_up,
    mesh_push,
    templates_with,
)

LAB, NET = labs.lab("mpc")  # tests/labs.py: this module's own


class Mesh:
    def __init__(self, tmp: Path) -> None:
        self.path = lab_inventory(tmp / "mesh.yaml", LAB, NET)
        self.five = self.path.read_text()
        # zeta: a sixth host the lab has from the start, joined to the mesh later.
        self.six = (
            self.five.replace(
                "hosts:\n",
                "hosts:\n  zeta:    {number: 6, endpoint: static, address: " + NET + ".16}\n",
                1,
            )
            + "  - {hosts: [zeta, bob], vni: 8, latency_ms: 10}\n"
        )
        self.path.write_text(self.six)
        self.tmp = tmp

    def use(self, text: str) -> None:
        self.path.write_text(text)

    def up(self, *extra: str) -> dict[str, Any]:
        res = mesh_push("up", "-i", str(self.path), "--yes", "--json", *extra)
        assert res.returncode == 0, res.stdout + res.stderr
        report: dict[str, Any] = json.loads(res.stdout)
        return report

    def statuses(self, report: dict[str, Any]) -> dict[str, str]:
        return {h["name"]: h["status"] for h in report["hosts"]}

    def healthy_within(self, seconds: float) -> float:
        start = time.monotonic()
        while mesh_push("status", "-i", str(self.path), "--json").returncode != 0:
            assert time.monotonic() - start < seconds, "mesh not healthy in time"
            time.sleep(0.5)
        return time.monotonic() - start


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    require_root()
    m = Mesh(tmp_path_factory.mktemp("live"))
    with lab_up(LAB, m.path):
        m.use(m.five)
        m.up()
        yield m


class Pinger:
    """A ping every 0.1 s across the bridge, from one lab host to another."""

    def __init__(self, src: str, dst_number: int, count: int) -> None:
        self.proc = subprocess.Popen(
            cli_argv("lab", "exec", "--name", LAB, src, "--",
                "ping", "-i", "0.1", "-c", str(count), "-W", "1", f"10.99.99.{dst_number}"),
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip

    def lost(self) -> tuple[int, int]:
        out, _ = self.proc.communicate(timeout=60)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert m, out
        return int(m.group(1)), int(m.group(1)) - int(m.group(2))


def test_noop_up_one_round_trip_no_loss(mesh: Mesh, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {h: lab_exec(LAB, h, "ip", "-j", "link").stdout for h in HOSTS}
    calls: Counter[str] = Counter()
    real_run = ssh.run

    def counting(conn: Any, command: str, stdin: str | None = None, timeout: float = 300) -> Any:
        calls[conn.host] += 1
        return real_run(conn, command, stdin, timeout)

    monkeypatch.setattr(ssh, "run", counting)
    pinger = Pinger("epsilon", 3, 30)  # epsilon → vorke
    time.sleep(0.5)
    start = time.monotonic()
    assert cli.main(["up", "-i", str(mesh.path), "--yes", "--json"]) == 0
    wall = time.monotonic() - start
    sent, lost = pinger.lost()
    print(f"no-op up: {wall:.2f} s wall, {sent} pings, {lost} lost, round trips {dict(calls)}")
    assert lost == 0
    assert set(calls.values()) == {1} and len(calls) == 5  # one round trip per host
    for h in HOSTS:
        idx = lambda t: sorted((x["ifname"], x["ifindex"]) for x in json.loads(t))  # noqa: E731
        assert idx(lab_exec(LAB, h, "ip", "-j", "link").stdout) == idx(before[h])


def test_an_upgrade_keeps_the_old_default_names(mesh: Mesh) -> None:
    """An inventory written before the default names changed names neither wg0 nor internet
    (the lab's names them): `up` finds them on the hosts under the mesh's mark, changes
    nothing there, and writes them into the inventory (issue 35)."""
    index = lambda h: sorted(  # noqa: E731
        (x["ifname"], x["ifindex"]) for x in json.loads(lab_exec(LAB, h, "ip", "-j", "link").stdout)
    )
    before = {h: index(h) for h in HOSTS}
    old = mesh.five.replace("interface: wg0, ", "").replace("name: internet, ", "")
    assert "wg0" not in old and "internet" not in old
    mesh.use(old)
    check = mesh_push("up", "-i", str(mesh.path), "--check", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "up will write mesh.wireguard.interface: wg0, mesh.bridge.name: internet" in check.stderr
    report = mesh.up()
    assert set(mesh.statuses(report).values()) == {"unchanged"}, report
    assert {h: index(h) for h in HOSTS} == before
    pinned = mesh.path.read_text()
    assert 'wireguard: {interface: "wg0", port: 56560' in pinned
    assert 'bridge: {name: "internet", network' in pinned
    mesh.healthy_within(10)
    mesh.use(mesh.five)


def test_add_a_host_touches_only_what_changes(mesh: Mesh) -> None:
    pinger = Pinger("epsilon", 3, 40)
    time.sleep(0.5)
    mesh.use(mesh.six)
    report = mesh.up()
    sent, lost = pinger.lost()
    s = mesh.statuses(report)
    assert s["zeta"] == "changed" and s["bob"] == "changed"
    assert s["pi0"] == "unchanged"  # neither its peers nor its wire's cost moved
    bob_changes = next(h["changes"] for h in report["hosts"] if h["name"] == "bob")
    assert "wire zeta created (vni 8)" in bob_changes
    assert not any("created" in c or "removed" in c for c in bob_changes if "zeta" not in c)
    assert lost == 0, f"epsilon ↔ vorke lost {lost} of {sent} while zeta joined"
    mesh.healthy_within(40)


def test_down_a_host_takes_it_off_the_live_mesh(mesh: Mesh) -> None:
    """`down zeta` (issue 35's day two): every other host drops it in the same run (bob its
    wire and peer), zeta is left with nothing of the mesh, the inventory loses zeta and its
    link and nothing else, and the others lose no packet meanwhile."""
    zeta_key = lab_exec(LAB, "zeta", "wg", "show", "wg0", "public-key").stdout.strip()
    check = mesh_push("down", "-i", str(mesh.path), "zeta", "--check", "--json")
    assert check.returncode == 3, check.stdout + check.stderr
    assert mesh.path.read_text() == mesh.six  # --check changes nothing, the file neither
    assert "down would remove zeta and 1 link(s)" in check.stderr
    pinger = Pinger("epsilon", 3, 60)  # epsilon → vorke, 6 s
    time.sleep(0.5)
    res = mesh_push("down", "-i", str(mesh.path), "zeta", "--yes", "--json")
    sent, lost = pinger.lost()
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    s = mesh.statuses(report)
    assert s["zeta"] == "changed" and s["bob"] == "changed", s
    # The others at most re-cost a port (the tree lost a wire): no interface or peer moves.
    for h in report["hosts"]:
        if h["name"] not in ("zeta", "bob"):
            assert not [c for c in h["changes"] if "created" in c or "removed" in c], h
    assert report["verify"]["ok"] and "zeta" not in report["verify"]["hosts"]
    assert lost == 0, f"epsilon ↔ vorke lost {lost} of {sent} while zeta left"
    assert zeta_key not in lab_exec(LAB, "bob", "wg", "show", "wg0", "peers").stdout
    assert lab_exec(LAB, "bob", "ip", "link", "show", "dev", "zeta").returncode != 0
    left = lab_exec(LAB, "zeta", "ip", "-o", "link", "show").stdout
    assert "mesh-push:" not in left and "wg0" not in left and "internet" not in left, left
    assert mesh.path.read_text() == mesh.five
    mesh.healthy_within(40)
    # --limit on the commands that read hosts: only those are contacted and reported.
    some = mesh_push("status", "-i", str(mesh.path), "--limit", "pi0,rho", "--json")
    assert some.returncode == 0, some.stdout + some.stderr
    assert [h["name"] for h in json.loads(some.stdout)["hosts"]] == ["rho", "pi0"]
    pings = mesh_push("measure", "-i", str(mesh.path), "--limit", "pi0", "--count", "2", "--json")
    assert pings.returncode == 0, pings.stdout + pings.stderr
    measured = json.loads(pings.stdout)["links"]
    assert len(measured) == 1 and measured[0]["measured_ms"] is not None, measured


def test_rotate_keys(mesh: Mesh) -> None:
    old = lab_exec(LAB, "rho", "wg", "show", "wg0", "public-key").stdout.strip()
    res = mesh_push("rotate-keys", "-i", str(mesh.path), "rho", "--yes", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    new = lab_exec(LAB, "rho", "wg", "show", "wg0", "public-key").stdout.strip()
    assert new != old and len(new) == 44
    assert lab_exec(LAB, "rho", "ls", "/etc/wireguard").stdout.split() == ["mesh-push-lab.key"]
    for peer in ("bob", "epsilon", "vorke", "pi0"):
        peers = lab_exec(LAB, peer, "wg", "show", "wg0", "peers").stdout
        assert new in peers and old not in peers
    state = json.loads((mesh.path.parent / "mesh.state.json").read_text())
    assert state["public_keys"]["rho"] == new
    mesh.healthy_within(40)


def test_reboot_brings_the_mesh_back_by_itself(mesh: Mesh) -> None:
    res = mesh_push("lab", "reboot", "--name", LAB, "rho")
    assert res.returncode == 0, res.stderr
    assert lab_exec(LAB, "rho", "ip", "link", "show", "dev", "internet").returncode == 0
    took = mesh.healthy_within(60)
    print(f"healthy {took:.1f} s after the reboot finished")


def test_killed_apply_finishes_entirely(mesh: Mesh, tmp_path: Path) -> None:
    slow = (
        '{% if h.name == "epsilon" %}\nstep "slow"\ntouch /run/wireguard/started\n'
        "sleep 3\n{% endif %}\n"
    )
    templates = templates_with(tmp_path, slow)
    lab_exec(LAB, "epsilon", "rm", "-f", "/run/wireguard/started")
    proc = subprocess.Popen(
        cli_argv("up", "-i", str(mesh.path), "--yes", "--json", "--templates", str(templates)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while lab_exec(LAB, "epsilon", "test", "-e", "/run/wireguard/started").returncode != 0:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)  # the SSH connections die with it, mid-apply
    proc.wait()
    # The detached apply runs to its end holding the host lock: waited for, whatever the load.
    deadline = time.monotonic() + 120
    lock = "/var/lib/mesh-push/lab/lock"  # the mesh of inventory/lab.yaml is named lab
    while lab_exec(LAB, "epsilon", "flock", "-n", lock, "true").returncode != 0:
        assert time.monotonic() < deadline, "epsilon's apply never ended"
        time.sleep(0.2)
    # It ran to its end: the host has the new state, recorded as applied.
    res = mesh_push("up", "-i", str(mesh.path), "--yes", "--json", "--templates", str(templates))
    assert res.returncode == 0, res.stdout + res.stderr
    eps = next(h for h in json.loads(res.stdout)["hosts"] if h["name"] == "epsilon")
    assert eps["status"] == "unchanged"
    report = mesh.up()  # the built-in templates are applied again, and change nothing real
    eps = next(h for h in report["hosts"] if h["name"] == "epsilon")
    assert "apply" in eps["seconds"] and eps["changes"] == []
    mesh.healthy_within(40)
