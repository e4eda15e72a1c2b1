"""Hosts like cloud images: the only login is the sudo user `debian`, root may not log in.
`up`, `status`, `rotate-keys` and `down` work through sudo without a password and with one;
sudo's refusals are clear and push nothing; the password is never on a command line; what the
scripts write stays root's, 0600 in 0700. Needs root; runs under CI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import ROOT, cli_argv, lab_exec, lab_up, sample_cmdlines

HOSTS = ["bob", "rho", "pi0"]


def inventory(path: Path, lab: str, net: str, login: str) -> Path:
    path.write_text(f"""
mesh:
  name: {lab}
  wireguard: {{port: 56560}}
  stp: {{hello: 1, forward_delay: 4, max_age: 6, ageing: 2}}
lab: {{name: {lab}, network: {net}.0/23, login: {login}}}
hosts:
  bob: {{endpoint: static, address: {net}.11}}
  rho: {{endpoint: static, address: {net}.12}}
  pi0: {{endpoint: nat}}
links:
  - [bob, rho]
  - [rho, pi0]
  - [pi0, bob]
""")
    return path


@dataclass
class Lab:
    name: str
    inventory: Path
    password_file: Path | None = None

    def run(self, *args: str, password: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "NO_COLOR": "1"}
        env.pop("MESH_PUSH_BECOME_PASSWORD", None)
        env.pop("MESH_PUSH_BECOME_PASSWORD_FILE", None)
        if password is not None:
            env["MESH_PUSH_BECOME_PASSWORD_FILE"] = str(password)
        res = subprocess.run(
            cli_argv(*args, "-i", str(self.inventory)),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=300,
        )
        assert "Traceback" not in res.stderr, res.stderr
        return res

    def ok(self, *args: str) -> dict[str, object]:
        res = self.run(*args, "--json", password=self.password_file)
        assert res.returncode == 0, res.stdout + res.stderr
        data: dict[str, object] = json.loads(res.stdout)
        return data


@contextlib.contextmanager
def cloud_lab(tmp: Path, name: str, net: str, login: str) -> Iterator[Lab]:
    require_root()
    inv = inventory(tmp / "lab.yaml", name, net, login)
    with lab_up(name, inv):
        pw = Path("/run/mesh-push/lab") / name / "become_password"
        yield Lab(name, inv, pw if login == "sudo-password" else None)


def root_login_refused(lab: Lab) -> None:
    cfg = Path("/run/mesh-push/lab") / lab.name / "ssh_config"
    as_root = subprocess.run(
        ["ssh", "-F", str(cfg), "-l", "root", "bob", "id"], capture_output=True, text=True
    )
    assert as_root.returncode != 0 and "Permission denied" in as_root.stderr
    as_user = subprocess.run(
        ["ssh", "-F", str(cfg), "bob", "id -un"], capture_output=True, text=True
    )
    assert as_user.stdout.strip() == "debian", as_user.stderr


def files_stay_roots(lab: Lab) -> None:
    for host in HOSTS:
        state = f"/var/lib/mesh-push/{lab.name}"  # the mesh is named after its lab
        dirs = ("/etc/wireguard", "/var/lib/mesh-push", state)
        out = lab_exec(
            lab.name, host, "stat", "-c", "%U %a %n", *dirs,
            f"/etc/wireguard/mesh-push-{lab.name}.key", f"{state}/apply.sh",
            f"{state}/applied.sha256",
        ).stdout.split("\n")  # fmt: skip
        modes = {line.split()[2]: line.split()[:2] for line in out if line}
        assert len(modes) == 6, out
        for path, (owner, mode) in modes.items():
            want = "700" if path in dirs else "600"
            assert (owner, mode) == ("root", want), (host, path, owner, mode)


def whole_life(lab: Lab) -> None:
    """up, status, rotate-keys one host, status, down: all through sudo."""
    up = lab.ok("up", "--yes")
    assert up["ok"] and up["verify"]["ok"]  # type: ignore[index]
    files_stay_roots(lab)
    assert lab.ok("status")["healthy"]
    # The inventory names no interface: the defaults, mpwg and mpbr.
    before = lab_exec(lab.name, "bob", "wg", "show", "mpwg", "public-key").stdout
    assert len(before.strip()) == 44, before
    rotated = lab.ok("rotate-keys", "bob", "--yes")
    assert rotated["ok"]
    assert lab_exec(lab.name, "bob", "wg", "show", "mpwg", "public-key").stdout != before
    assert lab.ok("status")["healthy"]
    down = lab.ok("down", "--yes")
    assert down["ok"]
    for host in HOSTS:
        links = lab_exec(lab.name, host, "ip", "-br", "link").stdout
        assert "mpwg" not in links and "mpbr" not in links, links


def test_passwordless_sudo(tmp_path: Path) -> None:
    with cloud_lab(tmp_path, *labs.lab("mpsu"), "sudo") as lab:
        root_login_refused(lab)
        whole_life(lab)


def test_sudo_with_a_password(tmp_path: Path) -> None:
    with cloud_lab(tmp_path, *labs.lab("mpsp"), "sudo-password") as lab:
        assert lab.password_file is not None
        password = lab.password_file.read_text().strip()
        root_login_refused(lab)

        # No password given: every host says what to do, and nothing reaches any host.
        res = lab.run("up", "--yes", "--json")
        assert res.returncode == 1
        for host in json.loads(res.stdout)["hosts"]:
            assert host["step"] == "sudo" and "wants a password" in host["message"], host
            assert "--ask-become-pass" in host["message"]
        # A wrong one: refused, said so, still nothing pushed.
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-password\n")
        res = lab.run("up", "--yes", "--json", password=wrong)
        assert res.returncode == 1
        assert all("refused the password" in h["message"] for h in json.loads(res.stdout)["hosts"])
        for host in HOSTS:
            assert lab_exec(lab.name, host, "ls", "-A", "/var/lib/mesh-push").stdout == ""

        seen: set[str] = set()
        stop = threading.Event()
        sampler = threading.Thread(target=sample_cmdlines, args=(stop, seen))
        sampler.start()
        try:
            whole_life(lab)
        finally:
            stop.set()
            sampler.join()
        assert seen and not [c for c in seen if password in c]
        # sudo asked every time (timestamp_timeout=0): the password did the work.
        assert "sudo" in " ".join(seen)
