"""Pre-shared keys per link (`mesh.psk`, a link's `psk`): which key belongs on each link, and
which hosts must be given it, between Gather and Plan.

Hosts and the controller compare keys by fingerprint (keys.psk_fingerprint), never by the key:
the gather reports the fingerprint of each key file and of each key `wg` uses.

`keys: controller`: each link's key is in the keystore (keys.controller_psks).
`keys: host`: the first end of a link (by name, `owner`) makes the key (`wg genpsk`) and its
file there is the key of record. When an end lacks it, or holds another, or the key is being
rotated, the owner prints it (hostcmd.psk_keys: nothing is written there) and the controller
keeps it in memory only, to hand it to the apply of the ends that need it, on stdin. It is
never written on the controller, never printed, never put in a report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field

from mesh_push.core.model import Link, Mesh
from mesh_push.engine import keys, ssh
from mesh_push.engine.connect import READ_TIMEOUT_S, Progress, Session, parallel
from mesh_push.engine.gather import Gathered
from mesh_push.engine.outcome import Outcome, tail, unexpected
from mesh_push.host import programs as hostcmd
from mesh_push.inventory import public_key_problem


@dataclass
class Psks:
    # The links that have a key in this run, with its fingerprint (None: not known).
    fingerprints: dict[Link, str | None]
    # Host → peer → key: what each host's apply gets on stdin. Secret: kept out of repr.
    deliveries: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)


def owner(link: Link) -> str:
    """The end that makes a link's key with `keys: host`: the first by name."""
    return min(link.hosts)


def stand_in(link: Link) -> str:
    """`--check`: the fingerprint of a key not made yet (no host has it; the same every run)."""
    text = f"mesh-push --check: a new pre-shared key for {keys.psk_name(link)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def links_of(mesh: Mesh, names: Collection[str]) -> list[Link]:
    """The links with a pre-shared key that touch any of `names` (rotate-keys --psk)."""
    return [lk for lk in mesh.links if lk.psk and (lk.a in names or lk.b in names)]


def _files(gathered: Gathered, name: str) -> dict[str, str]:
    st = gathered.states.get(name)
    return st.psk_files if st is not None else {}


def for_check(
    mesh: Mesh, gathered: Gathered, connected: Collection[str], rotate: Collection[Link]
) -> dict[Link, str | None]:
    """`--check`: the fingerprints `up` (or `rotate-keys --psk`) would plan, with stand-ins
    for keys it would make. Nothing is made, read from a host, or stored."""
    links = [lk for lk in mesh.links if lk.psk]
    if mesh.keys == "controller":
        stored = keys.controller_psks(mesh, create=False)
        return {
            lk: stand_in(lk)
            if (key := stored.get(lk)) is None or lk in rotate
            else keys.psk_fingerprint(key)
            for lk in links
        }
    todo = _owners(gathered, links, connected, rotate)
    return {**todo.fps, **{lk: stand_in(lk) for made in todo.make.values() for lk in made}}


def for_up(
    session: Session, gathered: Gathered, rotate: Collection[Link], progress: Progress
) -> Psks:
    """The keys of this run: made where missing (and for `rotate`), fetched into memory from
    the owners where an end needs them, and who gets which."""
    mesh = session.mesh
    links = [lk for lk in mesh.links if lk.psk]
    if not links:
        return Psks({})
    if mesh.keys == "controller":
        known = keys.controller_psks(mesh, create=True, rotate=rotate)
        fps: dict[Link, str | None] = {lk: keys.psk_fingerprint(k) for lk, k in known.items()}
    else:
        known, fps = _from_owners(session, gathered, links, rotate, progress)
    deliveries: dict[str, dict[str, str]] = {}
    for lk, key in known.items():
        fp = keys.psk_fingerprint(key)
        for here in lk.hosts:
            there = lk.other(here)
            if here in session.conns and _files(gathered, here).get(there) != fp:
                deliveries.setdefault(here, {})[there] = key
    return Psks(fps, deliveries)


@dataclass
class _OwnersTodo:
    fps: dict[Link, str | None]  # the key of record's fingerprint, where it stays
    make: dict[str, list[Link]]  # owner → links whose key it makes (none yet, or rotated)
    read: dict[str, list[Link]]  # owner → links whose key it hands over (an end differs)


def _owners(
    gathered: Gathered, links: list[Link], connected: Collection[str], rotate: Collection[Link]
) -> _OwnersTodo:
    """`keys: host`: what each link's owner must do; the one rule for `up` and `--check`."""
    fps: dict[Link, str | None] = {}
    make: dict[str, list[Link]] = {}
    read: dict[str, list[Link]] = {}
    for lk in links:
        first = owner(lk)
        other = lk.other(first)
        had = _files(gathered, first).get(other)
        theirs = _files(gathered, other).get(first)
        if first not in connected:
            # Its key of record is out of reach: the other end keeps what it has, if any.
            if theirs is not None:
                fps[lk] = theirs
            continue
        if had is None or lk in rotate:
            make.setdefault(first, []).append(lk)
            continue
        fps[lk] = had
        if other in connected and theirs != had:
            read.setdefault(first, []).append(lk)
    return _OwnersTodo(fps, make, read)


def _from_owners(
    session: Session,
    gathered: Gathered,
    links: list[Link],
    rotate: Collection[Link],
    progress: Progress,
) -> tuple[dict[Link, str], dict[Link, str | None]]:
    todo = _owners(gathered, links, session.conns, rotate)
    fps, make, read = todo.fps, todo.make, todo.read
    known: dict[Link, str] = {}

    def one(name: str) -> None:
        made, kept = make.get(name, []), read.get(name, [])
        asked = {lk.other(name): lk for lk in made + kept}
        cmd = hostcmd.psk_keys(
            session.mesh, [lk.other(name) for lk in made], [lk.other(name) for lk in kept]
        )
        why = "could not make or read its pre-shared keys"
        got: dict[Link, str] = {}
        try:
            res = session.run(name, cmd, timeout=READ_TIMEOUT_S)
            # Only the lines asked for, each a well-formed key: the output holds secrets and
            # is never kept as it is (no failure tail of stdout).
            for line in res.stdout.splitlines():
                peer, _, key = line.partition(" ")
                if peer in asked and not public_key_problem(key):
                    got[asked[peer]] = key
            if not res.ok:
                why = tail(res.stderr) or why
        except ssh.SshError as e:
            why = str(e)
        except Exception as e:
            why = f"{name}: {unexpected(e)}"
        if len(got) != len(asked):
            session.reports[name].fail(Outcome.FAILED, "pre-shared keys", why)
            progress(name, why)
            session.drop(name)
            return
        known.update(got)

    parallel(sorted(set(make) | set(read)), one)
    for lk, key in known.items():
        fps[lk] = keys.psk_fingerprint(key)
    return known, fps
