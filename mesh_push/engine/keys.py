"""Where WireGuard keys live on the controller.

`keys: host`: private keys never leave the hosts; their public keys are cached in the state file
(public data only), so later runs and other controllers reuse them.
`keys: controller`: X25519 pairs are made here, kept in a 0700 keystore, never printed. Only
`up` and `rotate-keys` make or change them; `plan`, `render` and `status` only read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Collection

from mesh_push.core.model import Link, Mesh
from mesh_push.files.fsutil import (
    LocalFileError,
    PrivateDir,
    atomic_write,
    open_private_dir,
    private_dir,
)
from mesh_push.inventory import public_key_problem


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


def read_state(mesh: Mesh) -> dict[str, str]:
    try:
        data = json.loads(mesh.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    keys = data.get("public_keys", {}) if isinstance(data, dict) else {}
    return {str(k): v for k, v in keys.items() if isinstance(v, str) and not public_key_problem(v)}


def save_public_keys(mesh: Mesh, keys: dict[str, str]) -> None:
    """Merge into the state file; hosts not in this inventory keep their entries."""
    merged = {**read_state(mesh), **keys}
    if merged == read_state(mesh) and mesh.state_file.exists():
        return
    body = json.dumps({"public_keys": dict(sorted(merged.items()))}, indent=2) + "\n"
    atomic_write(mesh.state_file, body, 0o644)


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
