"""Stage Gather: what each host has now, its facts (tools, key, last applied script) and its
state (interfaces, peers, the mode's part), from the one command run at connect time or from
a poll; and each host's ways (host/facts.py), chosen from its facts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mesh_push import modes
from mesh_push.core.model import Mesh
from mesh_push.engine.session import HostError, Progress, Session
from mesh_push.host import programs
from mesh_push.host.facts import Backends, NoBackend, choose, parse_facts
from mesh_push.host.facts import Gathered as Gathered
from mesh_push.host.state import HostState, parse


def first_command(mesh: Mesh, generate_key: bool = False, adopt_from: Sequence[str] = ()) -> str:
    """Facts and state in one program (with `generate_key`, keys: host, the host makes its
    private key if it has none, or keeps that of an interface of `adopt_from`; only the public
    key comes back)."""
    return programs.facts(mesh, modes.of(mesh).gather_template, generate_key, adopt_from)


def parse_state(text: str, mesh: Mesh) -> HostState:
    mode = modes.of(mesh)
    return parse(text, lambda sections, links: mode.parse_state(mesh, sections, links))


def from_session(session: Session, progress: Progress) -> Gathered:
    """What the first commands printed, parsed. A host whose output cannot be read fails (step
    `gather`) and is dropped from the session; the others go on."""
    out = Gathered({}, {})

    def one(name: str) -> None:
        text = session.outputs[name]
        out.facts[name], out.states[name] = parse_facts(text), parse_state(text, session.mesh)

    session.each(list(session.outputs), one, session.failing("gather", progress), at_once=False)
    return out


def ways(session: Session, gathered: Gathered, progress: Progress) -> dict[str, Backends]:
    """Each host's ways, from its facts and its inventory's `boot`; a host that lacks what is
    needed fails (step `facts`) here, before anything is sent to it."""
    out = {}
    for name in list(session.conns):
        try:
            out[name] = choose(gathered.facts[name], session.mesh.host(name).boot)
        except NoBackend as e:
            session.fail(name, "facts", str(e), progress)
    return out


def poll(session: Session, names: Iterable[str]) -> dict[str, HostState]:
    """A fresh state from each host (one round trip each, in parallel); a host that does not
    answer is left out: the judge says so."""
    mesh = session.mesh
    cmd = first_command(mesh)

    def one(name: str) -> HostState:
        return parse_state(session.run(name, cmd, timeout=programs.READ_TIMEOUT_S).stdout, mesh)

    def ignored(_name: str, _err: HostError) -> None:
        pass

    return session.each(names, one, ignored)
