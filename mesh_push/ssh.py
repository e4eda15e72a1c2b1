"""SSH to the hosts with Fabric, host keys checked strictly.

Fabric's own default accepts any host key (paramiko AutoAddPolicy) and loads no known_hosts;
here known_hosts is always loaded and unknown keys are refused unless the user asked for trust
on first use. Jump hosts are built here too, so that they get the same policy.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from fabric import Config, Connection

from .model import Host, Mesh

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts").expanduser()
DEFAULT_SSH_CONFIG = Path("~/.ssh/config").expanduser()
_known_hosts_lock = threading.Lock()
# paramiko logs a dropped socket at ERROR; we report it ourselves, once, in our own words.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class SshError(Exception):
    """A host could not be reached or refused us; the message says what to do."""


@dataclass(frozen=True)
class Target:
    alias: str  # what the user calls it: the inventory name, or a ssh_config alias
    hostname: str
    port: int
    user: str
    identity: tuple[str, ...]
    jump: Target | None

    def describe(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


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
    path = mesh.ssh.config or DEFAULT_SSH_CONFIG
    if path.exists():
        return paramiko.SSHConfig.from_path(str(path))
    return paramiko.SSHConfig()


def known_hosts_file(mesh: Mesh) -> Path:
    return mesh.ssh.known_hosts or DEFAULT_KNOWN_HOSTS


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
    hostname = (
        (ssh.address if ssh else None)
        or c.get("hostname")
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
            jump = Target(
                jump.alias,
                jump.hostname,
                int(jport) if jport else jump.port,
                juser or jump.user,
                jump.identity,
                jump.jump,
            )
    return Target(alias, hostname, port, user, tuple(dict.fromkeys(identity)), jump)


def connect(
    mesh: Mesh, target: Target, accept_new: bool = False, timeout: float | None = None
) -> Connection:
    """An open connection; SshError with advice when the host is unknown, changed or away."""
    timeout = timeout or mesh.ssh.connect_timeout
    gateway = connect(mesh, target.jump, accept_new, timeout) if target.jump else None
    known = known_hosts_file(mesh)
    conn = Connection(
        host=target.hostname,
        user=target.user,
        port=target.port,
        gateway=gateway,
        connect_timeout=timeout,
        config=Config(overrides={"load_ssh_configs": False}),
        connect_kwargs={
            "key_filename": list(target.identity) or None,
            "look_for_keys": not target.identity,
            "allow_agent": not target.identity,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
        },
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
    return conn


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

    def stderr_tail(self, lines: int = 8) -> str:
        return "\n".join(self.stderr.strip().splitlines()[-lines:])


def run(conn: Connection, command: str, stdin: str | None = None, timeout: float = 300) -> Result:
    """One remote command, stdin streamed then closed. Straight on the paramiko channel: one
    round trip, no polling threads."""
    start = time.monotonic()
    transport = conn.client.get_transport()
    if transport is None or not transport.is_active():
        raise SshError(f"{conn.host}: connection lost")
    chan = transport.open_session(timeout=timeout)
    try:
        chan.settimeout(timeout)
        chan.exec_command(command)
        if stdin is not None:
            chan.sendall(stdin.encode())
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
        raise SshError(f"{conn.host}: command timed out after {timeout:g} s") from None
    finally:
        chan.close()
    return Result(
        command,
        code,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        time.monotonic() - start,
    )


def close(conn: Connection) -> None:
    gateway = conn.gateway if isinstance(conn.gateway, Connection) else None
    conn.close()
    if gateway is not None:
        close(gateway)
