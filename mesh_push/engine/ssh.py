"""SSH to the hosts with Fabric, host keys checked strictly.

Fabric's own default accepts any host key (paramiko AutoAddPolicy) and loads no known_hosts;
here known_hosts is always loaded and unknown keys are refused unless the user asked for trust
on first use. Jump hosts are built here too, so that they get the same policy.

mesh-push runs no command from ssh_config on this machine: host names come from the inventory,
and a command line made with them is a command injection waiting for a name. So a `Match`
block with an `exec` criterion is left out before paramiko (which would run it at every
lookup) reads the file, with a warning, and a host whose ssh_config gives it a `ProxyCommand`
is refused with an error; `ProxyJump` (any number of hops) is what works.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import select
import shlex
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paramiko
from fabric import Config, Connection

from mesh_push.core.model import Mesh
from mesh_push.engine.ssh_config import BecomeError as BecomeError
from mesh_push.engine.ssh_config import SshError as SshError
from mesh_push.engine.ssh_config import Target as Target
from mesh_push.engine.ssh_config import known_hosts_file, ssh_dir
from mesh_push.engine.ssh_config import load_config as load_config
from mesh_push.engine.ssh_config import resolve as resolve

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
# The most one command may print, stdout and stderr together: an evpn host's state with the
# routes of a few hundred hosts is far less; more is a host flooding us.
MAX_OUTPUT = 16 << 20
SELECT_WAIT_S = 0.2  # the longest a read waits before looking at the buffers again


@dataclass
class Remote:
    """An open connection to a host, and how to become root on it."""

    conn: Connection
    target: Target
    # Only for a host whose sudo asked for it (sudo_asks); never shown.
    become_password: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return self.target.alias


class RevokedHostKey(paramiko.SSHException):
    """The host presented a key that known_hosts marks `@revoked`."""

    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"{hostname}: revoked host key")
        self.key = key


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """For a host known_hosts has no key for: a revoked key is refused; a new key is refused
    too (paramiko's RejectPolicy), unless `accept_new`, trust on first use as OpenSSH's
    StrictHostKeyChecking=accept-new: it is added to known_hosts. A changed key never gets
    here: paramiko raises BadHostKeyException first."""

    def __init__(self, path: Path, accept_new: bool, revoked: frozenset[bytes]) -> None:
        self.path = path
        self.accept_new = accept_new
        self.revoked = revoked

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if key.asbytes() in self.revoked:
            raise RevokedHostKey(hostname, key)
        if not self.accept_new:
            raise paramiko.SSHException(f"Server {hostname!r} not found in known_hosts")
        with _known_hosts_lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


@dataclass(frozen=True)
class KnownHosts:
    """known_hosts as mesh-push uses it: plain host key lines, and the keys of `@revoked`
    lines (refused whichever host presents them). `@cert-authority` lines are skipped:
    mesh-push checks no host certificates. A line that cannot be read is skipped, as OpenSSH
    does, instead of failing every connection."""

    entries: tuple[paramiko.hostkeys.HostKeyEntry, ...] = ()
    revoked: frozenset[bytes] = frozenset()
    cert_authorities: int = 0  # `@cert-authority` lines skipped

    def install(self, client: paramiko.SSHClient) -> None:
        """Into the client's host keys; the first key of a type for a name wins, as paramiko's
        own loading does."""
        keys = client.get_host_keys()
        seen: set[tuple[str, str]] = set()
        for entry in self.entries:
            kind = entry.key.get_name()
            for name in entry.hostnames:
                if (name, kind) not in seen:
                    seen.add((name, kind))
                    keys.add(name, kind, entry.key)


def read_known_hosts(path: Path) -> KnownHosts:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return KnownHosts()
    except OSError as e:
        raise SshError(f"cannot read known_hosts {path}: {e.strerror or e}") from None
    entries: list[paramiko.hostkeys.HostKeyEntry] = []
    revoked: set[bytes] = set()
    authorities = 0
    for number, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if len(fields) < 3:
            continue
        if marker is not None:
            if marker == "@revoked":
                with contextlib.suppress(binascii.Error, ValueError):
                    revoked.add(base64.b64decode(fields[2], validate=True))
            else:  # @cert-authority, or a marker OpenSSH would not know either
                authorities += 1
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(" ".join(fields[:3]), number)
        except Exception:  # InvalidHostKey (not even an SSHException), a key paramiko lacks
            continue
        if entry is not None and entry.key is not None:
            entries.append(entry)
    kept = tuple(e for e in entries if e.key.asbytes() not in revoked)
    return KnownHosts(kept, frozenset(revoked), authorities)


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
    """An open connection; SshError with advice when the host is unknown, changed, revoked
    or away. Jump hosts first, each through the one before it (a chain of Fabric gateways),
    with the same host key policy; on failure whatever was opened is closed."""
    timeout = timeout or mesh.ssh.connect_timeout
    known = known_hosts_file(mesh)
    hostkeys = read_known_hosts(known)
    gateway = connect(mesh, target.jump, accept_new, timeout) if target.jump else None
    try:
        conn = _open(target, known, hostkeys, accept_new, timeout, gateway)
    except BaseException:
        if gateway is not None:
            with contextlib.suppress(Exception):
                close(gateway)
        raise
    return Remote(conn, target, become_password)


def _open(
    target: Target,
    known: Path,
    hostkeys: KnownHosts,
    accept_new: bool,
    timeout: float,
    gateway: Remote | None,
) -> Connection:
    auth = _auth_kwargs(target)
    conn = Connection(
        host=target.hostname,
        user=target.user,
        port=target.port,
        gateway=gateway.conn if gateway else None,
        connect_timeout=timeout,
        config=Config(overrides={"load_ssh_configs": False}),
        connect_kwargs={**auth, "banner_timeout": timeout, "auth_timeout": timeout},
    )
    client: paramiko.SSHClient = conn.client
    hostkeys.install(client)
    client.set_missing_host_key_policy(HostKeyPolicy(known, accept_new, hostkeys.revoked))
    try:
        conn.open()
    except Exception as e:
        # A half-made transport must not outlive the error.
        with contextlib.suppress(Exception):
            conn.close()
        why = _open_error(e, target, known, hostkeys.revoked, auth, timeout)
        if why is None:
            raise
        raise why from None
    return conn


def _open_error(
    e: Exception,
    target: Target,
    known: Path,
    revoked: frozenset[bytes],
    auth: dict[str, Any],
    timeout: float,
) -> SshError | None:
    """What conn.open() raised, as an SshError with advice; None for an exception nobody
    expected (the caller's per-host boundary reports it with its type)."""
    where = f"{target.alias}: {target.describe()}"
    if isinstance(e, RevokedHostKey) or (
        isinstance(e, paramiko.BadHostKeyException) and e.key.asbytes() in revoked
    ):
        key = e.key
        return SshError(
            f"{target.alias}: {target.hostname} presented a host key that {known} marks "
            f"@revoked ({key.get_name()} {key.get_fingerprint().hex()}): refusing. Find out "
            "why it still has that key before trusting it again."
        )
    if isinstance(e, paramiko.BadHostKeyException):
        return SshError(
            f"{target.alias}: the host key of {target.hostname} has CHANGED (got "
            f"{e.key.get_name()} {e.key.get_fingerprint().hex()}): refusing. If the host was "
            f"really reinstalled, remove its old line from {known} (ssh-keygen -R "
            f"{target.hostname} -f {known}) and check the new key out of band."
        )
    if isinstance(e, paramiko.AuthenticationException):
        offered = ", ".join(auth.get("key_filename", [])) or "no key file"
        agent = "" if target.identities_only else " and the ssh-agent's keys"
        return SshError(
            f"{where} refused us ({e}). Offered: {offered}{agent}. "
            "Name the right key with ssh.identity or IdentityFile, or add it to ssh-agent "
            "(a passphrase-protected key works only through the agent)."
        )
    if isinstance(e, paramiko.SSHException):
        if "not found in known_hosts" in str(e):
            return SshError(
                f"{target.alias}: unknown host key for {target.hostname}: refusing. Check its "
                f"fingerprint out of band and add it to {known} (ssh-keyscan -p {target.port} "
                f"{target.hostname} >> {known}), or run again with --accept-new to trust it "
                "on first use."
            )
        return SshError(f"{where}: {e}")
    if isinstance(e, TimeoutError):
        return SshError(f"{where}: timed out after {timeout:g} s")
    if isinstance(e, OSError):
        return SshError(f"{where}: {e.strerror or e}")
    if isinstance(e, EOFError):
        return SshError(f"{where}: the connection was closed during the handshake")
    return None


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
    channel: one round trip, no polling threads. `timeout` bounds the whole command, and at
    most MAX_OUTPUT bytes are read from it: a host that trickles, floods or never stops
    fails alone (SshError), it never holds the caller or its memory. BecomeError when sudo
    refused."""
    start = time.monotonic()
    deadline = start + timeout
    transport = remote.conn.client.get_transport()
    if transport is None or not transport.is_active():
        raise SshError(f"{remote.host}: connection lost")
    line, preamble = as_root(command, remote.target, remote.become_password)
    try:
        chan = transport.open_session(timeout=timeout)
    except (paramiko.SSHException, EOFError, OSError) as e:
        reason = str(e) or type(e).__name__
        raise SshError(f"{remote.host}: could not open a session: {reason}") from None
    try:
        chan.settimeout(timeout)
        chan.exec_command(line)
        if preamble or stdin:
            chan.settimeout(_left(deadline))
            chan.sendall((preamble + (stdin or "")).encode())
        chan.shutdown_write()
        out, err = _read_all(remote.host, chan, deadline)
        if not chan.status_event.wait(_left(deadline)):
            raise TimeoutError
        code = chan.exit_status
    except TimeoutError:
        raise SshError(f"{remote.host}: command timed out after {timeout:g} s") from None
    except (paramiko.SSHException, EOFError, OSError) as e:
        reason = str(e) or type(e).__name__
        raise SshError(f"{remote.host}: connection lost ({reason})") from None
    finally:
        _unhook(chan)
        chan.close()
    result = Result(
        command,
        code,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        time.monotonic() - start,
    )
    if why := become_problem(result, remote.target, remote.become_password):
        asks = remote.become_password is None and SUDO_NEEDS_PASSWORD in result.stderr
        raise BecomeError(why, needs_password=asks)
    return result


def sudo_asks(remote: Remote, timeout: float) -> bool:
    """Whether the host's sudo asks for a password (`sudo -n` says so): the password goes
    only to hosts that ask. BecomeError when sudo refuses us for another reason."""
    try:
        run(replace(remote, become_password=None), ":", timeout=timeout)
    except BecomeError as e:
        if e.needs_password:
            return True
        raise
    return False


def _unhook(chan: paramiko.Channel) -> None:
    """paramiko's Channel.close closes the pipe behind chan.fileno() (what _read_all selects
    on) while its transport thread may still feed that pipe the data a host keeps sending (a
    flood cut at MAX_OUTPUT, a trickle at its deadline). The thread's write to the closed pipe
    then kills the whole connection (EBADF), and every later command on it fails. The
    buffers' events are swapped first, under their own locks, so nothing writes to the pipe
    when it closes."""
    chan.in_buffer.set_event(threading.Event())
    chan.in_stderr_buffer.set_event(threading.Event())


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _read_all(host: str, chan: paramiko.Channel, deadline: float) -> tuple[bytearray, bytearray]:
    """stdout and stderr to their end, both at once (a host that fills one while we wait on
    the other cannot stall us), until the deadline and at most MAX_OUTPUT bytes in all. The
    channel's fileno is readable while either has data, and at its end."""
    out, err = bytearray(), bytearray()
    while True:
        # A bounded wait, then the buffers are looked at whatever select said: paramiko's
        # pipe behind fileno() is shared by stdout and stderr without a common lock, and a
        # read emptying one can clear it just as the other gets data. With the window then
        # full, the host waits for us and we for the pipe (seen: 3 MiB on each stream, stuck
        # until the deadline).
        select.select([chan], [], [], min(_left(deadline), SELECT_WAIT_S))
        while chan.recv_ready():
            out += chan.recv(65536)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        if len(out) + len(err) > MAX_OUTPUT:
            raise SshError(
                f"{host}: sent more than {MAX_OUTPUT >> 20} MiB of output: stopped reading "
                "(a command of mesh-push prints far less; look at what runs there)"
            )
        if chan.recv_ready() or chan.recv_stderr_ready():
            continue
        if chan.eof_received:
            return out, err
        if chan.closed:
            # The connection died under the command (its sshd killed, the host gone):
            # paramiko closes the channel without an EOF, and its fileno stays readable.
            raise EOFError("the connection closed")


def close(remote: Remote) -> None:
    conn: Connection | None = remote.conn
    while conn is not None:
        gateway = conn.gateway if isinstance(conn.gateway, Connection) else None
        conn.close()
        conn = gateway
