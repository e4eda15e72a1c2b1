"""What the one judge says (Mode.judge): the plan and what the hosts have now → is the mesh
healthy, and why not. `status` shows the verdict; `up` asks it twice: before applying (a host
whose state differs from its plan is repaired even when its script has not changed) and after
(verify). Pure.

Each finding is either `config`, something the host script sets and so repairs (a missing
wire, a changed MTU, a lost address), or `runtime`, something only time or the other hosts
can change (a handshake not made yet, a port still learning, a tree that differs).
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from mesh_push.host.state import HostState

REJECT_AFTER_TIME_S = 180  # WireGuard: a session older than this is dead


class Kind(enum.Enum):
    CONFIG = "config"
    RUNTIME = "runtime"


@dataclass(frozen=True)
class Finding:
    kind: Kind
    text: str


@dataclass
class HostVerdict:
    name: str
    reachable: bool
    healthy: bool | None  # None: unknown (unreachable)
    findings: list[Finding] = field(default_factory=list)
    state: HostState | None = None

    @property
    def reasons(self) -> list[str]:
        return [f.text for f in self.findings]

    @property
    def drift(self) -> list[str]:
        """What the host script would put right."""
        return [f.text for f in self.findings if f.kind is Kind.CONFIG]

    def config(self, text: str) -> None:
        self.findings.append(Finding(Kind.CONFIG, text))

    def runtime(self, text: str) -> None:
        self.findings.append(Finding(Kind.RUNTIME, text))


@dataclass
class Judgement:
    healthy: bool
    hosts: dict[str, HostVerdict]
    # One entry per link judged: its hosts, VNI, each end as read (None: not read) and the
    # problems found on it (docs/json.md#status).
    wires: list[dict[str, Any]]
    reasons: list[str]


def start(
    names: list[str],
    states: dict[str, HostState],
    errors: dict[str, str] | None,
    scope: Collection[str] | None,
) -> dict[str, HostVerdict]:
    """A verdict per host of `names` in scope: unreachable ones settled, the others healthy
    until a finding says otherwise (each with its state)."""
    verdicts: dict[str, HostVerdict] = {}
    for name in names:
        if scope is not None and name not in scope:
            continue
        st = states.get(name)
        if st is None:
            why = (errors or {}).get(name) or "state unknown"
            gone = Finding(Kind.RUNTIME, f"unreachable: {why}")
            verdicts[name] = HostVerdict(name, False, None, [gone])
        else:
            verdicts[name] = HostVerdict(name, True, True, state=st)
    return verdicts


def conclude(
    verdicts: dict[str, HostVerdict], wires: list[dict[str, Any]], what: str, overall: list[str]
) -> Judgement:
    """A problem of a wire (`what`: "wire", "link") is a finding at both its ends."""
    for w in wires:
        for problem in w["problems"]:
            for end in w["hosts"]:
                if end in verdicts and verdicts[end].reachable:
                    verdicts[end].runtime(f"{what} {'–'.join(w['hosts'])}: {problem}")
    for v in verdicts.values():
        if v.reachable:
            v.healthy = not v.findings
    healthy = all(v.healthy for v in verdicts.values()) and not overall
    return Judgement(healthy, verdicts, wires, overall)


@dataclass
class Reconvergence:
    """What `up --check` predicts the changes cost in traffic (Mode.reconvergence): `seconds`
    at most, for the pairs whose path crosses a port in `changes` (0: nothing moves)."""

    seconds: float
    changes: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "changes": self.changes}
