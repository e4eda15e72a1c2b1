"""Stage Connect: one SSH connection per host, all hosts at once, each running its first
command (the gather, for most commands) right after its handshake, so no host waits for the
slowest and a command that changes nothing needs no second round trip."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

import paramiko

from mesh_push.core.model import Mesh
from mesh_push.engine import ssh
from mesh_push.engine.outcome import HostReport, Outcome
from mesh_push.engine.session import Access, HostError, Progress, Session, quiet
from mesh_push.host import programs


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
    opened: dict[str, ssh.Remote] = {}

    def one(name: str) -> None:
        rep = session.reports[name]
        start = time.monotonic()
        if isinstance(cfg, ssh.SshError):
            raise ssh.SshError(f"{name}: {cfg}")
        target = ssh.resolve(mesh, mesh.host(name), cfg)
        remote = opened[name] = ssh.connect(mesh, target, access.accept_new)
        # The password is given only to a host whose sudo asks: one that does not never learns it.
        password = access.become_password if target.sudo else None
        if password is not None and ssh.sudo_asks(remote, programs.READ_TIMEOUT_S):
            remote.become_password = password
            session.sudo_asks.add(name)
        rep.seconds["connect"] = time.monotonic() - start
        if first is not None or target.sudo:
            res = ssh.run(remote, first or "true", timeout=programs.READ_TIMEOUT_S)
            rep.seconds["command"] = res.seconds
            if first is not None:
                session.outputs[name] = res.stdout
        session.conns[name] = remote
        progress(name, "connected")

    def failed(name: str, err: HostError) -> None:
        # A host we are logged in to that then failed (sudo said no, a library's bug) failed;
        # one we could not reach is unreachable.
        if isinstance(err.error, ssh.BecomeError):
            session.fail(name, "sudo", err.why, progress, drop=False)
        elif name in opened and not isinstance(err.error, ssh.SshError):
            session.fail(name, "connect", err.why, progress, drop=False)
        else:
            session.reports[name].fail(Outcome.UNREACHABLE, "connect", err.why)
            progress(name, f"unreachable: {err.why}")
        if (remote := opened.get(name)) is not None:
            with contextlib.suppress(Exception):
                ssh.close(remote)

    for name in names:
        session.reports[name] = HostReport(name)
    session.each(names, one, failed)
    return session
