"""Stage Gather: what each host has now, its facts (tools, key, last applied script) and its
state (interfaces, peers, STP), from the one command run at connect time or from a poll."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from mesh_push.core.model import Mesh
from mesh_push.engine import ssh
from mesh_push.engine.connect import READ_TIMEOUT_S, Session, parallel
from mesh_push.engine.outcome import Outcome, unexpected
from mesh_push.host import programs as hostcmd
from mesh_push.host import state as observe


@dataclass(frozen=True)
class Facts:
    public_key: str | None  # of the host's current private key
    applied: str  # digest of the last script applied there ("" for none)
    kernel_wireguard: bool
    wireguard_go: bool
    wg: bool
    brctl: bool
    systemd: bool
    flock: bool = True  # util-linux flock: the host lock (templates/lock.sh.j2) needs it


def first_command(mesh: Mesh, generate_key: bool = False) -> str:
    """Facts and state in one program (with `generate_key`, keys: host, the host makes its
    private key if it has none; only the public key comes back)."""
    return hostcmd.facts(mesh, generate_key)


def parse_facts(text: str) -> Facts:
    kv = {}
    for line in observe.sections(text).get("facts", "").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            kv[k.strip()] = v.strip()
    return Facts(
        public_key=kv.get("public_key") or None,
        applied=kv.get("applied", ""),
        kernel_wireguard=kv.get("kernel_wireguard") == "yes",
        wireguard_go=bool(kv.get("wireguard_go")),
        wg=bool(kv.get("wg")),
        brctl=bool(kv.get("brctl")),
        systemd=kv.get("systemd") == "yes",
        flock=bool(kv.get("flock")),
    )


def parse_state(text: str, mesh: Mesh) -> observe.HostState:
    from mesh_push.host.facts import choose_stp

    return observe.parse(text, mesh.bridge, choose_stp(parse_facts(text)).read)


@dataclass
class Gathered:
    facts: dict[str, Facts]
    states: dict[str, observe.HostState]


def from_session(session: Session) -> Gathered:
    """What the first commands printed, parsed. A host whose output cannot be read fails (step
    `gather`) and is dropped from the session; the others go on."""
    facts: dict[str, Facts] = {}
    states: dict[str, observe.HostState] = {}
    for n, text in list(session.outputs.items()):
        try:
            facts[n], states[n] = parse_facts(text), parse_state(text, session.mesh)
        except Exception as e:
            session.reports[n].fail(Outcome.FAILED, "gather", f"{n}: {unexpected(e)}")
            del session.outputs[n]
            if (remote := session.conns.pop(n, None)) is not None:
                with contextlib.suppress(Exception):
                    ssh.close(remote)
    return Gathered(facts, states)


def poll(session: Session, names: Iterable[str]) -> dict[str, observe.HostState]:
    """A fresh state from each host (one round trip each, in parallel); a host that does not
    answer is left out."""
    mesh = session.mesh
    cmd = first_command(mesh)
    states: dict[str, observe.HostState] = {}

    def one(name: str) -> None:
        # Whatever goes wrong (SshError or not) leaves this host out: the judge says so.
        with contextlib.suppress(Exception):
            states[name] = parse_state(session.run(name, cmd, timeout=READ_TIMEOUT_S).stdout, mesh)

    parallel(names, one)
    return states
