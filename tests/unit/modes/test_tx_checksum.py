"""`tx_checksum` (issue 30): the write-up's `ethtool -K WIRE tx off` as a setting, mesh-wide or
per host, in both modes: read from the inventory, rendered into the host script (refused there
without ethtool), judged from the gather, and found by `import` on a hand-built network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.model import Mesh
from mesh_push.engine.keys import stand_in_key
from mesh_push.host import found
from mesh_push.host.state import Link
from mesh_push.modes import checks
from mesh_push.modes.judgement import HostVerdict
from tests import kit
from tests.e2e.labkit import in_mode

LAB = kit.ROOT / "inventory/lab.yaml"
KEYS = {h: stand_in_key(h) for h in ("bob", "rho", "vorke", "epsilon", "pi0")}


def seed(tmp_path: Path, mode: str, mesh_tx: str, rho_tx: str = "") -> Mesh:
    text = in_mode(LAB.read_text(), mode).replace(
        "  keys: host", f"  tx_checksum: {mesh_tx}\n  keys: host"
    )
    if rho_tx:
        text = text.replace("number: 2,", f"number: 2, tx_checksum: {rho_tx},")
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return inventory.load(path)


def test_the_mesh_sets_it_and_a_host_may_say_otherwise(tmp_path: Path) -> None:
    mesh = seed(tmp_path, "stp", "off", rho_tx="true")
    assert {h.name: h.tx_checksum for h in mesh.hosts} == {
        "bob": False, "rho": True, "vorke": False, "epsilon": False, "pi0": False,
    }  # fmt: skip
    assert all(h.tx_checksum is None for h in inventory.load(LAB).hosts)


@pytest.mark.parametrize("mode", ["stp", "evpn"])
def test_the_script_sets_it_on_each_vxlan_device_and_needs_ethtool(
    tmp_path: Path, mode: str
) -> None:
    p = kit.plan(seed(tmp_path, mode, "false"), KEYS)
    script = kit.script(p, "bob")
    assert "TX=off" in script and "ethtool is not installed: apt-get install ethtool" in script
    devices = [ln for ln in script.splitlines() if ln.startswith('ensure_tx "')]
    assert devices == (['ensure_tx "$W" "$TX"'] * 3 if mode == "stp" else ['ensure_tx "$VX" "$TX"'])
    plain = kit.script(kit.plan(inventory.load(LAB), KEYS), "bob")
    assert 'ensure_tx "' not in plain and "apt-get install ethtool" not in plain


def test_a_device_that_differs_is_a_config_finding(tmp_path: Path) -> None:
    p = kit.plan(seed(tmp_path, "stp", "false"), KEYS)
    mesh = p.mesh
    wire = Link("epsilon", True, mesh.mtu.bridge, "vxlan", vni=2, master=mesh.bridge)
    found_on = HostVerdict("bob", True, None)
    checks.vxlan(found_on, "wire epsilon", wire, mesh, 2, "x", None, (False, "on"))
    assert found_on.drift == ["wire epsilon tx checksumming on, planned off"]
    as_planned = HostVerdict("bob", True, None)
    checks.vxlan(as_planned, "wire epsilon", wire, mesh, 2, "x", None, (False, "off"))
    unset = HostVerdict("bob", True, None)
    checks.vxlan(unset, "wire epsilon", wire, mesh, 2, "x", None, (None, "on"))
    assert as_planned.drift == unset.drift == []


def test_import_finds_the_write_ups_ethtool(tmp_path: Path) -> None:
    f = found.parse("=== ip\n" + json.dumps([
        {"ifname": "epsilon", "mtu": 1500, "linkinfo": {"info_kind": "vxlan"}},
    ]) + "\n=== tx-checksum\nepsilon\toff\nnosuch\toff\n")  # fmt: skip
    assert f.interfaces["epsilon"].tx_checksum == "off"
