"""The planner on the write-up's five hosts, and 802.1D simulation on hand-made graphs."""

from __future__ import annotations

import itertools

from mesh_push import inventory
from mesh_push.modes import plan as common
from mesh_push.modes.stp import tree as stp
from mesh_push.modes.stp.pairs import tree_path
from mesh_push.modes.stp.plan import StpPlan, own
from mesh_push.modes.stp.simulate import Outcome, simulate
from mesh_push.modes.topology import edge
from tests.kit import ROOT, plan

AMERICA = {"epsilon", "vorke"}


def seed() -> StpPlan:
    return own(plan(inventory.load(ROOT / "inventory/seed.yaml")))


def test_seed_hosts_links_vnis() -> None:
    p = seed()
    assert [h.name for h in p.hosts] == ["bob", "rho", "vorke", "epsilon", "pi0"]
    wg_addresses = {str(p.stp_host(h.name).wg_address) for h in p.hosts}
    assert wg_addresses == {f"10.88.88.{n}/24" for n in range(1, 6)}
    vnis = {frozenset((lk.a, lk.b)): lk.vni for lk in p.mesh.links}
    assert vnis[frozenset(("epsilon", "vorke"))] == 1
    assert vnis[frozenset(("epsilon", "bob"))] == 2
    assert vnis[frozenset(("vorke", "bob"))] == 3
    assert vnis[frozenset(("epsilon", "rho"))] == 4
    assert vnis[frozenset(("vorke", "rho"))] == 5
    assert len(vnis) == 7 and len(set(vnis.values())) == 7


def test_peers_endpoints_and_keepalive() -> None:
    p = seed()
    rho = p.host("rho")
    peers = {pe.name: pe for pe in rho.peers}
    assert set(peers) == {"bob", "epsilon", "vorke", "pi0"}
    assert peers["bob"].endpoint == "203.0.113.1:56560"
    assert peers["vorke"].endpoint is None and peers["pi0"].endpoint is None
    assert all(pe.keepalive is None for pe in rho.peers)  # rho is static
    pi0 = p.stp_host("pi0")
    assert [(pe.name, pe.keepalive) for pe in pi0.peers] == [("rho", 25)]
    assert [pe.allowed_ips_text for pe in pi0.peers] == ["10.88.88.2/32"]
    assert [(w.name, w.vni, str(w.remote)) for w in pi0.wires] == [("rho", 7, "10.88.88.2")]


def test_waves_static_then_the_rest_and_jump_hosts_first() -> None:
    assert seed().waves == (("bob", "rho", "epsilon"), ("vorke", "pi0"))


def test_planned_tree_never_crosses_the_atlantic_twice() -> None:
    p = seed()
    names = [h.name for h in p.hosts]
    exp = p.tree.expected
    for a, b in (("epsilon", "vorke"), ("bob", "rho")):
        assert tree_path(exp, names, a, b) == [a, b]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            path = tree_path(exp, names, a, b)
            crossings = sum((x in AMERICA) != (y in AMERICA) for x, y in itertools.pairwise(path))
            assert crossings <= 1, (a, b, path)
    assert len(exp.blocking) == 3
    assert p.tree.priority[p.tree.root] == 4096
    assert p.tree.backup is not None and p.tree.priority[p.tree.backup] == 8192


def test_bridge_macs_are_stable_and_locally_administered() -> None:
    mac = common.bridge_mac("bob")
    assert mac == common.bridge_mac("bob") != common.bridge_mac("rho")
    first = int(mac.split(":")[0], 16)
    assert first & 0b10 and not first & 0b01


def _sim(edges: list[tuple[str, str]], cost: dict[tuple[str, str], int] | None = None,
         prio: dict[str, int] | None = None) -> Outcome:  # fmt: skip
    nodes = sorted({n for e in edges for n in e})
    macs = {n: f"02:00:00:00:00:{i + 1:02x}" for i, n in enumerate(nodes)}
    pc = {}
    for a, b in edges:
        c = (cost or {}).get(edge(a, b), 100)
        pc[(a, b)] = pc[(b, a)] = c
    priority = {n: (prio or {}).get(n, 32768) for n in nodes}
    return simulate(nodes, [edge(a, b) for a, b in edges], priority, macs, pc)


def test_802_1d_triangle_lowest_mac_is_root_and_one_port_blocks() -> None:
    out = _sim([("a", "b"), ("b", "c"), ("a", "c")])
    assert out.root == "a"
    # b and c tie on cost to a; on the b–c segment b wins on bridge id, so c blocks.
    assert out.blocking == {("c", "b")}


def test_802_1d_priority_beats_mac_and_cost_decides_the_blocked_port() -> None:
    out = _sim(
        [("a", "b"), ("b", "c"), ("a", "c")],
        cost={("a", "c"): 500},
        prio={"c": 4096},
    )
    assert out.root == "c"
    assert out.root_port["a"] == "b"  # 100 + 100 through b beats 500 direct
    assert out.blocking == {("a", "c")}


def test_802_1d_parallel_paths_tie_broken_by_bridge_id_then_port() -> None:
    # Square a-b-d, a-c-d: d reaches root a at equal cost through b and c; b has the lower id.
    out = _sim([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    assert out.root_port["d"] == "b"
    assert out.blocking == {("d", "c")}


def test_cut_predicts_failover() -> None:
    p = seed()
    names = [h.name for h in p.hosts]
    after = stp.after_cut(p.tree, names, edge("bob", "rho"))
    assert tree_path(after, names, "bob", "rho") != []
    assert edge("bob", "rho") not in after.forwarding_edges
