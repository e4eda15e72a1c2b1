"""What the tests share: where things are, and the mesh's stages called as the engine calls
them (the mode chosen once, from the mesh), in one line each."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from mesh_push import modes
from mesh_push.core.model import Link, Mesh
from mesh_push.engine.gather import parse_state
from mesh_push.host.state import HostState
from mesh_push.host.templates import load_templates
from mesh_push.modes import scripts
from mesh_push.modes.base import Plan
from mesh_push.modes.judgement import Judgement

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
GOLDEN = TESTS / "golden"
DATA = TESTS / "data"
OBSERVED = DATA / "observe"


def plan(
    mesh: Mesh,
    public_keys: Mapping[str, str] | None = None,
    psk_fps: Mapping[Link, str | None] | None = None,
) -> Plan:
    return modes.of(mesh).plan(mesh, public_keys or {}, psk_fps)


def script(p: Plan, name: str, allow_missing_peers: bool = False, **kwargs: object) -> str:
    env = kwargs.pop("env", None) or load_templates()
    return scripts.host_script(
        modes.of(p.mesh),
        p,
        p.host(name),
        env,
        allow_missing_peers,
        **kwargs,  # type: ignore[arg-type]
    )


def judge(
    p: Plan,
    states: dict[str, HostState],
    errors: dict[str, str] | None = None,
    scope: Collection[str] | None = None,
) -> Judgement:
    return modes.of(p.mesh).judge(p, states, errors, scope)


def state(text: str, mesh: Mesh) -> HostState:
    """A host's state as the engine parses it from the gather's output."""
    return parse_state(text, mesh)
