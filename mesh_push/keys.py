"""Where WireGuard keys live on the controller.

`keys: host`: private keys never leave the hosts; their public keys are cached in the state file
(public data only), so later runs and other controllers reuse them.
`keys: controller`: X25519 pairs are made here, kept in a 0700 keystore, never printed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .fsutil import atomic_write, private_dir
from .inventory import public_key_problem
from .model import Mesh


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


def private_key_files(mesh: Mesh) -> dict[str, Path]:
    return {h.name: mesh.keystore / f"{h.name}.key" for h in mesh.hosts}


def _keystore_public(mesh: Mesh, create: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in mesh.hosts:
        pub = mesh.keystore / f"{h.name}.pub"
        if not pub.exists() and create:
            private, public = generate_keypair()
            private_dir(mesh.keystore)
            # Private first: a crash between the two leaves a key with no .pub, never the reverse.
            atomic_write(mesh.keystore / f"{h.name}.key", private + "\n", 0o600)
            atomic_write(pub, public + "\n", 0o600)
        if pub.exists():
            out[h.name] = pub.read_text().strip()
    return out


def rotate_controller_keys(mesh: Mesh, names: list[str]) -> dict[str, str]:
    """Replace the keystore's pairs for `names`: the old private keys are gone afterwards."""
    private_dir(mesh.keystore)
    out = {}
    for name in names:
        private, public = generate_keypair()
        atomic_write(mesh.keystore / f"{name}.key", private + "\n", 0o600)
        atomic_write(mesh.keystore / f"{name}.pub", public + "\n", 0o600)
        out[name] = public
    return out


def public_keys(mesh: Mesh, create: bool = False) -> dict[str, str]:
    """Known public keys: the inventory's own public_key fields win, then the keystore or
    the state file."""
    found = _keystore_public(mesh, create) if mesh.keys == "controller" else read_state(mesh)
    for h in mesh.hosts:
        if h.public_key:
            found[h.name] = h.public_key
    return {h.name: found[h.name] for h in mesh.hosts if h.name in found}
