"""Safe by construction (issue 14) against the lab's real sshds: `keys: controller` leaves no
copy of a private key in the files mesh-push keeps on a host (apply.sh, rollback.sh, logs), a
host key marked `@revoked` in known_hosts is refused while `@cert-authority` lines are
skipped, and a multi-hop `ProxyJump` goes through every hop. Needs root; under CI=true it
must run."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.engine import ssh
from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import HOSTS, lab_exec, lab_inventory, lab_up, mesh_push

LAB, NET = labs.lab("mpk")  # tests/labs.py: this module's own
LAB_DIR = Path("/run/mesh-push/lab") / LAB
# The key and state directory of inventory/lab.yaml's mesh (named lab) on each host.
KEY = "/etc/wireguard/mesh-push-lab.key"
STATE = "/var/lib/mesh-push/lab"

pytestmark = pytest.mark.lab


@dataclass
class Lab:
    inventory: Path
    keystore: Path
    tmp: Path

    def variant(
        self, name: str, ssh_section: str = "", replace: tuple[str, str] = ("", "")
    ) -> Path:
        """A copy of the inventory, with an `ssh:` section and one text replaced."""
        text = self.inventory.read_text().replace(*replace)
        path = self.tmp / name
        path.write_text(ssh_section + text)
        return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_root()
    tmp = tmp_path_factory.mktemp("keys")
    inv = lab_inventory(tmp / "lab.yaml", LAB, NET)
    keystore = tmp / "keystore"
    text = inv.read_text().replace(
        "  keys: host\n", f"  keys: controller\n  keystore: {keystore}\n"
    )
    assert "keys: controller" in text
    inv.write_text(text)
    with lab_up(LAB, inv):
        yield Lab(inv, keystore, tmp)


def test_controller_keys_never_lie_in_stored_files(lab: Lab) -> None:
    first = mesh_push("up", "-i", str(lab.inventory), "--yes", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    private = {h: (lab.keystore / f"{h}.key").read_text().strip() for h in HOSTS}
    for host, key in private.items():
        got = lab_exec(LAB, host, "sh", "-c", f"stat -c %a {KEY}; cat {KEY}")
        assert got.stdout.split() == ["600", key], host
    # A second, armed apply: the previous script is kept as rollback.sh.
    changed = lab.variant("changed.yaml", replace=("ageing: 2", "ageing: 3"))
    second = mesh_push(
        "up", "-i", str(changed), "--yes", "--json", "--confirm-timeout", "60", "--no-verify"
    )
    assert second.returncode == 0, second.stdout + second.stderr
    for run in (first, second):
        assert not any(key in run.stdout + run.stderr for key in private.values())
    for host in HOSTS:
        files = lab_exec(LAB, host, "sh", "-c", f"ls {STATE}").stdout.split()
        assert {"apply.sh", "rollback.sh", "armed.sh", "apply.log"} <= set(files), files
        for key in private.values():
            found = lab_exec(LAB, host, "grep", "-rlF", "--", key, STATE, "/etc/systemd/system")
            assert found.returncode == 1 and found.stdout == "", (host, found.stdout)
        # The script names its own public key instead (a new key is a new script; `--check`
        # compares the key in place with it).
        pub = (lab.keystore / f"{host}.pub").read_text().strip()
        assert lab_exec(LAB, host, "grep", "-cF", pub, f"{STATE}/apply.sh").stdout.strip() == "2"


def _status(inv: Path) -> tuple[int, dict[str, dict[str, object]], str]:
    res = mesh_push("status", "-i", str(inv), "--json")
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, {h["name"]: h for h in json.loads(res.stdout)["hosts"]}, res.stderr


def test_revoked_host_key_is_refused_cert_authority_skipped(lab: Lab) -> None:
    known = (LAB_DIR / "known_hosts").read_text()
    bob_key = next(" ".join(ln.split()[1:3]) for ln in known.splitlines() if ln.startswith("bob,"))
    other = next(" ".join(ln.split()[1:3]) for ln in known.splitlines() if ln.startswith("rho,"))
    copy = lab.tmp / "known_hosts"
    copy.write_text(f"@cert-authority *.example.net {other}\n{known}@revoked * {bob_key}\n")
    inv = lab.variant("revoked.yaml", f"ssh:\n  known_hosts: {copy}\n")
    code, hosts, _ = _status(inv)
    assert code == 1
    assert hosts["bob"]["reachable"] is False
    assert "marks @revoked" in " ".join(hosts["bob"]["reasons"])  # type: ignore[arg-type]
    assert all(hosts[h]["reachable"] for h in HOSTS if h != "bob"), hosts
    # With only the @cert-authority line added, every host is reached as before.
    copy.write_text(f"@cert-authority *.example.net {other}\n{known}")
    _, hosts, _ = _status(inv)
    assert all(h["reachable"] for h in hosts.values()), hosts


def _accepted(host: str) -> int:
    log = (LAB_DIR / "nodes" / host / "sshd.log").read_text(errors="replace")
    return len(re.findall(r"Accepted publickey", log))


def test_multi_hop_proxyjump_goes_through_every_hop(lab: Lab) -> None:
    config = (LAB_DIR / "ssh_config").read_text()
    assert "ProxyJump pi0.router" in config
    copy = lab.tmp / "ssh_config"
    copy.write_text(config.replace("ProxyJump pi0.router", "ProxyJump bob,pi0.router"))
    mesh = inventory.load(lab.variant("multihop.yaml", f"ssh:\n  config: {copy}\n"))
    target = ssh.resolve(mesh, mesh.host("pi0"))
    assert target.jump is not None and target.jump.alias == "pi0.router"
    assert target.jump.jump is not None and target.jump.jump.alias == "bob"
    before = {h: _accepted(h) for h in ("bob", "pi0.router")}
    remote = ssh.connect(mesh, target)
    try:
        assert ssh.run(remote, "hostname").stdout.strip() == "pi0"
    finally:
        ssh.close(remote)
    assert {h: _accepted(h) - n for h, n in before.items()} == {"bob": 1, "pi0.router": 1}
    # Through the command line too: status reaches pi0 that way.
    _, hosts, _ = _status(lab.variant("multihop.yaml", f"ssh:\n  config: {copy}\n"))
    assert hosts["pi0"]["reachable"] is True, hosts["pi0"]
