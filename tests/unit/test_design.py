"""The rules of docs/design.md, checked: the import contracts (lint-imports, pyproject.toml),
the mode asked about in one place only, modules of a readable size, and every test that
needs root in a directory that marks it."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from tests.kit import ROOT, TESTS

PACKAGE = ROOT / "mesh_push"
TEMPLATES = ROOT / "templates"
MODULE_LINES_MAX = 500
# Asking which mode: reading `.mode` (the chooser in modes/__init__.py does, nobody else),
# comparing with a mode's name, or reaching into one mode's plan or types.
MODE_NAMES = {"stp", "evpn"}
ONE_MODES_PARTS = {"underlay", "tree", "evpn_host", "stp_host"}
ONE_MODES_TYPES = re.compile(r"(?:Stp|Evpn)[A-Z]\w*")
TEMPLATE_ASKS_MODE = re.compile(r"\bmode\s*(?:==|!=)|\b(?:stp|evpn)\b\s*(?:==|!=)")


def mode_questions(source: str) -> list[tuple[int, str]]:
    """Where Python `source` asks which mode it is in, by its tokens (not its strings)."""
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT)
    ]
    found = []
    for i, t in enumerate(tokens):
        before = tokens[i - 1] if i else None
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        attribute = before is not None and before.string == "."
        if t.type == tokenize.NAME and attribute and t.string == "mode":
            owner = tokens[i - 2].string if i >= 2 else ""
            if owner != "modes":  # the module mesh_push.modes.mode, not a mesh's mode
                found.append((t.start[0], ".mode"))
        elif t.type == tokenize.NAME and attribute and t.string in ONE_MODES_PARTS:
            found.append((t.start[0], f".{t.string}"))
        elif t.type == tokenize.NAME and ONE_MODES_TYPES.fullmatch(t.string):
            found.append((t.start[0], t.string))
        elif t.type == tokenize.STRING and t.string.strip("'\"") in MODE_NAMES:
            near = {x.string for x in (before, after) if x is not None}
            if near & {"==", "!=", "in"}:
                found.append((t.start[0], f"compares with {t.string}"))
    return found


def _outside_modes() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "modes" not in p.relative_to(PACKAGE).parts]


def test_no_code_outside_the_modes_asks_which_mode() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in _outside_modes()
        for line, what in mode_questions(path.read_text())
    ]
    assert not found, "asks which mode it is in, outside mesh_push/modes:\n" + "\n".join(found)


def test_the_mode_is_chosen_in_one_place() -> None:
    readers = [
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if any(what == ".mode" for _line, what in mode_questions(p.read_text()))
    ]
    assert readers == ["mesh_push/modes/__init__.py"]


def test_no_shared_template_asks_which_mode() -> None:
    shared = [
        p
        for p in TEMPLATES.rglob("*.j2")
        if p.relative_to(TEMPLATES).parts[0] not in ("stp", "evpn")
    ]
    assert shared
    found = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in shared
        for m in TEMPLATE_ASKS_MODE.finditer(p.read_text())
    ]
    assert not found, found


def test_the_check_would_catch_a_mode_question() -> None:
    for line in (
        'if mesh.mode == "evpn":\n',
        "if p.underlay is None:\n",
        "x = plan.tree.expected\n",
        "if name == 'stp':\n",
        "ok = isinstance(hp, EvpnHost)\n",
    ):
        assert mode_questions(line), line
    for line in (
        "from mesh_push.modes.mode import Mode\n",
        "mode = modes.of(mesh)\n",
        'print("mesh.mode evpn")\n',
    ):
        assert not mode_questions(line), line


def test_no_module_is_too_long() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MODULE_LINES_MAX
    }
    assert not long, f"modules over {MODULE_LINES_MAX} lines: {long}"


def test_the_import_contracts_hold() -> None:
    """The rules of docs/design.md#the-rules, as pyproject.toml states them for import-linter:
    layers, pure modules, the engine apart from views and cli, rich in the views only, the
    modes independent, no cycles."""
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert tool is not None, "import-linter is a test dependency: pip install -e '.[test]'"
    done = subprocess.run(
        [tool, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


ROOT_ONLY = re.compile(r"require_root\(|ip netns |unshare\b|lab_factory|\blab_up\(")


@pytest.mark.parametrize("folder", ["unit", "properties"])
def test_tests_that_need_root_live_where_their_marker_comes_from(folder: str) -> None:
    """tests/conftest.py marks tests/root, tests/lab and tests/e2e; nothing in tests/unit or
    tests/properties may need root, or it would run unmarked."""
    found = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in (TESTS / folder).rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if ROOT_ONLY.search(line) and p.name != "test_design.py"
    ]
    assert not found, found
