"""Errors in user input, collected (never the first only) with file, YAML path and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

YamlPath = tuple[str | int, ...]


def format_path(path: YamlPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    file: Path
    path: YamlPath
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {format_path(self.path)}: {self.message}"


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

    def add(self, path: YamlPath, message: str) -> None:
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
