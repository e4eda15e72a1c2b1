"""Keys, one real OpenSSH sshd per node, and the controller's ssh_config / known_hosts."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from mesh_push.core.model import LabLogin
from mesh_push.lab import users
from mesh_push.lab.addresses import SSH_PORT, LabPlan, Node
from mesh_push.lab.errors import EXIT_FAILED, LabError
from mesh_push.lab.netns import at_host_priority, enter
from mesh_push.lab.system import pid_alive, read_pid, run_all

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
CLIENT_KEY = "id_ed25519"
HOST_KEY = "ssh_host_ed25519_key"


def sshd_path() -> str:
    # sshd re-executes itself and insists on an absolute path.
    for path in SSHD_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("sshd")
    if found:
        return found
    raise LabError("sshd is not installed: apt-get install openssh-server")


def keygen_jobs(lab: Path, node_dirs: Mapping[str, Path]) -> list[tuple[Sequence[str], None]]:
    """ed25519 everywhere: an RSA host key costs a noticeable part of a second each."""
    jobs: list[tuple[Sequence[str], None]] = []
    targets = [(lab / CLIENT_KEY, "mesh-push-lab-controller")]
    targets += [(d / HOST_KEY, alias) for alias, d in node_dirs.items()]
    for path, comment in targets:
        path.unlink(missing_ok=True)
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
        jobs.append((argv, None))
    return jobs


def login_user(login: LabLogin) -> str:
    return "root" if login == "root" else users.USER


def sshd_config(node: Node, ndir: Path, login: LabLogin = "root") -> str:
    if login == "root":
        access = [
            f"AuthorizedKeysFile {ndir / 'authorized_keys'}",
            "PermitRootLogin prohibit-password",
        ]
    else:
        # As on cloud images: only the sudo user, with the keys in its home.
        access = [
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PermitRootLogin no",
            f"AllowUsers {users.USER}",
        ]
    return "\n".join(
        [
            f"# sshd of lab node {node.alias}, written by mesh-push lab up",
            # Every address of its own namespace, as a real host's sshd (Debian's default):
            # once the mesh is up its bridge address reaches it too (docs/hosts.md#home).
            f"ListenAddress 0.0.0.0:{SSH_PORT}",
            f"HostKey {ndir / HOST_KEY}",
            f"PidFile {ndir / 'sshd.pid'}",
            *access,
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            # The lab's files live under /run, owned by root but not checked for sshd's taste.
            "StrictModes no",
            # The routers are bastions: ProxyJump needs TCP forwarding.
            "AllowTcpForwarding yes",
            "X11Forwarding no",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            # mesh-push pushes to many hosts at once, several through one bastion.
            "MaxStartups 100:30:200",
            "MaxSessions 64",
            "AcceptEnv LANG LC_*",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def write_node_files(node: Node, ndir: Path, lab: Path, login: LabLogin = "root") -> None:
    pub = (lab / f"{CLIENT_KEY}.pub").read_text()
    (ndir / "authorized_keys").write_text(pub)
    (ndir / "sshd_config").write_text(sshd_config(node, ndir, login))


def start(keepers: Mapping[str, int], node_dirs: Mapping[str, Path], timeout: float = 20) -> None:
    """Start every node's sshd at once; each daemonizes and writes its pid file once it
    listens."""
    sshd = sshd_path()
    jobs: list[tuple[Sequence[str], str | None]] = []
    for alias, pid in keepers.items():
        ndir = node_dirs[alias]
        (ndir / "sshd.pid").unlink(missing_ok=True)
        argv = [sshd, "-f", str(ndir / "sshd_config"), "-E", str(ndir / "sshd.log")]
        jobs.append((enter(pid, argv), None))
    run_all(jobs)
    deadline = time.monotonic() + timeout
    waiting = dict(node_dirs)
    while waiting:
        for alias, ndir in list(waiting.items()):
            daemon = read_pid(ndir / "sshd.pid")
            if daemon and pid_alive(daemon):
                at_host_priority(daemon)  # before `lab up` returns: every session inherits it
                del waiting[alias]
        if waiting:
            if time.monotonic() > deadline:
                logs = {a: tail(d / "sshd.log") for a, d in waiting.items()}
                raise LabError(f"sshd did not start on {', '.join(waiting)}: {logs}", EXIT_FAILED)
            time.sleep(0.005)


def tail(path: Path, lines: int = 3) -> str:
    try:
        return " / ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def host_key(ndir: Path) -> str:
    kind, key = (ndir / f"{HOST_KEY}.pub").read_text().split()[:2]
    return f"{kind} {key}"


def ssh_config(plan: LabPlan, lab: Path) -> str:
    out = [f"# The hosts of lab {plan.name}, written by `mesh-push lab up`.", ""]
    for n in plan.nodes:
        out += [
            f"Host {n.alias}",
            f"    HostName {n.address}",
            f"    User {login_user(plan.login)}",
            f"    Port {SSH_PORT}",
            f"    IdentityFile {lab / CLIENT_KEY}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {lab / 'known_hosts'}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
            "    UpdateHostKeys no",
            "    BatchMode yes",
            "    ConnectTimeout 10",
        ]
        if n.jump:
            out.append(f"    ProxyJump {n.jump}")
        out.append("")
    return "\n".join(out)


def known_hosts(plan: LabPlan, node_dirs: Mapping[str, Path]) -> str:
    # Alias for paramiko lookups by name, address for OpenSSH (which checks the HostName).
    return "".join(f"{n.alias},{n.address} {host_key(node_dirs[n.alias])}\n" for n in plan.nodes)


def write_client_files(plan: LabPlan, lab: Path, node_dirs: Mapping[str, Path]) -> None:
    for name, text in (
        ("known_hosts", known_hosts(plan, node_dirs)),
        ("ssh_config", ssh_config(plan, lab)),
    ):
        tmp = lab / f".{name}.tmp"
        tmp.write_text(text)
        tmp.chmod(0o644)
        os.replace(tmp, lab / name)
