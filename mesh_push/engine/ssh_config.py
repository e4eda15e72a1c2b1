"""Where and how each host is reached, before any connection: the inventory first, then
ssh_config (read by paramiko once its `Match exec` blocks are out: mesh-push runs no command
from ssh_config), then the mesh-wide defaults; jump hosts and ProxyJump chains."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paramiko

from mesh_push.core.model import Host, Mesh


def ssh_dir() -> Path:
    # Read when used, not at import: HOME decides, as it does for OpenSSH.
    return Path("~/.ssh").expanduser()


class SshError(Exception):
    """A host could not be reached or refused us; the message says what to do."""


class BecomeError(SshError):
    """We are logged in, but sudo would not make us root (`needs_password`: because it asks
    for a password and was given none)."""

    def __init__(self, why: str, needs_password: bool = False) -> None:
        super().__init__(why)
        self.needs_password = needs_password


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


# `Keyword value` or `Keyword=value`, as paramiko reads ssh_config lines.
_CONFIG_LINE = re.compile(r"(\w+)(?:\s*=\s*|\s+)(.+)")
_warned: set[tuple[str, int]] = set()
_warned_lock = threading.Lock()


def _has_exec(criteria: str) -> bool:
    """Whether a `Match` line has an `exec` criterion (`!exec` too), however written."""
    words = criteria.split()
    with contextlib.suppress(ValueError):
        words += shlex.split(criteria)
    return any(w.lower().lstrip("!") == "exec" for w in words)


def strip_match_exec(text: str) -> tuple[str, list[int]]:
    """`text` without its `Match … exec …` blocks (the Match line and every line up to the
    next Host or Match, each replaced by an empty line), and the line numbers of those Match
    lines. paramiko runs such a command at every lookup, with %h the inventory's host name;
    mesh-push runs none: the block counts as not matching, as if its command had failed."""
    out: list[str] = []
    stripped: list[int] = []
    skipping = False
    for number, raw in enumerate(text.splitlines(keepends=True), 1):
        line = raw.strip()
        m = _CONFIG_LINE.match(line) if line and not line.startswith("#") else None
        if m and m.group(1).lower() in ("host", "match"):
            skipping = m.group(1).lower() == "match" and _has_exec(m.group(2))
            if skipping:
                stripped.append(number)
        out.append("\n" if skipping else raw)
    return "".join(out), stripped


def parse_config(text: str, source: str = "ssh_config") -> paramiko.SSHConfig:
    """An ssh_config's text, parsed by paramiko once its `Match exec` blocks are out (each
    named once per run in a warning on stderr); SshError if paramiko cannot read it."""
    text, stripped = strip_match_exec(text)
    for number in stripped:
        with _warned_lock:
            if (source, number) in _warned:
                continue
            _warned.add((source, number))
        print(
            f"mesh-push: warning: {source}:{number}: a `Match … exec` block is ignored: "
            "mesh-push runs no command from ssh_config (the block counts as not matching)",
            file=sys.stderr,
        )
    try:
        return paramiko.SSHConfig.from_text(text)
    except Exception as e:  # ConfigParseError, shlex's ValueError on a lone quote
        raise SshError(f"cannot read the ssh_config {source}: {e}") from None


def load_config(mesh: Mesh) -> paramiko.SSHConfig:
    path = mesh.ssh.config or ssh_dir() / "config"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return paramiko.SSHConfig()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise SshError(f"cannot read the ssh_config {path}: {why}") from None
    return parse_config(text, str(path))


def known_hosts_file(mesh: Mesh) -> Path:
    return mesh.ssh.known_hosts or ssh_dir() / "known_hosts"


def resolve(mesh: Mesh, host: Host, cfg: paramiko.SSHConfig | None = None) -> Target:
    """Inventory first, then ssh_config, then the mesh-wide defaults."""
    cfg = cfg or load_config(mesh)
    return _resolve_alias(mesh, host.name, host, cfg, depth=0)


MAX_JUMPS = 8


def _resolve_alias(
    mesh: Mesh,
    alias: str,
    host: Host | None,
    cfg: paramiko.SSHConfig,
    depth: int,
    through: list[str] | None = None,
) -> Target:
    """`through`: the hops before this one when it is a hop of a `ProxyJump a,b,…` list:
    they, not its own ssh_config, say how it is reached (as OpenSSH's -J)."""
    if depth > MAX_JUMPS:
        raise SshError(f"{alias}: jump hosts nest more than {MAX_JUMPS} deep (or loop)")
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
    if through:
        jump = _jump_chain(mesh, alias, through, cfg, depth)
    elif via:
        jump = _resolve_alias(mesh, via, mesh.host(via), cfg, depth + 1)
    elif c.get("proxycommand"):
        raise SshError(
            f"{alias}: ssh_config gives it a ProxyCommand, which mesh-push does not run: it "
            "would be a command line on this machine made with names from the inventory. "
            f"Reach it through a jump host instead (ProxyJump, or hosts.{alias}.ssh.via), or "
            "give it `ProxyCommand none` in a Host block before the one that sets it."
        )
    elif (spec := str(c.get("proxyjump") or "").strip()) and spec.lower() != "none":
        hops = [h.strip() for h in spec.split(",")]
        jump = _jump_chain(mesh, alias, hops, cfg, depth)
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


def parse_jump(alias: str, hop: str) -> tuple[str | None, str, int | None]:
    """One hop of a ProxyJump: `[ssh://][user@]host[:port]`, an IPv6 address in brackets."""
    bad = SshError(
        f"{alias}: ProxyJump {hop!r}: expected [user@]host[:port] (an IPv6 address in [ ])"
    )
    text = hop.removeprefix("ssh://").removesuffix("/")
    user, at, rest = text.rpartition("@")
    if at and not user:
        raise bad
    if rest.startswith("["):
        name, close, tail = rest[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise bad
        port_text = tail[1:] if tail else ""
    else:
        name, _, port_text = rest.partition(":")
    if not name or name.startswith("-") or any(ch.isspace() or ch in "/@[]" for ch in name):
        raise bad
    port = None
    if port_text or rest.endswith(":"):
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise bad
        port = int(port_text)
    return user or None, name, port


def _jump_chain(
    mesh: Mesh, alias: str, hops: list[str], cfg: paramiko.SSHConfig, depth: int
) -> Target:
    """`ProxyJump a,b,c`: the last hop, reached through the one before it, and so on back
    to the first, which is reached as its own ssh_config says."""
    if not hops or not all(hops):
        raise SshError(f"{alias}: ProxyJump has an empty hop")
    *before, last = hops
    user, name, port = parse_jump(alias, last)
    known = next((h for h in mesh.hosts if h.name == name), None)
    jump = _resolve_alias(mesh, name, known, cfg, depth + 1, before or None)
    return replace(jump, port=port or jump.port, user=user or jump.user)
