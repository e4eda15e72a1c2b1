"""Every file in bad/ must be rejected: by `inventory.load` with the expected problems, and
by `mesh-push plan` with exit 2, the file's name and no traceback.

bad/expected.yaml maps each file to what it must report: an entry is a substring of
"yaml.path: message", either as a plain string or as {line: N, error: "..."} when the problem
must also point at line N.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_push import inventory
from mesh_push.core.problems import InventoryError, Problem, format_path

HERE = Path(__file__).parent
BAD = HERE / "bad"
ROOT = HERE.parents[2]
EXPECTED: dict[str, list[Any]] = yaml.safe_load((BAD / "expected.yaml").read_text())
CORPUS = sorted(p.name for p in BAD.iterdir() if p.name != "expected.yaml")


def _text(p: Problem) -> str:
    return f"{format_path(p.path)}: {p.message}"


def _entry(e: Any) -> tuple[str, int | None]:
    if isinstance(e, str):
        return e, None
    return e["error"], e.get("line")


def _problems(path: Path) -> list[Problem]:
    with pytest.raises(InventoryError) as info:
        inventory.load(path)
    assert info.value.problems, "InventoryError without problems"
    return info.value.problems


def _cli(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mesh_push.cli", "plan", "-i", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_corpus_is_big_enough_and_fully_described() -> None:
    assert len(CORPUS) >= 140
    assert sorted(EXPECTED) == CORPUS, "every bad file needs an entry in expected.yaml"
    assert all(EXPECTED[name] for name in CORPUS), "every entry needs at least one error"


@pytest.mark.parametrize("name", CORPUS)
def test_load_reports_expected_problems(name: str) -> None:
    problems = _problems(BAD / name)
    for p in problems:
        assert p.file == BAD / name
        assert p.message, p
    texts = [_text(p) for p in problems]
    for want, line in map(_entry, EXPECTED[name]):
        hits = [p for p in problems if want in _text(p)]
        assert hits, f"{name}: no problem contains {want!r}; got:\n" + "\n".join(texts)
        if line is not None:
            assert any(p.line == line for p in hits), (
                f"{name}: {want!r} expected on line {line}, got lines {[p.line for p in hits]}"
            )


# Five, spread over the corpus, in a process of their own as a user runs it; the rest through
# the same entry point in this one (a Python started per file costs more than the checks).
IN_A_PROCESS = CORPUS[:: max(1, len(CORPUS) // 4)]


@pytest.mark.parametrize("name", CORPUS)
def test_cli_plan_exits_2_without_traceback(
    name: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = BAD / name
    if name in IN_A_PROCESS:
        result = _cli(path)
        code, stdout, stderr = result.returncode, result.stdout, result.stderr
    else:
        from mesh_push.cli import main

        monkeypatch.setenv("NO_COLOR", "1")
        monkeypatch.setenv("COLUMNS", "200")
        code = main(["plan", "-i", str(path)])
        stdout, stderr = capfd.readouterr()
    out = stdout + stderr
    assert code == 2, out
    assert "Traceback" not in out
    assert str(path) in stderr
    for want, line in map(_entry, EXPECTED[name]):
        assert want in stderr
        if line is not None:
            assert f"{path}:{line}: {want}" in stderr


def test_every_error_of_a_broken_inventory_is_reported() -> None:
    problems = _problems(BAD / "many_errors.yaml")
    assert len(EXPECTED["many_errors.yaml"]) == 8
    assert len(problems) == 8, "\n".join(str(p) for p in problems)
    # One per line, in file order: nothing stops at the first mistake.
    assert [p.line for p in problems] == [2, 3, 4, 6, 7, 8, 10, 12]
    result = _cli(BAD / "many_errors.yaml")
    assert "the inventory has 8 problem(s)" in result.stderr


def test_a_yaml_syntax_error_points_at_its_line() -> None:
    (problem,) = _problems(BAD / "yaml_syntax_unclosed_bracket.yaml")
    assert problem.line == 5
    assert "not valid YAML" in problem.message
    assert "starts on line 4" in problem.message


def test_duplicate_key_keeps_validating_the_rest(tmp_path: Path) -> None:
    bad = tmp_path / "dup.yaml"
    bad.write_text(
        "hosts:\n"
        "  bob: {endpoint: static, address: 192.0.2.1}\n"
        "  bob: {endpoint: nat}\n"
        "  rho: {endpoint: static}\n"
        "links: [[bob, rho]]\n"
    )
    texts = [_text(p) for p in _problems(bad)]
    assert any("hosts.bob: duplicate key (first on line 2" in t for t in texts)
    assert any("hosts.rho.address: a static host needs" in t for t in texts)


def test_unknown_key_suggests_the_right_one() -> None:
    texts = [_text(p) for p in _problems(BAD / "unknown_host_key_did_you_mean.yaml")]
    assert "hosts.bob.adress: unknown key (did you mean 'address'?)" in texts


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("unknown_top_key_did_you_mean.yaml", 2),  # no "unknown host" for every link
        ("wrong_type_hosts_list.yaml", 1),
        ("wrong_type_host_body_string.yaml", 1),  # no "endpoint: required" below it
        ("link_three_hosts.yaml", 1),  # no "not connected" for the dropped link
        ("address_number.yaml", 1),  # no "a static host needs its address" as well
        ("many_errors.yaml", 8),
    ],
)
def test_one_mistake_one_problem(name: str, count: int) -> None:
    problems = _problems(BAD / name)
    assert len(problems) == count, "\n".join(str(p) for p in problems)


def _fifo(d: Path) -> Path:
    os.mkfifo(d / "pipe.yaml")  # nobody writes to it: reading would block for ever
    return d / "pipe.yaml"


def _too_big(d: Path) -> Path:
    with (d / "big.yaml").open("wb") as f:
        f.truncate(10 * 1024 * 1024)  # sparse, 10 MiB: refused on its size, never read
    return d / "big.yaml"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nowhere.yaml", "no such file"),
        (lambda d: d, "is a directory"),
        (_fifo, "is a FIFO (named pipe), not a regular file"),
        (lambda d: Path("/dev/zero"), "is a character device, not a regular file"),
        (_too_big, "is more than 8 MiB (8388608 bytes), the most an inventory may be"),
    ],
    ids=["missing-file", "directory", "fifo", "dev-zero", "over-8-MiB"],
)
def test_unreadable_paths(tmp_path: Path, make: Any, message: str) -> None:
    path = make(tmp_path)
    (problem,) = _problems(path)
    assert message in problem.message
    result = _cli(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert str(path) in result.stderr
    assert message in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("hosts: {}\n")
    path.chmod(0)
    (problem,) = _problems(path)
    assert "cannot read" in problem.message
