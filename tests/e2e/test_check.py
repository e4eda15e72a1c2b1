"""`up --check`, `rotate-keys --check`, `down --check` on the lab (issue 16): on fresh hosts,
on a converged mesh and after a template change, each host says what the real command would
change, and nothing on any host changes (labkit.snapshot before and after). The drifted host
is tests/e2e/test_drift.py's: there each kind of drift is checked, then repaired, and the two
lists must be the same. Needs root; under CI=true it must run."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import HOSTS, lab_inventory, lab_up, mesh_push, snapshot, templates_with
from tests.schemas import validate

LAB, NET = labs.lab("mpq")  # tests/labs.py: this module's own
PENDING = 3  # cli.EXIT_PENDING

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    inv = lab_inventory(tmp_path_factory.mktemp("check") / "lab.yaml", LAB, NET)
    with lab_up(LAB, inv):
        yield inv


def snapshots() -> dict[str, str]:
    return {h: snapshot(LAB, h) for h in HOSTS}


def checked(*args: str, code: int) -> dict[str, dict[str, Any]]:
    """Run a --check command; it must change nothing anywhere and exit `code`."""
    before = snapshots()
    res = mesh_push(*args, "--check", "--json")
    assert res.returncode == code, res.stdout + res.stderr
    after = snapshots()
    for h in HOSTS:
        moved = difflib.unified_diff(before[h].splitlines(), after[h].splitlines(), lineterm="")
        assert after[h] == before[h], (args, h, "\n".join(moved))
    doc = json.loads(res.stdout)
    validate(doc, "run")
    assert doc["check"] is True and doc["pending"] is (code == PENDING)
    return {h["name"]: h for h in doc["hosts"]}


def applied(*args: str) -> dict[str, list[str]]:
    res = mesh_push(*args, "--yes", "--json", "--no-verify")
    assert res.returncode == 0, res.stdout + res.stderr
    return {h["name"]: h["changes"] for h in json.loads(res.stdout)["hosts"]}


def test_a_fresh_mesh_then_a_converged_one(inventory: Path) -> None:
    """Nothing there yet: every host would create its interfaces and peers (keys stood in for:
    none is made). The real `up` then says the same, but for the key it made in its facts."""
    first = checked("up", "-i", str(inventory), code=PENDING)
    for h in HOSTS:
        assert first[h]["status"] == "would change", first[h]
        changes = first[h]["changes"]
        assert "private key generated" in changes
        assert any(c.startswith("wg0 created (") for c in changes), changes
        assert "internet created" in changes
        assert all(
            c.startswith(("private key", "wg0 ", "internet ", "wire ", "boot unit"))
            for c in changes
        ), changes
    # No key was made: the facts of the real `up` make them, and the hosts still have none.
    real = applied("up", "-i", str(inventory))
    for h in HOSTS:
        want = [c for c in first[h]["changes"] if c != "private key generated"]
        assert real[h] == want, (h, real[h], want)

    again = checked("up", "-i", str(inventory), code=0)
    assert {h: r["status"] for h, r in again.items()} == dict.fromkeys(HOSTS, "unchanged")
    assert all(r["changes"] == [] and r["diff"] is None for r in again.values())
    text = mesh_push("up", "-i", str(inventory), "--check")
    assert text.returncode == 0 and "nothing would change" in text.stdout, text.stdout


def test_a_new_template_shows_its_diff(inventory: Path, tmp_path: Path) -> None:
    release = templates_with(tmp_path, "# release 2\n")
    hosts = checked(
        "up", "-i", str(inventory), "--diff", "--templates", str(release), code=0
    )  # fmt: skip
    for h in HOSTS:
        diff = hosts[h]["diff"]
        assert diff.startswith(f"--- {h}: applied\n+++ {h}: new\n"), diff
        assert "\n+# release 2\n" in diff and diff.count("\n+") == 1 + 1, diff
    res = mesh_push("up", "-i", str(inventory), "--diff")
    assert res.returncode == 2 and "--diff goes with --check" in res.stderr


def test_rotate_keys_check(inventory: Path) -> None:
    hosts = checked("rotate-keys", "-i", str(inventory), "rho", code=PENDING)
    assert hosts["rho"]["changes"] == ["private key rotated", "wg0 private key set"]
    for h in HOSTS:
        if h != "rho":
            assert "wg0 peer rho" in hosts[h]["changes"] or not hosts[h]["changes"], hosts[h]
    peers_of_rho = [h for h in HOSTS if h != "rho" and hosts[h]["changes"]]
    assert peers_of_rho, hosts
    for h in peers_of_rho:
        assert len(hosts[h]["changes"]) == 2 and hosts[h]["changes"][1].endswith(" removed")


def test_down_check_then_down(inventory: Path) -> None:
    hosts = checked("down", "-i", str(inventory), code=PENDING)
    real = mesh_push("down", "-i", str(inventory), "--yes", "--json")
    assert real.returncode == 0, real.stdout + real.stderr
    for h in json.loads(real.stdout)["hosts"]:
        assert h["changes"] == hosts[h["name"]]["changes"], h
    after = checked("down", "-i", str(inventory), code=0)
    assert all(r["status"] == "unchanged" for r in after.values())
