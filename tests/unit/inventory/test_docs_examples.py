"""The inventories shown in docs/inventory.md load, and give what the text says they give."""

from __future__ import annotations

import re
from pathlib import Path

from mesh_push import inventory
from tests.kit import ROOT

DOC = ROOT / "docs" / "inventory.md"


def _examples() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    return [b for b in blocks if re.search(r"^hosts:", b, re.M)]


def test_the_documented_examples_load(tmp_path: Path) -> None:
    named, full, smallest = _examples()
    path = tmp_path / "names.yaml"
    path.write_text(named)
    mesh = inventory.load(path)
    assert mesh.wg_reresolve == 30
    assert [h.dns_name for h in mesh.hosts] == ["vps1.example.net", "home.dyndns.example", None]
    path = tmp_path / "home.yaml"
    path.write_text(full)
    mesh = inventory.load(path)
    assert mesh.name == "home"
    assert {h.name: h.number for h in mesh.hosts} == {
        "bob": 1,
        "rho": 2,
        "vorke": 3,
        "epsilon": 4,
        "pi0": 5,
    }
    vnis = {frozenset(lk.hosts): lk.vni for lk in mesh.links}
    assert vnis[frozenset(("bob", "rho"))] == 6
    assert vnis[frozenset(("rho", "pi0"))] == 7
    assert mesh.stp.root == "bob"
    assert (mesh.mtu.wireguard, mesh.mtu.bridge) == (1550, 1500)
    path.write_text(smallest)
    assert len(inventory.load(path).links) == 1
