"""`transit: false` (issue 35): a host at home linked to two VPSes is a leaf in both modes,
never on the path between two other hosts while another path exists, before and after any
single cut; the lab's version of this is tests/e2e/test_transit_lab.py."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.problems import InventoryError
from mesh_push.modes.evpn.plan import EvpnPlan
from mesh_push.modes.evpn.underlay import after_cut as evpn_after_cut
from mesh_push.modes.stp.pairs import tree_path
from mesh_push.modes.stp.plan import own
from mesh_push.modes.stp.tree import after_cut as stp_after_cut
from mesh_push.modes.topology import edge
from tests.kit import ROOT, plan, script

PI0 = '  pi0:     {number: 5, location: "Roaming", endpoint: nat}\n'


def leaf_mesh(tmp_path: Path, mode: str, transit: bool) -> inventory.Mesh:
    """The lab's five hosts with pi0 (at home) linked to bob as well as rho: the shortest way
    between bob and rho without their own link is then through pi0."""
    source = "lab.yaml" if mode == "stp" else "lab-evpn.yaml"
    text = (ROOT / "inventory" / source).read_text()
    if not transit:
        text = text.replace(PI0, PI0.replace("nat}", "nat, transit: false}"))
    path = tmp_path / "mesh.yaml"
    path.write_text(text + "  - {hosts: [bob, pi0], vni: 8, latency_ms: 6}\n")
    return inventory.load(path)


def crossing(path: list[str], host: str) -> bool:
    return host in path[1:-1]


@pytest.mark.parametrize("transit", [True, False])
def test_stp_a_leaf_is_crossed_by_no_pair_before_or_after_any_cut(
    tmp_path: Path, transit: bool
) -> None:
    mesh = leaf_mesh(tmp_path, "stp", transit)
    p = own(plan(mesh))
    nodes = [h.name for h in mesh.hosts]
    crossed = []
    for cut in [None, *p.tree.weights]:
        outcome = p.tree.expected if cut is None else stp_after_cut(p.tree, nodes, cut)
        for a, b in itertools.combinations([n for n in nodes if n != "pi0"], 2):
            if crossing(tree_path(outcome, nodes, a, b), "pi0"):
                crossed.append((cut, a, b))
    if transit:
        # Without the setting, cutting bob–rho sends them through the Pi (the reason for it).
        assert (edge("bob", "rho"), "bob", "rho") in crossed
    else:
        assert crossed == []
        assert sum(1 for e in p.tree.tree if "pi0" in e) == 1


@pytest.mark.parametrize("transit", [True, False])
def test_evpn_a_leaf_is_a_stub_router(tmp_path: Path, transit: bool) -> None:
    mesh = leaf_mesh(tmp_path, "evpn", transit)
    p = plan(mesh)
    assert isinstance(p, EvpnPlan)
    frr_line = " max-metric router-lsa administrative\n"
    assert (frr_line in script(p, "pi0", allow_missing_peers=True)) is not transit
    assert frr_line not in script(p, "bob", allow_missing_peers=True)
    after = evpn_after_cut(p.underlay, edge("bob", "rho"))
    assert crossing(after.path("bob", "rho"), "pi0") is transit
    if not transit:
        assert "pi0" not in p.underlay.reflectors
        # The leaf's own traffic still goes its shortest way.
        assert after.path("pi0", "bob") == ["pi0", "bob"]


def test_the_stp_root_cannot_be_a_leaf(tmp_path: Path) -> None:
    text = (ROOT / "inventory" / "lab.yaml").read_text()
    text = text.replace(PI0, PI0.replace("nat}", "nat, transit: false}"))
    text = text.replace("stp: {", "stp: {root: pi0, ")
    (tmp_path / "mesh.yaml").write_text(text)
    with pytest.raises(InventoryError, match=r"mesh.stp.root: pi0 has transit: false"):
        inventory.load(tmp_path / "mesh.yaml")


def test_transit_is_true_or_false(tmp_path: Path) -> None:
    text = (ROOT / "inventory" / "lab.yaml").read_text()
    (tmp_path / "mesh.yaml").write_text(text.replace(PI0, PI0.replace("nat}", "nat, transit: 0}")))
    with pytest.raises(InventoryError, match=r"hosts.pi0.transit: must be true or false"):
        inventory.load(tmp_path / "mesh.yaml")
