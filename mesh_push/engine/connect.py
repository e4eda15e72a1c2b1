"""Stage Connect: one SSH connection per host, all hosts at once, each running its first
command (the gather, for most commands) right after its handshake, so no host waits for the
slowest and a command that changes nothing needs no second round trip."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mesh_push.core.model import Mesh
from mesh_push.engine import ssh
from mesh_push.engine.outcome import HostReport, Outcome, unexpected

if TYPE_CHECKING:
    import paramiko

Progress = Callable[[str, str], None]

# Reading state takes milliseconds on a host; a read that has not answered in this long is
# stuck (seen on an overloaded 50-host lab), and a poll must not wait out the apply timeout.
READ_TIMEOUT_S = 30.0


def quiet(_host: str, _message: str) -> None:
    """A Progress that says nothing (--json, status)."""


@dataclass(frozen=True)
class Access:
    """What the user allowed: new host keys, and the sudo password (never printed)."""

    accept_new: bool = False
    become_password: str | None = field(default=None, repr=False)


@dataclass
class Session:
    """Open connections, each host's report, and what each first command printed. Closed
    once, at the end of the command."""

    mesh: Mesh
    access: Access
    conns: dict[str, ssh.Remote] = field(default_factory=dict)
    reports: dict[str, HostReport] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def run(
        self, name: str, command: str, stdin: str | None = None, timeout: float = 300
    ) -> ssh.Result:
        return ssh.run(self.conns[name], command, stdin, timeout)

    def reconnect(self, name: str, timeout: float) -> ssh.Remote:
        """A fresh connection, as a new `ssh` would make: proof that the host still lets us
        in (rollout confirmation)."""
        mesh = self.mesh
        target = ssh.resolve(mesh, mesh.host(name))
        return ssh.connect(mesh, target, False, timeout, self.access.become_password)

    def drop(self, name: str) -> None:
        """Done with a host that failed: nothing more is sent to it."""
        with contextlib.suppress(Exception):
            ssh.close(self.conns.pop(name))

    def close(self) -> None:
        for remote in self.conns.values():
            # Closing a dead transport must not hide the real result.
            with contextlib.suppress(Exception):
                ssh.close(remote)


def parallel(names: Iterable[str], fn: Callable[[str], None], workers: int = 64) -> None:
    names = list(names)
    if not names:
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(names))) as pool:
        list(pool.map(fn, names))


def open_all(
    mesh: Mesh,
    access: Access,
    first: str | None,
    progress: Progress = quiet,
    only: Iterable[str] | None = None,
) -> Session:
    """Connect to `only` (every host by default) and run `first` on each. Without a first
    command, a host reached through sudo still runs `true`: sudo must have said yes before a
    script goes to it on stdin. (Each host has its own chain through its jump hosts.)"""
    session = Session(mesh, access)
    names = list(only) if only is not None else [h.name for h in mesh.hosts]
    cfg: paramiko.SSHConfig | ssh.SshError
    try:
        # One ssh_config for all: read once (an unreadable one fails every host, below).
        cfg = ssh.load_config(mesh)
    except ssh.SshError as e:
        cfg = e

    def one(name: str) -> None:
        rep = session.reports[name]
        start = time.monotonic()
        remote: ssh.Remote | None = None
        try:
            if isinstance(cfg, ssh.SshError):
                raise ssh.SshError(f"{name}: {cfg}")
            target = ssh.resolve(mesh, mesh.host(name), cfg)
            remote = ssh.connect(
                mesh, target, access.accept_new, become_password=access.become_password
            )
            rep.seconds["connect"] = time.monotonic() - start
            if first is not None or target.sudo:
                res = ssh.run(remote, first or "true", timeout=READ_TIMEOUT_S)
                rep.seconds["command"] = res.seconds
                if first is not None:
                    session.outputs[name] = res.stdout
            session.conns[name] = remote
            progress(name, "connected")
            return
        except ssh.BecomeError as e:
            rep.fail(Outcome.FAILED, "sudo", str(e))
            progress(name, f"failed: {e}")
        except ssh.SshError as e:
            rep.fail(Outcome.UNREACHABLE, "connect", str(e))
            progress(name, f"unreachable: {e}")
        except Exception as e:
            # Whatever went wrong inside one host's connection (a library's bug, EOFError, a
            # bad key file) is that host's failure, never a traceback that stops the others.
            why = f"{name}: {unexpected(e)}"
            if remote is None:
                rep.fail(Outcome.UNREACHABLE, "connect", why)
                progress(name, f"unreachable: {why}")
            else:
                rep.fail(Outcome.FAILED, "connect", why)
                progress(name, f"failed: {why}")
        if remote is not None:
            with contextlib.suppress(Exception):
                ssh.close(remote)

    for name in names:
        session.reports[name] = HostReport(name)
    parallel(names, one)
    return session
