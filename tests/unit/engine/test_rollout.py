"""`--confirm-timeout`: the window a host gives the controller to confirm a rollout, checked
before anything is done (the rollback itself runs on hosts: tests/root/test_host_lock.py)."""

from __future__ import annotations

import pytest

from mesh_push import cli
from mesh_push.engine import rollout
from tests.kit import ROOT


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 86401, 1e9])
def test_confirm_timeout_out_of_range_is_refused(bad: float) -> None:
    with pytest.raises(rollout.RolloutError, match="above 0, at most 86400"):
        rollout.check_confirm_timeout(bad)


@pytest.mark.parametrize("short", [0.5, 1, 4.9])
def test_confirm_timeout_too_short_is_refused(short: float) -> None:
    with pytest.raises(rollout.RolloutError, match=r"too short .* at least 5 seconds"):
        rollout.check_confirm_timeout(short)


@pytest.mark.parametrize("fine", [None, 5, 8, 60, 86400])
def test_confirm_timeout_in_range_is_taken(fine: float | None) -> None:
    rollout.check_confirm_timeout(fine)


@pytest.mark.parametrize("arg", ["3", "86401", "nan", "inf", "0", "-5"])
def test_cli_refuses_a_bad_confirm_timeout(arg: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed = ROOT / "inventory/seed.yaml"
    code = cli.main(["up", "-i", str(seed), "--yes", f"--confirm-timeout={arg}"])
    assert code == cli.EXIT_USAGE
    assert "--confirm-timeout" in capsys.readouterr().err
