"""Rollouts (issue 8) on the lab: batches with a failure budget, and an apply that undoes
itself when it cuts the controller off. Needs root; under CI=true it must run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import lab_exec, lab_inventory, lab_up, mesh_push, templates_with

LAB, NET = labs.lab("mpr")  # tests/labs.py: this module's own


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    inv = lab_inventory(tmp_path_factory.mktemp("rollout") / "lab.yaml", LAB, NET)
    with lab_up(LAB, inv):
        res = mesh_push("up", "-i", str(inv), "--yes", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        yield inv


def hosts(res: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in json.loads(res.stdout)["hosts"]}


def applied(host: str) -> str:
    return lab_exec(LAB, host, "cat", "/var/lib/mesh-push/lab/applied.sha256").stdout


def test_canary_failure_stops_the_rollout(inventory: Path, tmp_path: Path) -> None:
    # Every host's script changes; bob (first of the first batch: static hosts come first) fails.
    inject = '# a new release\n{% if h.name == "bob" %}\nstep "canary"\nexit 4\n{% endif %}\n'
    before = {h: applied(h) for h in ("vorke", "pi0")}
    res = mesh_push(
        "up", "-i", str(inventory), "--yes", "--json", "--no-verify",
        "--serial", "2", "--max-fail", "0", "--templates", str(templates_with(tmp_path, inject)),
    )  # fmt: skip
    assert res.returncode == 1
    h = hosts(res)
    assert h["bob"]["status"] == "failed" and h["bob"]["step"] == "canary"
    assert h["rho"]["status"] in ("changed", "unchanged") and h["rho"]["ok"]  # its batch-mate
    later = [n for n in ("epsilon", "vorke", "pi0") if h[n]["status"] == "not attempted"]
    assert later == ["epsilon", "vorke", "pi0"]
    assert all("rollout stopped before batch 2 of 3" in h[n]["message"] for n in later)
    assert {n: applied(n) for n in ("vorke", "pi0")} == before  # untouched
    res = mesh_push("up", "-i", str(inventory), "--yes", "--json")
    assert res.returncode == 0, res.stdout


def test_budget_lets_a_rollout_continue(inventory: Path, tmp_path: Path) -> None:
    inject = '# another release\n{% if h.name == "bob" %}\nexit 4\n{% endif %}\n'
    res = mesh_push(
        "up", "-i", str(inventory), "--yes", "--json", "--no-verify",
        "--serial", "2", "--max-fail", "20%", "--templates", str(templates_with(tmp_path, inject)),
    )  # fmt: skip
    assert res.returncode == 1  # bob still failed
    h = hosts(res)
    assert [n for n, v in h.items() if not v["ok"]] == ["bob"]
    assert mesh_push("up", "-i", str(inventory), "--yes", "--json").returncode == 0


def test_limit_touches_only_the_named_hosts(inventory: Path, tmp_path: Path) -> None:
    inject = "# limited release\n"
    before = applied("bob")
    res = mesh_push(
        "up", "-i", str(inventory), "--yes", "--json", "--limit", "rho,pi0",
        "--templates", str(templates_with(tmp_path, inject)),
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    h = hosts(res)
    assert h["bob"]["status"] == "excluded" and applied("bob") == before
    assert h["rho"]["ok"] and h["pi0"]["ok"]
    assert mesh_push("up", "-i", str(inventory), "--yes", "--json").returncode == 0


def test_an_apply_that_cuts_us_off_rolls_back_by_itself(inventory: Path, tmp_path: Path) -> None:
    ctl = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", f"{LAB}-ctl"],
                                    capture_output=True, text=True, check=True).stdout)  # fmt: skip
    controller = next(a["local"] for a in ctl[0]["addr_info"] if a["family"] == "inet")
    # The new state gives epsilon's bridge the controller's address: its replies to us stay
    # local, and the SSH path is cut. The old script, run as the rollback, removes it again.
    inject = (
        f'{{% if h.name == "epsilon" %}}\nip addr add {controller}/32 dev "$BR"\n{{% endif %}}\n'
    )
    res = mesh_push(
        "up", "-i", str(inventory), "--yes", "--json", "--no-verify", "--confirm-timeout", "8",
        "--templates", str(templates_with(tmp_path, inject, before='step "bridge up"\n')),
    )  # fmt: skip
    assert res.returncode == 1
    h = hosts(res)
    assert h["epsilon"]["status"] == "rolled back", h["epsilon"]
    assert all(h[n]["ok"] for n in ("bob", "rho", "vorke", "pi0"))
    addrs = lab_exec(LAB, "epsilon", "ip", "-br", "addr")
    assert f" {controller}/32" not in addrs.stdout
    status = mesh_push("status", "-i", str(inventory), "--json")
    assert status.returncode == 0, status.stdout


def test_confirmed_apply_stays(inventory: Path, tmp_path: Path) -> None:
    res = mesh_push(
        "up", "-i", str(inventory), "--yes", "--json", "--confirm-timeout", "20",
        "--templates", str(templates_with(tmp_path, "# confirmed release\n")),
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert {v["message"] for v in hosts(res).values()} == {"confirmed over a fresh connection"}
