"""`measure --diff` (issue 33): what new latencies change in the plan, in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_push import inventory, modes
from mesh_push.engine import offline
from tests import kit
from tests.e2e.labkit import in_mode

LINK = "{hosts: [bob, rho], vni: 6, latency_ms: 12}"


@pytest.mark.parametrize("mode", ["stp", "evpn"])
def test_a_slower_link_changes_the_paths_over_it(tmp_path: Path, mode: str) -> None:
    text = in_mode((kit.ROOT / "inventory/lab.yaml").read_text(), mode)
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    mesh = inventory.load(path)
    slower = inventory.parse(text.replace(LINK, LINK.replace("12}", "400}")), path)
    mode_ = modes.of(mesh)
    assert mode_.plan_changes(offline.plan(mesh), offline.plan(mesh)) == []
    changes = mode_.plan_changes(offline.plan(mesh), offline.plan(slower))
    assert "bob ↔ rho: 12 → 165 ms (path bob → rho; now bob → epsilon → rho)" in changes
    if mode == "stp":
        assert changes[0] == "root: bob → epsilon"
        assert "rho's end of rho–bob: forwarding → blocking" in changes
    else:
        assert all("↔" in c for c in changes), changes
