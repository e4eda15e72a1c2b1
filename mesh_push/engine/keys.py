"""Stage Keys: every key of a run, between Gather and Plan, and where each is kept.

Key pairs. `keys: host`: private keys never leave the hosts; their public keys, as the facts
report them, are cached in the state file (public data only), so later runs and other
controllers reuse them. `keys: controller`: X25519 pairs are made here, kept in a 0700 keystore
(one per inventory file), never printed. `rotate-keys` stages the next pair: on the host
beside the current key (`keys: host`, so no private key ever leaves it), or in the keystore.

Pre-shared keys per link (`mesh.psk`, a link's `psk`): which key belongs on each link, and
which hosts must be given it. Hosts and the controller compare keys by fingerprint
(psk_fingerprint), never by the key: the gather reports the fingerprint of each key file and
of each key `wg` uses. `keys: controller`: each link's key is in the keystore. `keys: host`:
the first end of a link (by name, `owner`) makes the key (`wg genpsk`) and its file there is
the key of record. When an end lacks it, or holds another, or the key is being rotated, the
owner prints it (programs.psk_keys: nothing is written there) and the controller keeps it in
memory only, to hand it to the apply of the ends that need it, on stdin. It is never written
on the controller, never printed, never put in a report.

Only `up` and `rotate-keys` make or change keys; `--check` stands in for the keys it would
make (stand_in_key, stand_in), and so does `render` for keys not known yet; `plan`, `render`
and `status` only read.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mesh_push.core.model import Link, Mesh
from mesh_push.core.values import public_key_problem
from mesh_push.engine.outcome import HostReport, Refused, tail
from mesh_push.engine.state_file import read_state, reported, save_public_keys, trust_state
from mesh_push.files.fsutil import (
    LocalFileError,
    PrivateDir,
    open_private_dir,
    private_dir,
)
from mesh_push.host import programs
from mesh_push.host.facts import Gathered

if TYPE_CHECKING:
    from mesh_push.engine.session import Progress, Session


@dataclass
class Keys:
    """What the plan needs of this run's keys."""

    public: dict[str, str]  # host → public key, a rotation's next keys over the current ones
    # Each link's pre-shared key by fingerprint (None: not known); a link with `psk` left out
    # has none yet (its key waits for its first end).
    psk_fps: dict[Link, str | None]
    next: dict[str, str] = field(default_factory=dict)  # rotate-keys: the new public keys
    # Host → peer → key: what each host's apply gets on stdin. Secret: kept out of repr.
    deliveries: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    @property
    def forced(self) -> set[str]:
        """Hosts that apply even with the same script: given a key, or a rotation staged."""
        return {*self.next, *self.deliveries}


def for_up(
    session: Session,
    gathered: Gathered,
    rotate: Collection[str],
    rotate_psk: Collection[str | Link],
    progress: Progress,
) -> Keys:
    """The keys of `up` (`rotate`: new key pairs for those hosts; `rotate_psk`: new pre-shared
    keys for their links): made where missing, fetched into memory from the hosts that own
    them where another host needs them, and the public keys the hosts report saved."""
    mesh = session.mesh
    trust_state(session, gathered)
    if mesh.keys == "controller":
        # Key pairs where missing, and a keystore fit for them, before any plan.
        ensure_keystore(mesh)
    next_keys = _stage_next(session, list(rotate), progress) if rotate else {}
    fps, deliveries = _psks_for_up(session, gathered, psk_rotation(session, rotate_psk), progress)
    if mesh.keys == "host":
        save_public_keys(mesh, reported(gathered))
    known = {**public_keys(mesh, create=mesh.keys == "controller"), **next_keys}
    return Keys(known, fps, next_keys, deliveries)


def for_check(
    session: Session,
    gathered: Gathered,
    rotate: Collection[str],
    rotate_psk: Collection[str | Link],
) -> Keys:
    """`--check`: the keys `up` (or `rotate-keys`) would use, with stand-ins for those it would
    make. Nothing is made, staged, read from a host, or stored."""
    mesh = session.mesh
    trust_state(session, gathered)
    known = public_keys(mesh)
    if mesh.keys == "host":
        known.update(reported(gathered))
    # A key `up` would make, or `rotate-keys` would replace: one no host has.
    stand_ins = [
        h.name
        for h in mesh.hosts
        if h.name in rotate
        or (h.name not in known and (mesh.keys == "controller" or h.name in session.conns))
    ]
    known.update((n, stand_in_key(n)) for n in stand_ins)
    fps = _psks_for_check(mesh, gathered, session.conns, psk_rotation(session, rotate_psk))
    return Keys(known, fps)


def after_apply(mesh: Mesh, keys: Keys, reports: Mapping[str, HostReport]) -> None:
    """`keys: host`: the new public keys of the hosts whose rotation was applied."""
    if keys.next and mesh.keys == "host":
        save_public_keys(mesh, {n: k for n, k in keys.next.items() if reports[n].ok})


def psk_rotation(session: Session, names: Collection[str | Link]) -> list[Link]:
    """The links whose pre-shared keys `rotate-keys --psk` replaces: those of `names` (hosts,
    or links themselves: `--older-than`'s) with both ends reached (a key given to one end
    only would cut the link)."""
    return [lk for lk in links_of(session.mesh, names) if all(h in session.conns for h in lk.hosts)]


def stand_in_key(name: str) -> str:
    """A well-formed public key no host has, the same on every run (so a check is repeatable)."""
    digest = hashlib.sha256(f"mesh-push --check: the key {name} does not have yet".encode())
    return base64.b64encode(digest.digest()).decode()


def _stage_next(session: Session, names: list[str], progress: Progress) -> dict[str, str]:
    """New key pairs for `names` (rotate-keys); returns their public keys. With `keys: host`
    each host makes its next private key beside the current one (the apply moves it into
    place), so no private key ever leaves a host."""
    mesh = session.mesh
    if mesh.keys == "controller":
        return rotate_controller_keys(mesh, names)
    cmd = programs.rotate_key(mesh)

    def one(name: str) -> str:
        res = session.run(name, cmd, timeout=programs.LOCK_WAIT_S + programs.READ_TIMEOUT_S)
        pub = res.stdout.strip()
        if public_key_problem(pub):
            raise Refused(tail(res.stderr) or "could not make a new key pair")
        return pub

    failed = session.failing("rotate-keys", progress)
    return session.each([n for n in names if n in session.conns], one, failed)


# --------------------------------------------------------------------------- key pairs


class KeystoreError(LocalFileError):
    """The keystore cannot be used as it is: the message says what to do."""


def generate_keypair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    private = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def legacy_hint(mesh: Mesh) -> str:
    """Advice when this inventory's default keystore is missing but the one earlier versions
    used (one per mesh name, shared by every inventory of that name) exists."""
    old = mesh.legacy_keystore
    if old is None or mesh.keystore.exists() or not old.is_dir():
        return ""
    return (
        f" Keys made by an earlier mesh-push are in {old}, which every inventory named "
        f"{mesh.name!r} shared: if they are this inventory's, move that directory to "
        f"{mesh.keystore} (or set mesh.keystore: {old})."
    )


def _open(mesh: Mesh, create: bool) -> PrivateDir | None:
    if create and not mesh.keystore.exists() and (hint := legacy_hint(mesh)):
        raise KeystoreError(
            f"no keystore at {mesh.keystore}, and refusing to make new keys for every host "
            f"meanwhile.{hint}"
        )
    return private_dir(mesh.keystore) if create else open_private_dir(mesh.keystore, False)


def _read_public(store: PrivateDir, name: str) -> str | None:
    if not store.exists(f"{name}.pub"):
        return None
    text = store.read(f"{name}.pub", secret=False).strip()
    if public_key_problem(text):
        raise KeystoreError(
            f"{store.path / (name + '.pub')} does not hold a WireGuard public key: remove it and "
            f"{name}.key, and run `mesh-push up` to make a new pair"
        )
    return text


def _keystore_public(mesh: Mesh, create: bool) -> dict[str, str]:
    store = _open(mesh, create)
    if store is None:
        return {}
    out: dict[str, str] = {}
    with store:
        for h in mesh.hosts:
            if create and not store.exists(f"{h.name}.pub"):
                private, public = generate_keypair()
                # Private first: a crash between the two leaves a key with no .pub, never the
                # reverse.
                store.write(f"{h.name}.key", private + "\n", 0o600)
                store.write(f"{h.name}.pub", public + "\n", 0o600)
            if (pub := _read_public(store, h.name)) is not None:
                out[h.name] = pub
    return out


def ensure_keystore(mesh: Mesh) -> None:
    """`up` with `keys: controller`: a key pair for every host, made now where missing,
    before any host is touched."""
    _keystore_public(mesh, create=True)


def read_private_key(mesh: Mesh, name: str) -> str:
    """`name`'s private key from the keystore, for `up` to send (never printed): a 0600
    regular file, no symbolic link, in a keystore nobody else can write to."""
    try:
        store = open_private_dir(mesh.keystore, create=False)
        if store is None:
            raise KeystoreError(f"no keystore at {mesh.keystore}: run `mesh-push up` to make it")
        with store:
            if not store.exists(f"{name}.key"):
                raise KeystoreError(
                    f"no private key {store.path / (name + '.key')}: remove {name}.pub beside "
                    "it and run `mesh-push up` to make a new pair"
                )
            text = store.read(f"{name}.key").strip()
    except KeystoreError:
        raise
    except LocalFileError as e:
        raise KeystoreError(str(e)) from None
    if public_key_problem(text):  # the same encoding: 44 characters of base64, 32 bytes
        raise KeystoreError(f"{mesh.keystore / (name + '.key')} is not a WireGuard private key")
    return text


def rotate_controller_keys(mesh: Mesh, names: list[str]) -> dict[str, str]:
    """Replace the keystore's pairs for `names`: the old private keys are gone afterwards."""
    out = {}
    with private_dir(mesh.keystore) as store:
        for name in names:
            private, public = generate_keypair()
            store.write(f"{name}.key", private + "\n", 0o600)
            store.write(f"{name}.pub", public + "\n", 0o600)
            out[name] = public
    return out


def public_keys(mesh: Mesh, create: bool = False) -> dict[str, str]:
    """Known public keys: the inventory's own public_key fields win, then the keystore or
    the state file. Only `up` passes `create` (keys: controller: make missing pairs); every
    other command reads and writes nothing."""
    found = _keystore_public(mesh, create) if mesh.keys == "controller" else read_state(mesh)
    for h in mesh.hosts:
        if h.public_key:
            found[h.name] = h.public_key
    return {h.name: found[h.name] for h in mesh.hosts if h.name in found}


# ----------------------------------------------------------------------- pre-shared keys


def generate_psk() -> str:
    """A WireGuard pre-shared key, as `wg genpsk` makes it: 32 random bytes in base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def psk_fingerprint(key: str) -> str:
    """What hosts and the controller compare instead of a pre-shared key: 16 hex digits of
    SHA-256 over `mesh-push psk KEY`, as the host programs compute it (templates: `fp_of`).
    A key of 256 random bits cannot be found from it; it is never printed all the same."""
    return hashlib.sha256(f"mesh-push psk {key}".encode()).hexdigest()[:16]


def psk_name(link: Link) -> str:
    """The keystore file of a link's pre-shared key: its hosts sorted, joined by `+` (a
    character no host name has, so `a-b`+`c` and `a`+`b-c` never meet)."""
    return "+".join(sorted(link.hosts)) + ".psk"


def controller_psks(mesh: Mesh, create: bool, rotate: Collection[Link] = ()) -> dict[Link, str]:
    """`keys: controller`: each link's pre-shared key from the keystore (0600 files), for
    the links that have one. Only `up` passes `create` (missing keys are made) and `rotate`
    (those links' keys are replaced); other commands read and write nothing."""
    wanted = [lk for lk in mesh.links if lk.psk]
    if not wanted:
        return {}
    try:
        store = private_dir(mesh.keystore) if create else open_private_dir(mesh.keystore, False)
        if store is None:
            return {}
        out: dict[Link, str] = {}
        with store:
            for lk in wanted:
                name = psk_name(lk)
                if create and (lk in rotate or not store.exists(name)):
                    store.write(name, generate_psk() + "\n", 0o600)
                if not store.exists(name):
                    continue
                text = store.read(name).strip()
                if public_key_problem(text):  # the same encoding: 44 characters of base64
                    raise KeystoreError(
                        f"{store.path / name} is not a WireGuard pre-shared key: remove it and "
                        "run `mesh-push up` to make a new one"
                    )
                out[lk] = text
        return out
    except KeystoreError:
        raise
    except LocalFileError as e:
        raise KeystoreError(str(e)) from None


def owner(link: Link) -> str:
    """The end that makes a link's key with `keys: host`: the first by name."""
    return min(link.hosts)


def stand_in(link: Link) -> str:
    """`--check`: the fingerprint of a key not made yet (no host has it; the same every run)."""
    text = f"mesh-push --check: a new pre-shared key for {psk_name(link)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def links_of(mesh: Mesh, names: Collection[str | Link]) -> list[Link]:
    """The links with a pre-shared key that are in `names` or touch a host of it (rotate-keys
    --psk)."""
    return [lk for lk in mesh.links if lk.psk and (lk in names or lk.a in names or lk.b in names)]


def _files(gathered: Gathered, name: str) -> dict[str, str]:
    st = gathered.states.get(name)
    return st.psk_files if st is not None else {}


def _psks_for_check(
    mesh: Mesh, gathered: Gathered, connected: Collection[str], rotate: Collection[Link]
) -> dict[Link, str | None]:
    """`--check`: the fingerprints `up` (or `rotate-keys --psk`) would plan, with stand-ins
    for keys it would make. Nothing is made, read from a host, or stored."""
    links = [lk for lk in mesh.links if lk.psk]
    if mesh.keys == "controller":
        stored = controller_psks(mesh, create=False)
        return {
            lk: stand_in(lk)
            if (key := stored.get(lk)) is None or lk in rotate
            else psk_fingerprint(key)
            for lk in links
        }
    todo = _owners(gathered, links, connected, rotate)
    return {**todo.fps, **{lk: stand_in(lk) for made in todo.make.values() for lk in made}}


def _psks_for_up(
    session: Session, gathered: Gathered, rotate: Collection[Link], progress: Progress
) -> tuple[dict[Link, str | None], dict[str, dict[str, str]]]:
    """The links' keys of this run by fingerprint, made where missing (and for `rotate`),
    fetched into memory from the owners where an end needs them; and who gets which."""
    mesh = session.mesh
    links = [lk for lk in mesh.links if lk.psk]
    if not links:
        return {}, {}
    if mesh.keys == "controller":
        known = controller_psks(mesh, create=True, rotate=rotate)
        fps: dict[Link, str | None] = {lk: psk_fingerprint(k) for lk, k in known.items()}
    else:
        known, fps = _from_owners(session, gathered, links, rotate, progress)
    deliveries: dict[str, dict[str, str]] = {}
    for lk, key in known.items():
        fp = psk_fingerprint(key)
        for here in lk.hosts:
            there = lk.other(here)
            if here in session.conns and _files(gathered, here).get(there) != fp:
                deliveries.setdefault(here, {})[there] = key
    return fps, deliveries


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
        cmd = programs.psk_keys(
            session.mesh, [lk.other(name) for lk in made], [lk.other(name) for lk in kept]
        )
        res = session.run(name, cmd, timeout=programs.READ_TIMEOUT_S)
        # Only the lines asked for, each a well-formed key: the output holds secrets and is
        # never kept as it is (no failure tail of stdout).
        got: dict[Link, str] = {}
        for line in res.stdout.splitlines():
            peer, _, key = line.partition(" ")
            if peer in asked and not public_key_problem(key):
                got[asked[peer]] = key
        if len(got) != len(asked):
            why = "could not make or read its pre-shared keys"
            raise Refused(tail(res.stderr) if not res.ok and res.stderr.strip() else why)
        known.update(got)

    session.each(sorted(set(make) | set(read)), one, session.failing("pre-shared keys", progress))
    for lk, key in known.items():
        fps[lk] = psk_fingerprint(key)
    return known, fps
