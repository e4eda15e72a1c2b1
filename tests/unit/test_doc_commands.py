"""Every `mesh-push ...` command line in a code block of README.md and docs/ parses against
the real command line: the options it names exist, and take the values it gives them. A line
not meant to run as written says so with `# example` after it."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_push import cli
from tests.kit import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUBCOMMANDS = set(cli.CONTRACT) | {"lab"}
# A command line as documents write it: `mesh-push`, `.venv/bin/mesh-push`, `sudo mesh-push`,
# after a shell prompt or not, then a command (or an option, such as --help).
CALL = re.compile(r"^(?:\$\s+)?(?:sudo\s+(?:-\S+\s+)*)?(?:\S*/)?mesh-push\s+(\S+)")


def command_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, the words after `mesh-push`) of every command line in a code block of
    `path`, up to the end of the command (a comment, a pipe, `&&`, `;`, a redirection)."""
    in_block = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        m = CALL.match(line.strip())
        if not in_block or "# example" in line or not m:
            continue
        if m.group(1) not in SUBCOMMANDS and not m.group(1).startswith("-"):
            continue  # a message that starts with the program's name
        rest = line.strip()[m.start(1) :].split(" #", 1)[0]
        rest = re.split(r"\s(?:\||&&|;|>|2>)\s", rest)[0].strip().rstrip("\\").strip()
        yield n, rest


def cases() -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for n, rest in command_lines(path):
            out.append((f"{path.relative_to(ROOT)}:{n}", rest))
    return out


def test_the_documents_have_command_lines() -> None:
    assert len(cases()) > 30


@pytest.mark.parametrize(("where", "rest"), cases(), ids=[w for w, _ in cases()])
def test_a_documented_command_line_parses(where: str, rest: str) -> None:
    try:
        argv = shlex.split(rest)
    except ValueError as e:
        pytest.fail(f"{where}: {rest!r}: {e}")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.build_parser().parse_args(argv)
        except SystemExit as e:
            # --help and --version exit 0; a mistake exits 2 with its reason on stderr.
            assert e.code == 0, f"{where}: mesh-push {rest}\n{err.getvalue()}"


def test_the_check_catches_a_wrong_line(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```\n$ mesh-push up -i m.yaml --nope   # a comment\nmesh-push: a message\n"
        "mesh-push plan -i m.yaml --bad  # example\n```\nmesh-push up --nope in prose\n"
    )
    assert list(command_lines(doc)) == [(2, "up -i m.yaml --nope")]
    with pytest.raises(AssertionError, match="unrecognized arguments: --nope"):
        test_a_documented_command_line_parses("doc.md:2", "up -i m.yaml --nope")
