"""The state file (`<stem>.state.json`, or `mesh.state`): the public keys the hosts reported
(`keys: host`), so later runs and other controllers reuse them. Public data, shared like the
inventory and needing the same trust: it is read only if it is what mesh-push writes, and a
key it alone gives a host that was not reached is refused unless the user trusts it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mesh_push.core.model import Mesh
from mesh_push.core.problems import UsageError
from mesh_push.core.values import public_key_problem
from mesh_push.files.fsutil import LocalFileError, atomic_write
from mesh_push.host.facts import Gathered
from mesh_push.host.state import HostState

if TYPE_CHECKING:
    from mesh_push.engine.session import Session


# The largest state file read: 64 bytes a host would allow a million hosts.
STATE_MAX = 64 << 20


class StateKeysError(UsageError):
    """The state file gives a host a key its peers do not have for it (StateKeysError.hosts),
    and that host was not reached to say which is right."""


def trust_state(session: Session, gathered: Gathered) -> None:
    """StateKeysError for keys of the state file alone that no peer has (distrusted), unless
    the user said --trust-state: the state file could give an unreached host's peers any key."""
    if session.access.trust_state:
        return
    mesh = session.mesh
    state = read_state(mesh) if mesh.keys == "host" else {}
    if bad := distrusted(mesh, gathered, state):
        shown = ", ".join(f"{n} ({state[n][:12]}…)" for n in bad)
        raise StateKeysError(
            f"{mesh.state_file} gives {shown} a public key that none of its peers has for it, "
            "and it was not reached to say which key is right: refusing to give its peers a "
            "key from the state file alone. If that key was made on purpose (a rotation from "
            "another controller), run again with --trust-state; otherwise check the state "
            "file: it needs the same trust as the inventory (docs/security.md)."
        )


def distrusted(mesh: Mesh, gathered: Gathered, state: Mapping[str, str]) -> list[str]:
    """The hosts whose key comes from `state` alone (not reported in this run, not in the
    inventory) while every reached neighbour that has peers has other keys for them."""
    fresh = reported(gathered)
    out = []
    for h in mesh.hosts:
        key = state.get(h.name)
        if key is None or h.name in fresh or h.public_key:
            continue
        neighbours = {lk.other(h.name) for lk in mesh.links if h.name in lk.hosts}
        seen = [
            keys
            for n in sorted(neighbours)
            if n in gathered.states and (keys := peer_keys(gathered.states[n]))
        ]
        if seen and not any(key in keys for keys in seen):
            out.append(h.name)
    return out


def peer_keys(st: HostState) -> set[str]:
    """Every peer's public key on any of the host's WireGuard interfaces."""
    return {k for w in st.wg.values() for k in (*w.endpoints, *w.allowed_ips, *w.handshakes)}


def read_state(mesh: Mesh) -> dict[str, str]:
    """The state file's public keys ({} when there is none yet). LocalFileError when it is
    not a state file mesh-push wrote: it is then neither read nor ever replaced (mesh.state
    could name a file of something else)."""
    path = mesh.state_file
    try:
        with path.open("rb") as f:
            raw = f.read(STATE_MAX + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise LocalFileError(f"cannot read the state file {path}: {e.strerror or e}") from None
    try:
        data = json.loads(raw) if len(raw) <= STATE_MAX else None
    except ValueError:
        data = None
    keys = (
        data.get("public_keys") if isinstance(data, dict) and set(data) == {"public_keys"} else None
    )
    if not isinstance(keys, dict):
        raise LocalFileError(
            f"{path} is not a mesh-push state file (a JSON object with only public_keys, a "
            "mapping of host names to keys): refusing to read or replace it. Move it away; "
            "it holds only public keys, which `up` reads back from the hosts."
        )
    return {str(k): v for k, v in keys.items() if isinstance(v, str) and not public_key_problem(v)}


def save_public_keys(mesh: Mesh, keys: dict[str, str]) -> None:
    """Merge into the state file; hosts not in this inventory keep their entries."""
    merged = {**read_state(mesh), **keys}
    if merged == read_state(mesh) and mesh.state_file.exists():
        return
    body = json.dumps({"public_keys": dict(sorted(merged.items()))}, indent=2) + "\n"
    atomic_write(mesh.state_file, body, 0o644)


def reported(gathered: Gathered) -> dict[str, str]:
    """The public keys the hosts' facts report (keys: host), the well-formed ones."""
    return {
        n: f.public_key
        for n, f in gathered.facts.items()
        if f.public_key and not public_key_problem(f.public_key)
    }
