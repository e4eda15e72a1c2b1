"""Errors in user input, collected (never the first only) with file, YAML path and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

YamlPath = tuple[str | int, ...]

# Characters that reorder the text shown around them (bidirectional overrides and isolates):
# a name holding one could make a terminal line read differently from what it is.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
PART_MAX = 64  # characters of one YAML path part shown in a problem
MESSAGE_MAX = 400  # characters of a problem's message shown


def is_control(ch: str) -> bool:
    """C0 and C1 control characters, DEL, and the bidirectional controls."""
    o = ord(ch)
    return o < 0x20 or 0x7F <= o <= 0x9F or ch in BIDI_CONTROLS


def printable(text: str, keep: str = "") -> str:
    """`text` with every control character (but those in `keep`) shown as an escape, so that
    nothing read from an inventory or a host acts on the terminal: ESC becomes `\\x1b`."""
    if not any(is_control(ch) and ch not in keep for ch in text):
        return text
    out = []
    for ch in text:
        if ch in keep or not is_control(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


def shorten(text: str, most: int) -> str:
    return text if len(text) <= most else f"{text[:most]}… ({len(text)} characters)"


def format_path(path: YamlPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = shorten(printable(part), PART_MAX)
            out += f".{text}" if out else text
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    file: Path
    path: YamlPath
    line: int | None
    message: str

    def __str__(self) -> str:
        where = printable(str(self.file)) + (f":{self.line}" if self.line else "")
        return f"{where}: {format_path(self.path)}: {shorten(printable(self.message), MESSAGE_MAX)}"


class UsageError(Exception):
    """A user's mistake outside the inventory (an option, a host name, a missing key): the
    command stops before it changes anything; printed without a traceback, exit 2."""


class InventoryError(Exception):
    """Raised with every problem found; the CLI prints them all and exits 2."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class Problems:
    def __init__(self, file: Path, lines: dict[YamlPath, int] | None = None) -> None:
        self.file = file
        self.lines = lines or {}
        self.items: list[Problem] = []
        # Values the YAML reader could not read, already reported: nothing more is said there.
        self.silenced: set[YamlPath] = set()

    def add(self, path: YamlPath, message: str) -> None:
        if path in self.silenced:
            return
        line = None
        # The nearest enclosing node with a known line is the best pointer we have.
        for cut in range(len(path), -1, -1):
            line = self.lines.get(path[:cut])
            if line is not None:
                break
        self.items.append(Problem(self.file, path, line, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise InventoryError(self.items)
