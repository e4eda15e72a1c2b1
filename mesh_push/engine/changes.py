"""Between Render and Apply: which hosts to apply, from pure inputs. A host is applied when its
script differs from the one it last applied, when the one judge finds its state drifted from
the plan (even with the same script), or when its keys change (a rotation, a pre-shared key
given to it)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field

from mesh_push import modes
from mesh_push.host.facts import Gathered
from mesh_push.modes.base import Plan


@dataclass
class Changes:
    scripts: dict[str, str]
    digests: dict[str, str]
    to_apply: list[str]
    unchanged: list[str]
    # Peers left out of a host's script: their public keys are not known yet.
    missing_keys: dict[str, list[str]] = field(default_factory=dict)
    # Hosts whose script is what they last applied but whose state has drifted from it.
    drift: dict[str, list[str]] = field(default_factory=dict)


def digest(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()


def decide(
    p: Plan, scripts: dict[str, str], gathered: Gathered, forced: Collection[str] = ()
) -> Changes:
    # The judge reads the state gathered with the facts: no further round trip.
    seen = modes.of(p.mesh).judge(p, gathered.states, scope=list(scripts))
    out = Changes(scripts, {n: digest(s) for n, s in scripts.items()}, [], [])
    for name in scripts:
        absent = [pe.name for pe in p.host(name).peers if pe.public_key is None]
        if absent:
            out.missing_keys[name] = absent
        facts = gathered.facts.get(name)
        same = facts is not None and facts.applied == out.digests[name]
        verdict = seen.hosts.get(name)
        if same and verdict is not None and verdict.drift:
            out.drift[name] = verdict.drift
        if same and name not in out.drift and name not in forced:
            out.unchanged.append(name)
        else:
            out.to_apply.append(name)
    return out
