"""Hosts at home (issue 35, docs/hosts.md#home): the three ways a controller away from home
reaches a host behind NAT, each on the lab, whose pi0 sits behind a NAT router of its own.
Needs root; under CI=true it must run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import lab_exec, lab_inventory, lab_up, mesh_push

LAB, NET = labs.lab("mph")  # tests/labs.py: this module's own
LAB_DIR = Path("/run/mesh-push/lab") / LAB
PI0 = '  pi0:     {number: 5, location: "Roaming", endpoint: nat}\n'
TUNNEL_PORT = 2222


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    inv = lab_inventory(tmp_path_factory.mktemp("home") / "mesh.yaml", LAB, NET)
    with lab_up(LAB, inv):
        mesh_push("up", "-i", str(inv), "--yes", "--json", check=True)
        yield inv


def reached_as(inv: Path, name: str, ssh: str) -> Path:
    """The inventory with pi0 reached as `ssh` says (an inline `ssh:` mapping)."""
    text = inv.read_text()
    assert PI0 in text
    other = inv.with_name(name)
    other.write_text(text.replace(PI0, PI0.replace("nat}", f"nat, ssh: {ssh}}}")))
    # The same mesh: its state file (the hosts' public keys) goes with it.
    shutil.copy(inv.with_suffix(".state.json"), other.with_suffix(".state.json"))
    return other


def healthy_through(inv: Path) -> None:
    """status reaches pi0 that way (recording its key under the address dialled, as OpenSSH
    would), and a no-op `up` goes through it too."""
    status = mesh_push("status", "-i", str(inv), "--json", "--accept-new")
    assert status.returncode == 0, status.stdout + status.stderr
    up = mesh_push("up", "-i", str(inv), "--yes", "--json")
    assert up.returncode == 0, up.stdout + up.stderr
    pi0 = next(h for h in json.loads(up.stdout)["hosts"] if h["name"] == "pi0")
    assert pi0["status"] == "unchanged", pi0


def test_a_jump_host_at_home(mesh: Path) -> None:
    """The lab's own way: its ssh_config names pi0's NAT router as the ProxyJump."""
    config = (LAB_DIR / "ssh_config").read_text()
    block = config.split("Host pi0\n")[1].split("\nHost ")[0]
    assert "ProxyJump pi0.router" in block
    healthy_through(mesh)


def test_through_the_mesh_once_it_is_up(mesh: Path) -> None:
    healthy_through(reached_as(mesh, "through-mesh.yaml", "{address: 10.99.99.5, via: rho}"))
    assert "10.99.99.5 " in (LAB_DIR / "known_hosts").read_text()


def test_a_reverse_tunnel_from_the_pi(mesh: Path) -> None:
    """pi0 keeps `ssh -N -R` open to rho; the controller goes to rho's loopback port."""
    nodes = json.loads(mesh_push("lab", "status", "--name", LAB, "--json", check=True).stdout)
    address = {n["alias"]: n["address"].split("/")[0] for n in nodes[0]["nodes"]}
    key, known = LAB_DIR / "id_ed25519", LAB_DIR / "known_hosts"
    log = mesh.parent / "tunnel.log"
    started = lab_exec(LAB, "pi0", "sh", "-c",
        f"setsid ssh -F none -i {key} -o UserKnownHostsFile={known} -o BatchMode=yes "
        "-o StrictHostKeyChecking=yes -o ExitOnForwardFailure=yes -o ServerAliveInterval=5 "
        f"-N -R 127.0.0.1:{TUNNEL_PORT}:{address['pi0']}:22 root@{address['rho']} "
        f"</dev/null >{log} 2>&1 & echo $!")  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split()[-1])
    try:
        deadline = time.monotonic() + 30
        while (
            f"127.0.0.1:{TUNNEL_PORT} "
            not in (listening := lab_exec(LAB, "rho", "ss", "-ltn")).stdout
        ):
            assert time.monotonic() < deadline, (
                f"the reverse tunnel never listened on rho: {log.read_text(errors='replace')}"
                f"{listening.stdout}{listening.stderr}"
            )
            time.sleep(0.2)
        way = f"{{address: 127.0.0.1, port: {TUNNEL_PORT}, via: rho}}"
        healthy_through(reached_as(mesh, "reverse-tunnel.yaml", way))
        assert f"[127.0.0.1]:{TUNNEL_PORT} " in known.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
