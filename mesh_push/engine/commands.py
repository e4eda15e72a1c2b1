"""The commands, each one pipeline of named stages with typed values between them:

    up, rotate-keys   Connect → Gather → Plan → Render → Apply → Verify
    down              Connect → Render → Apply
    … --check         the same, with Check (check.py) in place of Apply: nothing changes
    status            Connect → Gather → Judge

cli.py parses the arguments, calls one of these and prints what it returns; nothing here
prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mesh_push.core.model import Link, Mesh
from mesh_push.engine import apply, changes, check, connect, gather, keys, psk, verify
from mesh_push.engine.connect import Access, Progress, Session
from mesh_push.engine.outcome import HostReport, Outcome, unexpected
from mesh_push.engine.rollout import Options
from mesh_push.host import templates as render
from mesh_push.host.facts import Backends, NoBackend, choose
from mesh_push.inventory import public_key_problem
from mesh_push.modes import judge, plan

if TYPE_CHECKING:
    import jinja2

# Shown the changes about to be applied, says whether to go on.
Ask = Callable[[changes.Changes, dict[str, HostReport]], bool]


@dataclass
class Run:
    """What a command that changes hosts did: per host, and for the whole."""

    reports: dict[str, HostReport]
    rollout: apply.Rollout | None = None
    verification: verify.Verification | None = None
    changes: changes.Changes | None = None
    cancelled: bool = False  # the user said no: nothing was applied
    checked: bool = False  # --check: nothing was applied; the changes are pending

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


def up(
    mesh: Mesh,
    access: Access,
    templates: jinja2.Environment,
    opts: Options,
    progress: Progress,
    ask: Ask,
    rotate: list[str] | None = None,
    verify_after: bool = True,
    rotate_psk: list[str] | None = None,
) -> Run:
    """Build or converge the mesh (`rotate`: give those hosts new key pairs first;
    `rotate_psk`: new pre-shared keys for their links)."""
    if mesh.keys == "controller":
        # Key pairs where missing, and a keystore fit for them, before any host is touched.
        keys.ensure_keystore(mesh)
    session = _open(mesh, access, opts, progress, generate_keys=mesh.keys == "host")
    try:
        gathered = gather.from_session(session)
        backends = _backends(session, gathered, progress)
        next_keys = apply.stage_next_keys(session, rotate, progress) if rotate else {}
        psks = psk.for_up(session, gathered, _psk_rotation(session, rotate_psk), progress)
        p = _plan(mesh, gathered, next_keys, psks.fingerprints)
        scripts = _render(session, p, templates, backends)
        # A host that is given a pre-shared key applies, even with the same script.
        forced = {*next_keys, *psks.deliveries}
        todo = changes.decide(p, scripts, gathered, forced=forced)
        run = Run(session.reports, changes=todo)
        rotating = rotate or rotate_psk
        if todo.to_apply and not rotating and not ask(todo, session.reports):
            run.cancelled = True
            for name in todo.to_apply:
                session.reports[name].fail(Outcome.NOT_ATTEMPTED, "confirm", "cancelled")
            for name in todo.unchanged:
                session.reports[name].outcome = Outcome.UNCHANGED
            return run
        fallback = render.render_down(p, templates, purge=False)
        run.rollout = apply.apply(
            session, p, todo, backends, progress, opts, fallback, psks.deliveries
        )
        if next_keys and mesh.keys == "host":
            done = {n: k for n, k in next_keys.items() if session.reports[n].ok}
            keys.save_public_keys(mesh, done)
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
    rotate: list[str] | None = None,
    with_diff: bool = False,
    rotate_psk: list[str] | None = None,
) -> Run:
    """`up --check` (`rotate-keys --check` with `rotate`): what `up` would change on each
    host as it is now, changing nothing anywhere: no key is made, staged or stored."""
    session = _open(mesh, access, opts, progress, generate_keys=False)
    try:
        gathered = gather.from_session(session)
        backends = _backends(session, gathered, progress)
        known = keys.public_keys(mesh)
        if mesh.keys == "host":
            known.update(_reported_keys(gathered))
        # A key `up` would make, or `rotate-keys` would replace: one no host has.
        stand_ins = [
            h.name
            for h in mesh.hosts
            if h.name in (rotate or ())
            or (h.name not in known and (mesh.keys == "controller" or h.name in session.conns))
        ]
        known.update((n, check.stand_in_key(n)) for n in stand_ins)
        fps = psk.for_check(mesh, gathered, session.conns, _psk_rotation(session, rotate_psk))
        scripts = _render(session, plan.build(mesh, known, fps), templates, backends)
        rotating = rotate if mesh.keys == "host" else ()
        check.check(session, scripts, progress, with_diff, rotating or ())
        return Run(session.reports, checked=True)
    finally:
        session.close()


def _open(
    mesh: Mesh, access: Access, opts: Options, progress: Progress, generate_keys: bool
) -> Session:
    """Connect to --limit's hosts (all without it) with the facts and state in the first
    command; the others are reported as excluded."""
    chosen = targets(mesh, opts)
    session = connect.open_all(
        mesh, access, gather.first_command(mesh, generate_keys), progress, chosen
    )
    for h in mesh.hosts:
        if h.name not in chosen:
            rep = session.reports[h.name] = HostReport(h.name, Outcome.EXCLUDED)
            rep.message = "outside --limit: not touched"
    session.reports = {h.name: session.reports[h.name] for h in mesh.hosts}
    return session


def _backends(
    session: Session, gathered: gather.Gathered, progress: Progress
) -> dict[str, Backends]:
    """Each host's ways, from its facts; a host that lacks what is needed fails here, before
    anything is sent to it."""
    out = {}
    for name in list(session.conns):
        try:
            out[name] = choose(gathered.facts[name])
        except NoBackend as e:
            session.reports[name].fail(Outcome.FAILED, "facts", str(e))
            progress(name, f"failed: {e}")
            session.drop(name)
    return out


def _psk_rotation(session: Session, names: list[str] | None) -> list[Link]:
    """The links whose pre-shared keys `rotate-keys --psk` replaces: those of `names` with
    both ends reached (a key given to one end only would cut the link)."""
    return [
        lk
        for lk in psk.links_of(session.mesh, names or ())
        if all(h in session.conns for h in lk.hosts)
    ]


def _reported_keys(gathered: gather.Gathered) -> dict[str, str]:
    """The public keys the hosts' facts report (keys: host), the well-formed ones."""
    return {
        n: f.public_key
        for n, f in gathered.facts.items()
        if f.public_key and not public_key_problem(f.public_key)
    }


def _plan(
    mesh: Mesh,
    gathered: gather.Gathered,
    next_keys: dict[str, str],
    psk_fps: dict[Link, str | None],
) -> plan.Plan:
    """Public keys as the hosts report them (cached in the state file), a rotation's next keys
    over them; the links' pre-shared keys by fingerprint."""
    if mesh.keys == "host":
        keys.save_public_keys(mesh, _reported_keys(gathered))
    known = {**keys.public_keys(mesh, create=mesh.keys == "controller"), **next_keys}
    return plan.build(mesh, known, psk_fps)


def _render(
    session: Session, p: plan.Plan, templates: jinja2.Environment, backends: dict[str, Backends]
) -> dict[str, str]:
    mesh = session.mesh
    scripts = {}
    # In the inventory's order: rollout batches are cut from it.
    for name in (h.name for h in mesh.hosts if h.name in session.conns):
        try:
            scripts[name] = render.render_host(
                p,
                p.host(name),
                templates,
                allow_missing_peers=True,
                wireguard=backends[name].wireguard.name,
            )
        except Exception as e:
            # A template of --templates that fails for one host fails that host only.
            why = f"{name}: {unexpected(e)}"
            session.reports[name].fail(Outcome.FAILED, "render", why)
            session.drop(name)
    return scripts


def down(
    mesh: Mesh,
    access: Access,
    templates: jinja2.Environment,
    purge: bool,
    progress: Progress,
    dry: bool = False,
) -> Run:
    """Take the mesh off every host (private keys too with `purge`); with `dry` (`down
    --check`) only say what that would remove."""
    session = connect.open_all(mesh, access, None, progress)
    try:
        script = render.render_down(plan.build(mesh, {}), templates, purge)
        if dry:
            check.check(session, dict.fromkeys(session.conns, script), progress, down=True)
            return Run(session.reports, checked=True)
        apply.down(session, script, progress)
        return Run(session.reports)
    finally:
        session.close()


def status(mesh: Mesh, access: Access) -> tuple[plan.Plan, judge.Judgement]:
    """Every host's state in one round trip, judged against the plan."""
    session = connect.open_all(mesh, access, gather.first_command(mesh))
    session.close()
    gathered = gather.from_session(session)
    p = plan.build(mesh, keys.public_keys(mesh))
    errors = {n: r.details for n, r in session.reports.items() if n not in gathered.states}
    return p, judge.judge(p, gathered.states, errors)
