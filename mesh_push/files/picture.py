"""`--graph FILE`: a graph's DOT text (graph.py) into a file, and drawn as SVG or PNG by
Graphviz's `dot` when the file name asks for it. The I/O edge of graph.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mesh_push.core.problems import printable, shorten
from mesh_push.files.fsutil import LocalFileError, atomic_write

# File name ending → what `dot -T` draws (None: the DOT text itself).
FORMATS: dict[str, str | None] = {".dot": None, ".gv": None, ".svg": "svg", ".png": "png"}
DOT_TIMEOUT_S = 120  # a 50-host mesh takes 0.4 s, a 2,000-host ring 12 s (docs/graph.md)
ERROR_CHARS = 400


class PictureError(LocalFileError):
    """A --graph FILE that cannot be written as asked: exit 2, without a traceback."""


def check(path: Path) -> None:
    """Before any work (status connects to every host): the ending is known, and `dot` is
    there when a drawing is asked for."""
    if path.suffix.lower() not in FORMATS:
        known = ", ".join(FORMATS)
        raise PictureError(f"--graph {path}: the file name must end in one of {known}")
    if FORMATS[path.suffix.lower()] and shutil.which("dot") is None:
        raise PictureError(
            f"--graph {path}: drawing {path.suffix} needs Graphviz's `dot`, which is not "
            f"installed (apt-get install graphviz); --graph {path.with_suffix('.dot')} "
            "writes the DOT text without it"
        )


def write(source: str, path: Path) -> list[Path]:
    """The DOT always; the drawing too where `path` asks for one. Returns the files written."""
    check(path)
    fmt = FORMATS[path.suffix.lower()]
    dot_file = path if fmt is None else path.with_suffix(".dot")
    atomic_write(dot_file, source, 0o644)
    if fmt is None:
        return [dot_file]
    atomic_write(path, _draw(source, fmt, path), 0o644)
    return [dot_file, path]


def _draw(source: str, fmt: str, path: Path) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise PictureError(f"--graph {path}: Graphviz's `dot` is not installed")
    try:
        # The layout engine is in the DOT itself (graph.LAYOUT), so plain `dot` draws it.
        done = subprocess.run(
            [dot, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=DOT_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PictureError(f"--graph {path}: running {dot} failed: {e}") from None
    if done.returncode != 0:
        why = printable(shorten(done.stderr.decode(errors="replace").strip(), ERROR_CHARS))
        raise PictureError(f"--graph {path}: {dot} exited {done.returncode}: {why}")
    return done.stdout


def svg(source: str) -> str | None:
    """The drawing as SVG text, in memory (`status --serve`'s page); None without `dot`, or
    when it fails (the page says so instead)."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    try:
        done = subprocess.run(
            [dot, "-Tsvg"], input=source.encode(), capture_output=True, timeout=DOT_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None
