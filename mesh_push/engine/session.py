"""A command's open connections and each host's report, and the one per-host boundary every
stage works inside (`Session.each`, as Fabric's `Group._do`): the hosts worked on at once, and
whatever escapes one host's work, expected (`ssh.SshError`) or not (`outcome.unexpected` names
its type), is that host's failure, never a traceback that stops the others."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from mesh_push.core.model import Mesh
from mesh_push.core.reported import Unreadable
from mesh_push.engine import ssh
from mesh_push.engine.outcome import HostReport, Outcome, Refused, unexpected
from mesh_push.host.templates import TemplateProblem

T = TypeVar("T")
Progress = Callable[[str, str], None]

WORKERS = 64


def quiet(_host: str, _message: str) -> None:
    """A Progress that says nothing (--json, status)."""


@dataclass(frozen=True)
class Access:
    """What the user allowed: new host keys, the sudo password (never printed), keys of the
    state file that the hosts cannot vouch for."""

    accept_new: bool = False
    become_password: str | None = field(default=None, repr=False)
    trust_state: bool = False  # keys of the state file that no peer has (state_file.trust_state)


@dataclass(frozen=True)
class HostError:
    """Why one host's work failed: an SshError in its own words (they name the host), anything
    else with its type."""

    why: str
    error: Exception

    @classmethod
    def of(cls, name: str, e: Exception) -> HostError:
        if isinstance(e, ssh.SshError | Refused):
            return cls(str(e), e)
        if isinstance(e, Unreadable):
            return cls(f"{name}: cannot read what it sent: {e}", e)
        if isinstance(e, TemplateProblem):
            return cls(f"{name}: {e}", e)
        return cls(f"{name}: {unexpected(e)}", e)


# Told of one host's failure as it happens (in that host's worker).
OnError = Callable[[str, HostError], None]


def parallel(names: Iterable[str], fn: Callable[[str], None]) -> None:
    names = list(names)
    if not names:
        return
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(names))) as pool:
        list(pool.map(fn, names))


@dataclass
class Session:
    """Open connections, each host's report, and what each first command printed. Closed
    once, at the end of the command."""

    mesh: Mesh
    access: Access
    conns: dict[str, ssh.Remote] = field(default_factory=dict)
    reports: dict[str, HostReport] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    sudo_asks: set[str] = field(default_factory=set)  # the hosts given the sudo password

    def each(
        self, names: Iterable[str], fn: Callable[[str], T], failed: OnError, at_once: bool = True
    ) -> dict[str, T]:
        """`fn` on every host of `names` at once (one after the other without `at_once`, for
        work that waits on no host): what each returned. A host whose `fn` raised is left
        out, and `failed` hears why at once."""
        out: dict[str, T] = {}

        def one(name: str) -> None:
            try:
                out[name] = fn(name)
            except Exception as e:
                failed(name, HostError.of(name, e))

        if at_once:
            parallel(names, one)
        else:
            for name in names:
                one(name)
        return out

    def failing(
        self, step: str, progress: Progress, outcome: Outcome = Outcome.FAILED, drop: bool = True
    ) -> OnError:
        """The usual OnError: the host's report fails at `step`, progress says so, and (with
        `drop`) nothing more is sent to it."""

        def failed(name: str, err: HostError) -> None:
            self.fail(name, step, err.why, progress, outcome, drop)

        return failed

    def fail(
        self,
        name: str,
        step: str,
        why: str,
        progress: Progress,
        outcome: Outcome = Outcome.FAILED,
        drop: bool = True,
    ) -> None:
        self.reports[name].fail(outcome, step, why)
        progress(name, f"failed: {why}")
        if drop:
            self.drop(name)

    def run(
        self, name: str, command: str, stdin: str | None = None, timeout: float = 300
    ) -> ssh.Result:
        return ssh.run(self.conns[name], command, stdin, timeout)

    def reconnect(self, name: str, timeout: float) -> ssh.Remote:
        """A fresh connection, as a new `ssh` would make: proof that the host still lets us
        in (rollout confirmation)."""
        mesh = self.mesh
        target = ssh.resolve(mesh, mesh.host(name))
        asked = self.access.become_password if name in self.sudo_asks else None
        return ssh.connect(mesh, target, False, timeout, asked)

    def drop(self, name: str) -> None:
        """Done with a host that failed: nothing more is sent to it."""
        self.outputs.pop(name, None)
        if (remote := self.conns.pop(name, None)) is not None:
            with contextlib.suppress(Exception):
                ssh.close(remote)

    def close(self) -> None:
        for remote in self.conns.values():
            # Closing a dead transport must not hide the real result.
            with contextlib.suppress(Exception):
                ssh.close(remote)
