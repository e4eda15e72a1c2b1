"""Lab hosts that let you in like a cloud image: a non-root login user with sudo, root refused.

Each such host sees private copies of /etc/passwd, /etc/group, /etc/shadow and /etc/sudoers
(bind-mounted by its keeper), so the user exists only inside the lab and the machine's own
accounts and sudo rules are never touched.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from mesh_push.core.model import LabLogin
from mesh_push.lab.errors import EXIT_FAILED, LabError

USER = "debian"  # as on Debian's cloud images
PASSWORD_FILE = "become_password"
FIRST_UID = 1000
SUDO_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def free_id(taken_text: str, first: int = FIRST_UID) -> int:
    """The lowest id from `first` up that no line of a passwd or group file uses."""
    taken = set()
    for line in taken_text.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            taken.add(int(fields[2]))
    n = first
    while n in taken:
        n += 1
    return n


def passwd(machine: str, uid: int) -> str:
    own = [ln for ln in machine.splitlines() if ln and not ln.startswith(f"{USER}:")]
    return "\n".join([*own, f"{USER}:x:{uid}:{uid}:lab sudo user:/home/{USER}:/bin/sh"]) + "\n"


def group(machine: str, gid: int) -> str:
    own = [ln for ln in machine.splitlines() if ln and not ln.startswith(f"{USER}:")]
    return "\n".join([*own, f"{USER}:x:{gid}:"]) + "\n"


def shadow(passwd_text: str, password_hash: str | None) -> str:
    """Every account locked for passwords ('*': sshd still takes keys, unlike '!'); the lab
    user has a password only where sudo asks for one."""
    lines = []
    for line in passwd_text.splitlines():
        name = line.split(":", 1)[0]
        secret = password_hash if name == USER and password_hash else "*"
        lines.append(f"{name}:{secret}:19000:0:99999:7:::")
    return "\n".join(lines) + "\n"


def sudoers(login: LabLogin) -> str:
    # The narrowest rule mesh-push works with (docs/hosts.md), so the lab proves it works.
    shells = "/usr/bin/sh, /bin/sh"
    rule = shells if login == "sudo-password" else f"NOPASSWD: {shells}"
    return "\n".join(
        [
            "# The lab's sudoers, written by `mesh-push lab up`.",
            "Defaults env_reset",
            f'Defaults secure_path="{SUDO_PATH}"',
            # Ask every time: mesh-push must send the password on every command, as it would
            # to a host where the cached credentials have expired.
            "Defaults timestamp_timeout=0",
            "root ALL=(ALL:ALL) ALL",
            f"{USER} ALL=(root) {rule}",
            "",
        ]
    )


def hash_password(password: str) -> str:
    try:
        done = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        why = f"could not hash the lab's sudo password with openssl: {e}"
        raise LabError(why, EXIT_FAILED) from None
    return done.stdout.strip()


def write_files(login: LabLogin, lab: Path, node_dirs: list[Path]) -> None:
    """The private /etc files of every node (nothing for `login: root`), and for
    `sudo-password` the password, 0600 in the lab's directory."""
    if login == "root":
        return
    machine_passwd = Path("/etc/passwd").read_text()
    machine_group = Path("/etc/group").read_text()
    uid = free_id(machine_passwd)
    gid = free_id(machine_group, uid)
    password_hash = None
    if login == "sudo-password":
        password = secrets.token_urlsafe(18)
        _write(lab / PASSWORD_FILE, password + "\n", 0o600)
        password_hash = hash_password(password)
    texts = {
        "passwd": (passwd(machine_passwd, uid), 0o644),
        "group": (group(machine_group, gid), 0o644),
        "shadow": (shadow(passwd(machine_passwd, uid), password_hash), 0o640),
        "sudoers": (sudoers(login), 0o440),
    }
    for ndir in node_dirs:
        etc = ndir / "etc"
        etc.mkdir(mode=0o755, exist_ok=True)
        for name, (text, mode) in texts.items():
            _write(etc / name, text, mode)
        _write(ndir / "login", f"{USER} {uid} {gid}\n", 0o644)


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
