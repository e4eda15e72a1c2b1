"""Fixtures for tests that need a real lab (root). Other test modules can use `lab_factory`:

    def test_something(lab_factory):
        lab = lab_factory()                      # inventory/lab.yaml, renamed, free network
        lab.exec("bob", "ip", "-br", "addr")     # CompletedProcess
        lab.ssh_config, lab.known_hosts, lab.inventory, lab.cut("bob", "rho"), ...

Without root the lab tests are skipped, except under CI=true where they fail: a CI run that
silently skips the lab proves nothing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import labs, zygote
from tests.conftest import require_root

REPO = Path(__file__).resolve().parents[2]
LAB_YAML = REPO / "inventory" / "lab.yaml"


@pytest.fixture
def root() -> None:
    require_root()


def mesh_push(
    *args: str, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    res = zygote.run(args, cwd=REPO, env=os.environ, timeout=timeout)
    if check:
        res.check_returncode()
    return res


def ip_json(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def lab_inventory(
    dest: Path, name: str, network: ipaddress.IPv4Network, source: Path = LAB_YAML
) -> Path:
    """A copy of an inventory as lab `name` on `network`: static addresses keep their host
    offset inside the wan."""
    data = yaml.safe_load(source.read_text())
    old = ipaddress.IPv4Network(data.get("lab", {}).get("network", "198.18.0.0/23"))
    old_wan = next(old.subnets(prefixlen_diff=1))
    new_wan = next(network.subnets(prefixlen_diff=1))
    data["lab"] = {"name": name, "network": str(network)}
    for host in data["hosts"].values():
        if host.get("address"):
            offset = int(ipaddress.IPv4Address(host["address"])) - int(old_wan.network_address)
            host["address"] = str(new_wan.network_address + offset)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


@dataclass
class Lab:
    name: str
    dir: Path
    inventory: Path

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = mesh_push("lab", *args, timeout=180)
        if check and done.returncode != 0:
            raise AssertionError(
                f"mesh-push lab {' '.join(args)}: {done.returncode}\n{done.stderr}"
            )
        return done

    def exec(self, host: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        from mesh_push.lab import ops

        return ops.exec_run(self.name, host, cmd, timeout=timeout)

    def ssh(self, host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), host, *cmd],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def up(self) -> None:
        self.cli("up", "-i", str(self.inventory))

    def down(self) -> None:
        self.cli("down", "--name", self.name)

    def cut(self, a: str, b: str) -> None:
        self.cli("cut", "--name", self.name, a, b)

    def heal(self, a: str, b: str) -> None:
        self.cli("heal", "--name", self.name, a, b)

    def reboot(self, host: str) -> subprocess.CompletedProcess[str]:
        return self.cli("reboot", "--name", self.name, host)

    def namespaces(self) -> list[str]:
        return [
            n["name"] for n in ip_json("netns", "list") if n["name"].startswith(self.name + "-")
        ]


def new_lab(tmp: Path, source: Path = LAB_YAML) -> Lab:
    from mesh_push.inventory.schema import lab_dir

    name, network = labs.claim_network()  # 198.19.0.0/16, never another run's or worker's
    inv = lab_inventory(tmp / f"{name}.yaml", name, network, source)
    return Lab(name, lab_dir(name), inv)


@pytest.fixture(scope="session")
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Lab]]:
    """lab_factory(inventory=inventory/lab.yaml) -> an up Lab, one per inventory per session,
    always taken down at the end."""
    require_root()
    labs: dict[Path, Lab] = {}
    tmp = tmp_path_factory.mktemp("labs")

    def factory(inventory: Path = LAB_YAML) -> Lab:
        key = Path(inventory).resolve()
        if key not in labs:
            lab = new_lab(tmp, key)
            labs[key] = lab  # recorded before `up`, so a failing up is cleaned too
            lab.up()
        return labs[key]

    try:
        yield factory
    finally:
        for lab in labs.values():
            mesh_push("lab", "down", "--name", lab.name)
