"""SSH to the hosts with Fabric, host keys checked strictly.

Fabric's own default accepts any host key (paramiko AutoAddPolicy) and loads no known_hosts;
here known_hosts is always loaded and unknown keys are refused unless the user asked for trust
on first use. Jump hosts are built here too, so that they get the same policy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paramiko
from fabric import Config, Connection

from .model import Host, Mesh

_known_hosts_lock = threading.Lock()
# paramiko logs a dropped socket at ERROR; we report it ourselves, once, in our own words.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
# OpenSSH's default identities, in its order, where no identity is named anywhere. paramiko
# reads RSA, ECDSA and Ed25519 keys; the -sk, XMSS and DSA kinds are left to the agent.
DEFAULT_IDENTITIES = ("id_rsa", "id_ecdsa", "id_ed25519")
# sudo's own complaints (LC_ALL=C), each with what to tell the user.
SUDO_NEEDS_PASSWORD = "a password is required"
SUDO_WRONG_PASSWORD = ("incorrect password attempt", "Sorry, try again")
SUDO_REFUSED = ("is not in the sudoers file", "may not run sudo", "is not allowed to execute")


def ssh_dir() -> Path:
    # Read when used, not at import: HOME decides, as it does for OpenSSH.
    return Path("~/.ssh").expanduser()


class SshError(Exception):
    """A host could not be reached or refused us; the message says what to do."""


class BecomeError(SshError):
    """We are logged in, but sudo would not make us root."""


@dataclass(frozen=True)
class Target:
    alias: str  # what the user calls it: the inventory name, or a ssh_config alias
    hostname: str
    port: int
    user: str
    identity: tuple[str, ...]
    jump: Target | None
    # Run host-side commands through sudo (the login user is not root, or the inventory says).
    sudo: bool = False
    # ssh_config IdentitiesOnly: the agent may offer only the keys named here.
    identities_only: bool = False

    def describe(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


@dataclass
class Remote:
    """An open connection to a host, and how to become root on it."""

    conn: Connection
    target: Target
    become_password: str | None = None

    @property
    def host(self) -> str:
        return self.target.alias


class AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Trust on first use, as OpenSSH's StrictHostKeyChecking=accept-new: a new key is added to
    known_hosts; a changed key still fails (paramiko raises BadHostKeyException before this)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        with _known_hosts_lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def load_config(mesh: Mesh) -> paramiko.SSHConfig:
    path = mesh.ssh.config or ssh_dir() / "config"
    if path.exists():
        return paramiko.SSHConfig.from_path(str(path))
    return paramiko.SSHConfig()


def known_hosts_file(mesh: Mesh) -> Path:
    return mesh.ssh.known_hosts or ssh_dir() / "known_hosts"


def resolve(mesh: Mesh, host: Host, cfg: paramiko.SSHConfig | None = None) -> Target:
    """Inventory first, then ssh_config, then the mesh-wide defaults."""
    cfg = cfg or load_config(mesh)
    return _resolve_alias(mesh, host.name, host, cfg, depth=0)


def _resolve_alias(
    mesh: Mesh, alias: str, host: Host | None, cfg: paramiko.SSHConfig, depth: int
) -> Target:
    if depth > 8:
        raise SshError(f"{alias}: jump hosts nest too deep")
    c: dict[str, Any] = dict(cfg.lookup(alias))
    ssh = host.ssh if host else None
    # paramiko fills in HostName with the alias itself when ssh_config sets none: that is
    # not a HostName given, and the endpoint address comes before DNS for the bare name.
    configured = c.get("hostname") if c.get("hostname") != alias else None
    hostname = (
        (ssh.address if ssh else None)
        or configured
        or (str(host.address) if host and host.address else alias)
    )
    port = (ssh.port if ssh else None) or int(c.get("port", 0) or 0) or mesh.ssh.port
    user = (ssh.user if ssh else None) or c.get("user") or mesh.ssh.user
    identity: list[str] = []
    if ssh and ssh.identity:
        identity.append(os.path.expanduser(ssh.identity))
    identity += [os.path.expanduser(p) for p in c.get("identityfile", [])]
    if mesh.ssh.identity:
        identity.append(mesh.ssh.identity)
    become = (ssh.become if ssh else None) or mesh.ssh.become
    jump: Target | None = None
    via = ssh.via if ssh else None
    if via:
        jump = _resolve_alias(mesh, via, mesh.host(via), cfg, depth + 1)
    elif c.get("proxyjump") and c["proxyjump"].lower() != "none":
        first = c["proxyjump"].split(",")[0]
        juser, _, jhost = first.rpartition("@")
        jhost, _, jport = jhost.partition(":")
        known = next((h for h in mesh.hosts if h.name == jhost), None)
        jump = _resolve_alias(mesh, jhost, known, cfg, depth + 1)
        if juser or jport:
            jump = replace(jump, port=int(jport) if jport else jump.port, user=juser or jump.user)
    return Target(
        alias,
        hostname,
        port,
        user,
        tuple(dict.fromkeys(identity)),
        jump,
        sudo=become == "sudo" if become else user != "root",
        identities_only=str(c.get("identitiesonly", "no")).lower() == "yes",
    )


def _auth_kwargs(target: Target) -> dict[str, Any]:
    """Keys as OpenSSH offers them: the named identities, or where none is named the default
    ~/.ssh/id_* files; and the agent's keys (all of them, or with IdentitiesOnly only those
    whose public half sits beside a named identity, so a passphrase-protected key the agent
    holds still works)."""
    files = list(target.identity) or [
        str(p) for p in (ssh_dir() / name for name in DEFAULT_IDENTITIES) if p.is_file()
    ]
    kwargs: dict[str, Any] = {"look_for_keys": False, "allow_agent": not target.identities_only}
    if files:
        kwargs["key_filename"] = files
    if target.identities_only:
        wanted = set()
        for f in target.identity:
            with contextlib.suppress(OSError, ValueError, IndexError):
                wanted.add(Path(f + ".pub").read_text().split()[1])
        agent_keys = [k for k in paramiko.Agent().get_keys() if k.get_base64() in wanted]
        if agent_keys:
            kwargs["pkey"] = agent_keys[0]
    return kwargs


def connect(
    mesh: Mesh,
    target: Target,
    accept_new: bool = False,
    timeout: float | None = None,
    become_password: str | None = None,
) -> Remote:
    """An open connection; SshError with advice when the host is unknown, changed or away."""
    timeout = timeout or mesh.ssh.connect_timeout
    gateway = connect(mesh, target.jump, accept_new, timeout).conn if target.jump else None
    known = known_hosts_file(mesh)
    auth = _auth_kwargs(target)
    conn = Connection(
        host=target.hostname,
        user=target.user,
        port=target.port,
        gateway=gateway,
        connect_timeout=timeout,
        config=Config(overrides={"load_ssh_configs": False}),
        connect_kwargs={**auth, "banner_timeout": timeout, "auth_timeout": timeout},
    )
    client: paramiko.SSHClient = conn.client
    if known.exists():
        client.load_host_keys(str(known))
    client.set_missing_host_key_policy(
        AcceptNewPolicy(known) if accept_new else paramiko.RejectPolicy()
    )
    try:
        conn.open()
    except paramiko.BadHostKeyException as e:
        raise SshError(
            f"{target.alias}: the host key of {target.hostname} has CHANGED (got "
            f"{e.key.get_name()} {e.key.get_fingerprint().hex()}): refusing. If the host was "
            f"really reinstalled, remove its old line from {known} (ssh-keygen -R "
            f"{target.hostname} -f {known}) and check the new key out of band."
        ) from None
    except paramiko.AuthenticationException as e:
        offered = ", ".join(auth.get("key_filename", [])) or "no key file"
        agent = "" if target.identities_only else " and the ssh-agent's keys"
        raise SshError(
            f"{target.alias}: {target.describe()} refused us ({e}). Offered: {offered}{agent}. "
            "Name the right key with ssh.identity or IdentityFile, or add it to ssh-agent "
            "(a passphrase-protected key works only through the agent)."
        ) from None
    except paramiko.SSHException as e:
        if "not found in known_hosts" in str(e):
            raise SshError(
                f"{target.alias}: unknown host key for {target.hostname}: refusing. Check its "
                f"fingerprint out of band and add it to {known} (ssh-keyscan -p {target.port} "
                f"{target.hostname} >> {known}), or run again with --accept-new to trust it "
                "on first use."
            ) from None
        raise SshError(f"{target.alias}: {target.describe()}: {e}") from None
    except TimeoutError:
        raise SshError(
            f"{target.alias}: {target.describe()}: timed out after {timeout:g} s"
        ) from None
    except OSError as e:
        raise SshError(f"{target.alias}: {target.describe()}: {e.strerror or e}") from None
    return Remote(conn, target, become_password)


def as_root(command: str, target: Target, password: str | None) -> tuple[str, str]:
    """The command line that runs `command` as root on `target`, and what goes on stdin
    before the command's own input. The password travels on stdin, never on a command line;
    it is read only by sudo when sudo asks for it, and swallowed by the shell when it does
    not, so it can never reach the command's input. The probe runs `sh` as the command does,
    so a sudoers rule that allows only `sh` answers it the same way."""
    if not target.sudo:
        return command, ""
    inner = shlex.quote(command)
    if password is None:
        return f"LC_ALL=C exec sudo -n -- sh -c {inner}", ""
    return (
        f"if LC_ALL=C sudo -n -- sh -c : 2>/dev/null; then IFS= read -r line; "
        f"LC_ALL=C exec sudo -n -- sh -c {inner}; "
        f"else LC_ALL=C exec sudo -S -p '' -- sh -c {inner}; fi",
        password + "\n",
    )


def become_problem(result: Result, target: Target, password: str | None) -> str | None:
    """sudo's own refusal, in words that say what to do; None when sudo let us in."""
    if not target.sudo or result.ok:
        return None
    err = result.stderr
    who = f"{target.alias}: sudo as {target.user}"
    if result.exit_code == 127 and "sudo" in err and "not found" in err:
        return (
            f"{target.alias}: sudo is not installed there. Install it (apt-get install sudo), "
            "or log in as root (ssh.user: root)."
        )
    if any(s in err for s in SUDO_WRONG_PASSWORD):
        return f"{who} refused the password given."
    if SUDO_NEEDS_PASSWORD in err:
        return (
            f"{who} wants a password: run with --ask-become-pass, or set "
            "MESH_PUSH_BECOME_PASSWORD_FILE (see docs/hosts.md), or allow NOPASSWD in sudoers."
        )
    if any(s in err for s in SUDO_REFUSED):
        return (
            f"{who} is not allowed: {target.user} may not use sudo there "
            "(see docs/hosts.md for the sudoers rule mesh-push needs)."
        )
    return None


@dataclass(frozen=True)
class Result:
    command: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def run(remote: Remote, command: str, stdin: str | None = None, timeout: float = 300) -> Result:
    """One remote command as root, stdin streamed then closed. Straight on the paramiko
    channel: one round trip, no polling threads. BecomeError when sudo refused."""
    start = time.monotonic()
    transport = remote.conn.client.get_transport()
    if transport is None or not transport.is_active():
        raise SshError(f"{remote.host}: connection lost")
    line, preamble = as_root(command, remote.target, remote.become_password)
    chan = transport.open_session(timeout=timeout)
    try:
        chan.settimeout(timeout)
        chan.exec_command(line)
        if preamble or stdin:
            chan.sendall((preamble + (stdin or "")).encode())
        chan.shutdown_write()
        # paramiko buffers stderr on its own; our scripts write little of it, so reading
        # stdout to its end first cannot fill the window and stall.
        out = bytearray()
        while data := chan.recv(65536):
            out += data
        err = bytearray()
        while data := chan.recv_stderr(65536):
            err += data
        code = chan.recv_exit_status()
    except TimeoutError:
        raise SshError(f"{remote.host}: command timed out after {timeout:g} s") from None
    finally:
        chan.close()
    result = Result(
        command,
        code,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        time.monotonic() - start,
    )
    if why := become_problem(result, remote.target, remote.become_password):
        raise BecomeError(why)
    return result


def close(remote: Remote) -> None:
    conn: Connection | None = remote.conn
    while conn is not None:
        gateway = conn.gateway if isinstance(conn.gateway, Connection) else None
        conn.close()
        conn = gateway
