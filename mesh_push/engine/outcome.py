"""What happened to each host in a command: one outcome of a fixed set, and when it went wrong,
one failure in one format (host, step, exit code, the last lines of output). Pure."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

TAIL_LINES = 8


class Outcome(enum.Enum):
    PENDING = "pending"  # not decided yet (never left in a finished report)
    UNREACHABLE = "unreachable"  # no SSH session could be opened
    FAILED = "failed"  # a step failed: sudo, apply, rotate-keys, down, confirm
    SKIPPED = "skipped"  # not touched: its jump host failed
    NOT_ATTEMPTED = "not attempted"  # the rollout stopped before its batch
    ROLLED_BACK = "rolled back"  # applied, not confirmed, went back by itself
    EXCLUDED = "excluded"  # outside --limit
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    WOULD_CHANGE = "would change"  # --check: the changes listed are pending

    @property
    def ok(self) -> bool:
        return self in (Outcome.CHANGED, Outcome.UNCHANGED, Outcome.EXCLUDED, Outcome.WOULD_CHANGE)


@dataclass(frozen=True)
class Failure:
    step: str
    message: str
    exit_code: int | None = None
    output_tail: str = ""  # the last lines the failing command printed (stdout and stderr)

    def describe(self, host: str) -> str:
        code = f" (exit code {self.exit_code})" if self.exit_code is not None else ""
        tail = f"\n{self.output_tail}" if self.output_tail else ""
        return f"{host}: {self.step}{code}: {self.message}{tail}"


class Refused(Exception):
    """A host answered, but its program refused or failed: the message says why, as it is."""


def unexpected(e: BaseException) -> str:
    """An exception nobody planned for (a library's bug, a dropped socket, a bad key file), in
    one line with its type: it fails one host, never the whole command."""
    text = " ".join(str(e).split())
    return f"unexpected {type(e).__name__}" + (f": {text}" if text else "")


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class HostReport:
    name: str
    outcome: Outcome = Outcome.PENDING
    failure: Failure | None = None
    message: str = ""  # what went well, said once (repaired, confirmed, excluded, ...)
    changes: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # found wrong before applying, repaired
    seconds: dict[str, float] = field(default_factory=dict)
    diff: str | None = None  # --check --diff: from the script last applied to the new one

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    def fail(
        self,
        outcome: Outcome,
        step: str,
        message: str,
        exit_code: int | None = None,
        output: str = "",
    ) -> None:
        self.outcome = outcome
        self.failure = Failure(step, message, exit_code, tail(output))

    @property
    def details(self) -> str:
        """The one line (or block) a table shows for this host."""
        if self.failure is not None:
            return self.failure.describe(self.name).partition(": ")[2]
        return self.message

    def as_json(self) -> dict[str, Any]:
        f = self.failure
        return {
            "name": self.name,
            "status": self.outcome.value,
            "ok": self.ok,
            "step": f.step if f else None,
            "message": (f.message if f else self.message) or None,
            "exit_code": f.exit_code if f else None,
            "output_tail": (f.output_tail if f else "") or None,
            "changes": self.changes,
            "drift": self.drift,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }
