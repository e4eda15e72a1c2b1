"""The commands, each one pipeline of named stages with typed values between them, every stage
entered once and in order (docs/design.md):

    up, rotate-keys   Connect → Gather → Keys → Plan → Render → Apply → Verify
    … --check         Connect → Gather → Keys → Plan → Render → Check: nothing changes
    down              Connect → Render → Apply (the down script)
    down HOST...      up on the mesh without them (their peers drop them), then down on them
    status            Connect → Gather → Keys → Plan → Judge
    import            Connect (a read-only program): what each host runs
    measure           Connect → Keys → Plan → Measure
    plan, render      Keys → Plan (→ Render), no host: offline.py

Connect and Gather are one head, `_head`, for all of them. cli.py parses the arguments, calls
one of these and prints what it returns; nothing here prints."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mesh_push import modes
from mesh_push.core.model import Link, Mesh
from mesh_push.engine import (
    apply,
    changes,
    check,
    connect,
    gather,
    handover,
    keys,
    names,
    offline,
    verify,
)
from mesh_push.engine.measure import LinkResult
from mesh_push.engine.measure import measure as measure_links
from mesh_push.engine.outcome import HostReport, Outcome
from mesh_push.engine.rollout import Options
from mesh_push.engine.session import Access, Progress, Session, quiet
from mesh_push.host import found, programs
from mesh_push.host.facts import Backends
from mesh_push.modes import scripts
from mesh_push.modes.base import Plan
from mesh_push.modes.judgement import Judgement, Reconvergence
from mesh_push.modes.mode import Mode

if TYPE_CHECKING:
    import jinja2

# Shown the changes about to be applied, says whether to go on.
Ask = Callable[[changes.Changes, dict[str, HostReport], Mesh], bool]


@dataclass
class Run:
    """What a command that changes hosts did: per host, and for the whole."""

    reports: dict[str, HostReport]
    rollout: apply.Rollout | None = None
    verification: verify.Verification | None = None
    changes: changes.Changes | None = None
    cancelled: bool = False  # the user said no: nothing was applied
    # The mesh as the hosts were worked on: its inventory's, or with the names it keeps.
    mesh: Mesh | None = None
    checked: bool = False  # --check: nothing was applied; the changes are pending
    # up --check: what the changes would cost in traffic (Mode.reconvergence).
    reconvergence: Reconvergence | None = None

    @property
    def pending(self) -> bool:
        """--check: some host would change."""
        return any(r.outcome is Outcome.WOULD_CHANGE for r in self.reports.values())

    @property
    def ok(self) -> bool:
        return (
            not self.cancelled
            and all(r.ok for r in self.reports.values())
            and (self.verification is None or self.verification.ok)
        )


def targets(mesh: Mesh, opts: Options) -> list[str]:
    """--limit's hosts, with their peers for --with-peers; every host without --limit."""
    if opts.limit is None:
        return [h.name for h in mesh.hosts]
    chosen = set(opts.limit)
    if opts.with_peers:
        chosen |= {lk.other(n) for n in opts.limit for lk in mesh.links_of(n)}
    return [h.name for h in mesh.hosts if h.name in chosen]


def _head(
    mesh: Mesh, access: Access, opts: Options, progress: Progress, first: str | None
) -> tuple[Session, gather.Gathered]:
    """Connect to --limit's hosts (all without it), each running `first` (the facts and state
    program, for all but `down` and `measure`, which need no state: None), the others reported
    as excluded; then Gather what the first commands printed."""
    chosen = targets(mesh, opts)
    session = connect.open_all(mesh, access, first, progress, chosen)
    for h in mesh.hosts:
        if h.name not in chosen:
            rep = session.reports[h.name] = HostReport(h.name, Outcome.EXCLUDED)
            rep.message = "outside --limit: not touched"
    session.reports = {h.name: session.reports[h.name] for h in mesh.hosts}
    gathered = gather.from_session(session, progress)
    if first is not None and (kept := names.kept(mesh, gathered.states)) is not mesh:
        # A mesh made under the old default names (engine/names.py): read again by them, a
        # second round trip, until `up` has written them into the inventory.
        session.mesh = kept
        gathered.states.update(gather.poll(session, list(gathered.states)))
    return session, gathered


def up(
    mesh: Mesh,
    access: Access,
    templates: jinja2.Environment,
    opts: Options,
    progress: Progress,
    ask: Ask,
    rotate: Collection[str] = (),
    verify_after: bool = True,
    rotate_psk: Collection[str | Link] = (),
    adopt: bool = False,
) -> Run:
    """Build or converge the mesh (`rotate`: give those hosts new key pairs first;
    `rotate_psk`: new pre-shared keys for their links; `adopt`: take over the interfaces
    that match the plan where they are, docs/adopt.md)."""
    mode = modes.of(mesh)
    # With `keys: host`, the facts program makes a private key where there is none (or, with
    # `adopt`, keeps the key of the WireGuard interface it takes over).
    first = gather.first_command(mesh, mesh.keys == "host", adopted_keys(mesh) if adopt else ())
    session, gathered = _head(mesh, access, opts, progress, first)
    mesh = session.mesh
    try:
        backends = gather.ways(session, gathered, progress)
        k = keys.for_up(session, gathered, rotate, rotate_psk, progress)
        p = mode.plan(mesh, k.public, k.psk_fps)
        todo = changes.decide(
            p, _render(session, mode, p, templates, backends, progress), gathered, k.forced
        )
        run = Run(session.reports, changes=todo, mesh=mesh)
        asked = not (rotate or rotate_psk)
        if todo.to_apply and asked and not ask(todo, session.reports, mesh):
            run.cancelled = True
            for name in todo.to_apply:
                session.reports[name].fail(Outcome.NOT_ATTEMPTED, "confirm", "cancelled")
            for name in todo.unchanged:
                session.reports[name].outcome = Outcome.UNCHANGED
            return run
        if k.next and mesh.keys == "host":
            handover.handover(session, p, list(k.next), progress)
        # A host adopted in this run that rolls back is handed back, its network running.
        fallback = scripts.down_script(mesh, templates, purge=False, keep=adopt)
        run.rollout = apply.apply(
            session, p, todo, backends, progress, opts, fallback, k.deliveries, adopt
        )
        keys.after_apply(mesh, k, session.reports)
        if verify_after:
            run.verification = verify.verify(session, p, gathered.states, progress)
        return run
    finally:
        session.close()


def check_up(
    mesh: Mesh,
    access: Access,
    templates: jinja2.Environment,
    opts: Options,
    progress: Progress,
    rotate: Collection[str] = (),
    with_diff: bool = False,
    rotate_psk: Collection[str | Link] = (),
    adopt: bool = False,
) -> Run:
    """`up --check` (`rotate-keys --check` with `rotate`; `up --adopt --check` with `adopt`):
    what `up` would change on each host as it is now, changing nothing anywhere: no key is
    made, staged or stored."""
    mode = modes.of(mesh)
    first = gather.first_command(mesh, adopt_from=adopted_keys(mesh) if adopt else ())
    session, gathered = _head(mesh, access, opts, progress, first)
    mesh = session.mesh
    try:
        backends = gather.ways(session, gathered, progress)
        k = keys.for_check(session, gathered, rotate, rotate_psk)
        p = mode.plan(mesh, k.public, k.psk_fps)
        host_scripts = _render(session, mode, p, templates, backends, progress)
        rotating = rotate if mesh.keys == "host" else ()
        boots = {name: b.boot for name, b in backends.items()}
        check.check(session, host_scripts, progress, with_diff, rotating, adopt=adopt, boots=boots)
        cost = mode.reconvergence(p, gathered.states)
        return Run(session.reports, checked=True, mesh=mesh, reconvergence=cost)
    finally:
        session.close()


def adopted_keys(mesh: Mesh) -> list[str]:
    """The WireGuard interfaces the plan gives any host: where `up --adopt` finds one that no
    mesh marked, the host keeps its key (programs.facts)."""
    stand_ins = {h.name: keys.stand_in_key(h.name) for h in mesh.hosts}
    p = modes.of(mesh).plan(mesh, stand_ins)
    return sorted({i.name for hp in p.hosts for i in hp.wg})


def _render(
    session: Session,
    mode: Mode,
    p: Plan,
    templates: jinja2.Environment,
    backends: dict[str, Backends],
    progress: Progress,
) -> dict[str, str]:
    """Each connected host's script; a template of --templates that fails for one host fails
    that host only."""

    def one(name: str) -> str:
        wireguard = backends[name].wireguard.name
        return scripts.host_script(mode, p, p.host(name), templates, True, wireguard)

    # In the inventory's order: rollout batches are cut from it.
    names = [h.name for h in session.mesh.hosts if h.name in session.conns]
    # Pure work, waiting on no host: one after the other (threads would only take turns).
    rendered = session.each(names, one, session.failing("render", progress), at_once=False)
    return {n: rendered[n] for n in names if n in rendered}


def down(
    mesh: Mesh,
    access: Access,
    templates: jinja2.Environment,
    purge: bool,
    progress: Progress,
    dry: bool = False,
    opts: Options | None = None,
    keep: bool = False,
) -> Run:
    """Take the mesh off every host (--limit's: `opts`; private keys too with `purge`); with
    `dry` (`down --check`) only say what that would remove. `keep` (`down --keep`): hand it
    back instead, its interfaces running, unmarked."""
    session, _gathered = _head(mesh, access, opts or Options(), progress, None)
    try:
        script = scripts.down_script(mesh, templates, purge, keep)
        if dry:
            check.check(session, dict.fromkeys(session.conns, script), progress, down=True)
            return Run(session.reports, checked=True)
        apply.down(session, script, progress)
        return Run(session.reports)
    finally:
        session.close()


def remove(
    mesh: Mesh,
    rest: Mesh,
    access: Access,
    templates: jinja2.Environment,
    purge: bool,
    progress: Progress,
    dry: bool = False,
) -> Run:
    """Take the hosts of `mesh` that `rest` has not off a live mesh: first `up` on `rest`, so
    that every peer drops their wires and WireGuard peers (and is verified), then `down` on
    them. A peer that failed leaves them untouched: nothing is half-removed. `dry`: both
    `--check`s."""
    gone = [h.name for h in mesh.hosts if h.name not in {r.name for r in rest.hosts}]
    only_gone = Options(limit=frozenset(gone))
    if dry:
        first = check_up(rest, access, templates, Options(), progress)
        second = down(mesh, access, templates, purge, progress, dry=True, opts=only_gone)
        return Run(_merged(mesh, first, second), checked=True)
    first = up(rest, access, templates, Options(), progress, lambda _t, _r, _m: True)
    if not first.ok:
        reports = dict(first.reports)
        for name in gone:
            reports[name] = HostReport(name)
            reports[name].fail(
                Outcome.NOT_ATTEMPTED, "down", "not taken down: its peers did not all drop it"
            )
        return Run(_merged(mesh, first, Run(reports)), first.rollout, first.verification)
    second = down(mesh, access, templates, purge, progress, opts=only_gone)
    return Run(_merged(mesh, first, second), first.rollout, first.verification, first.changes)


def _merged(mesh: Mesh, rest: Run, gone: Run) -> dict[str, HostReport]:
    return {h.name: rest.reports.get(h.name) or gone.reports[h.name] for h in mesh.hosts}


def status(
    mesh: Mesh, access: Access, limit: frozenset[str] | None = None
) -> tuple[Plan, Judgement]:
    """Every host's state (--limit's) in one round trip, judged against the plan."""
    mode = modes.of(mesh)
    session, gathered = _head(mesh, access, Options(limit), quiet, gather.first_command(mesh))
    session.close()
    mesh = session.mesh
    p = mode.plan(mesh, keys.public_keys(mesh))
    errors = {
        n: r.details
        for n, r in session.reports.items()
        if n not in gathered.states and r.outcome is not Outcome.EXCLUDED
    }
    return p, mode.judge(p, gathered.states, errors, scope=limit)


def measure(
    mesh: Mesh, access: Access, count: int, limit: frozenset[str] | None = None
) -> tuple[list[LinkResult], dict[str, str]]:
    """Every link's round trip over its tunnel, from both ends (--limit: those hosts' links,
    from their ends)."""
    session, _gathered = _head(mesh, access, Options(limit), quiet, None)
    try:
        results, errors = measure_links(session, offline.plan(mesh), count)
    finally:
        session.close()
    if limit is None:
        return results, errors
    inside = [r for r in results if {r.a, r.b} & limit]
    return inside, {n: why for n, why in errors.items() if n in limit}


def read_networks(
    mesh: Mesh, access: Access, progress: Progress
) -> tuple[dict[str, found.Found], dict[str, str]]:
    """`import`: one read-only command per host (programs.import_read), all at once; what
    each runs, and why a host could not be read."""
    session = connect.open_all(mesh, access, programs.import_read(mesh), progress)
    session.close()
    out: dict[str, found.Found] = {}
    for name, text in session.outputs.items():
        out[name] = found.parse(text)
    errors = {n: r.details or str(r.outcome) for n, r in session.reports.items() if n not in out}
    return out, errors
