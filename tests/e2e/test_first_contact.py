"""First contact as a new user makes it: no ssh_config, no `ssh:` section, a key in ~/.ssh or
only in an ssh-agent (passphrase-protected too), against the lab's real sshd. HOME is a
temporary directory, so the machine's own ~/.ssh plays no part. Needs root; runs under CI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import ROOT, cli_argv, lab_inventory, lab_up

LAB, NET = labs.lab("mpfc")  # tests/labs.py: this module's own
LAB_DIR = Path("/run/mesh-push/lab") / LAB
STATIC = {"bob": 11, "rho": 12, "epsilon": 14}

# What a user writes for three VPSes: endpoints, links, nothing about SSH. (`boot: systemd`:
# a namespace lab host runs no init, and this inventory has no `lab:` that would say so.)
USER_INVENTORY = f"""
mesh:
  name: firstcontact
  boot: systemd
  wireguard: {{port: 56560}}
  stp: {{hello: 1, forward_delay: 4, max_age: 6, ageing: 2}}
hosts:
  bob: {{endpoint: static, address: {NET}.11}}
  rho: {{endpoint: static, address: {NET}.12}}
  epsilon: {{endpoint: static, address: {NET}.14}}
links:
  - [bob, rho]
  - [rho, epsilon]
  - [epsilon, bob]
"""


@dataclass
class User:
    home: Path
    inventory: Path
    agent_sock: str | None = None

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        env.update(HOME=str(self.home), NO_COLOR="1")
        if self.agent_sock:
            env["SSH_AUTH_SOCK"] = self.agent_sock
        return subprocess.run(
            cli_argv(*args, "-i", str(self.inventory)),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=300,
        )

    def status(self) -> tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]:
        res = self.run("status", "--json")
        assert "Traceback" not in res.stderr, res.stderr
        return res, {h["name"]: h["reasons"] for h in json.loads(res.stdout)["hosts"]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    inv = lab_inventory(tmp_path_factory.mktemp("fc") / "lab.yaml", LAB, NET)
    with lab_up(LAB, inv):
        yield inv


def authorize(pub: Path) -> None:
    """The user's key, as a cloud provider would have put it on each VPS."""
    for host in STATIC:
        with (LAB_DIR / "nodes" / host / "authorized_keys").open("a") as f:
            f.write(pub.read_text())


def new_user(tmp: Path) -> User:
    home = tmp / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    # The host keys, as the user has them after a first `ssh` to each VPS.
    shutil.copy(LAB_DIR / "known_hosts", home / ".ssh" / "known_hosts")
    inv = tmp / "mesh.yaml"
    inv.write_text(USER_INVENTORY)
    return User(home, inv)


def keygen(path: Path, passphrase: str = "") -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "user", "-f", str(path)],
        check=True,
    )


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An ssh-agent of the test's own, stopped by its pid."""
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        yield sock, tmp_path
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def ssh_add(sock: str, key: Path, passphrase: str = "") -> None:
    askpass = key.parent / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
    askpass.chmod(0o700)
    env = {
        **os.environ,
        "SSH_AUTH_SOCK": sock,
        "SSH_ASKPASS": str(askpass),
        "SSH_ASKPASS_REQUIRE": "force",
        "DISPLAY": ":0",
    }
    subprocess.run(
        ["ssh-add", "-q", str(key)], env=env, check=True, stdin=subprocess.DEVNULL, timeout=30
    )


def test_key_in_dot_ssh_no_ssh_config_up_and_status(lab: Path, tmp_path: Path) -> None:
    user = new_user(tmp_path)
    key = user.home / ".ssh" / "id_ed25519"
    keygen(key)
    authorize(key.with_suffix(".pub"))
    up = user.run("up", "--yes")
    assert "Traceback" not in up.stderr, up.stderr
    assert up.returncode == 0, up.stdout + up.stderr
    # The endpoint addresses were dialled, not the names through DNS.
    known = (user.home / ".ssh" / "known_hosts").read_text()
    assert all(f"{NET}.{n}" in known for n in STATIC.values())
    res, reasons = user.status()
    assert res.returncode == 0, reasons
    down = user.run("down", "--yes")
    assert down.returncode == 0, down.stdout + down.stderr


def test_key_only_in_the_agent(lab: Path, agent: tuple[str, Path]) -> None:
    sock, tmp = agent
    user = new_user(tmp)
    key = tmp / "agent_only"
    keygen(key)
    authorize(key.with_suffix(".pub"))
    ssh_add(sock, key)
    key.unlink()  # the agent is the only place the key is now
    user.agent_sock = sock
    _, reasons = user.status()
    assert not any(r.startswith("unreachable") for rs in reasons.values() for r in rs), reasons


@pytest.mark.parametrize("identities_only", [False, True], ids=["agent", "identities-only"])
def test_identity_file_plus_agent_with_passphrase(
    lab: Path, agent: tuple[str, Path], identities_only: bool
) -> None:
    sock, tmp = agent
    user = new_user(tmp)
    key = tmp / "locked"
    keygen(key, passphrase="correct horse")
    authorize(key.with_suffix(".pub"))
    ssh_add(sock, key, "correct horse")
    only = "  IdentitiesOnly yes\n" if identities_only else ""
    (user.home / ".ssh" / "config").write_text(f"Host *\n  IdentityFile {key}\n{only}")
    user.agent_sock = sock
    _, reasons = user.status()
    assert not any(r.startswith("unreachable") for rs in reasons.values() for r in rs), reasons


def test_no_usable_key_says_so_and_claims_nothing(lab: Path, tmp_path: Path) -> None:
    user = new_user(tmp_path)
    keygen(user.home / ".ssh" / "id_ed25519")  # never authorized
    res = user.run("up", "--yes", "--json")
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert report["verify"]["ok"] is False
    assert sorted(report["verify"]["not_verified"]) == sorted(STATIC)
    for host in report["hosts"]:
        assert host["status"] == "unreachable", host
        assert "refused us" in host["message"] and "id_ed25519" in host["message"], host
    text = user.run("up", "--yes")
    assert "verified in" not in text.stdout
    assert "no host could be verified" in text.stdout
    _, reasons = user.status()
    assert all("refused us" in rs[0] for rs in reasons.values()), reasons
