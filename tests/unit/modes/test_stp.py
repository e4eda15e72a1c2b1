"""Failover costs: after any single tree-wire cut, 802.1D converges to the best swap."""

from __future__ import annotations

import itertools
import random
from collections import deque
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.modes import plan as common
from mesh_push.modes.stp import tree as stp
from mesh_push.modes.stp.pairs import tree_path
from mesh_push.modes.stp.plan import StpPlan, own
from mesh_push.modes.stp.simulate import simulate
from mesh_push.modes.topology import Edge, edge
from tests.kit import ROOT, plan

AMERICA = {"epsilon", "vorke"}


def seed() -> StpPlan:
    return own(plan(inventory.load(ROOT / "inventory/seed.yaml")))


def crossings(path: list[str]) -> int:
    return sum((x in AMERICA) != (y in AMERICA) for x, y in itertools.pairwise(path))


def fewest_crossings(nodes: list[str], edges: list[Edge], a: str) -> dict[str, int]:
    """0-1 BFS: the fewest Atlantic crossings any path from `a` can make in this graph."""
    adj: dict[str, list[str]] = {n: [] for n in nodes}
    for x, y in edges:
        adj[x].append(y)
        adj[y].append(x)
    best = {a: 0}
    queue = deque([a])
    while queue:
        cur = queue.popleft()
        for nb in adj[cur]:
            c = best[cur] + ((cur in AMERICA) != (nb in AMERICA))
            if c < best.get(nb, 1 << 30):
                best[nb] = c
                if c == best[cur]:
                    queue.appendleft(nb)
                else:
                    queue.append(nb)
    return best


def test_seed_tree_and_costs_within_kernel_limits() -> None:
    t = seed().tree
    assert t.tree == {
        edge("epsilon", "vorke"),
        edge("bob", "epsilon"),
        edge("bob", "rho"),
        edge("pi0", "rho"),
    }
    assert all(1 <= c <= 65535 for c in t.port_cost.values())
    for e in t.tree:  # tree wires cost their latency
        assert t.port_cost[e] == t.weights[e]


@pytest.mark.parametrize("cut", ["bob-epsilon", "epsilon-vorke", "bob-rho", "pi0-rho"])
def test_seed_no_pair_crosses_the_atlantic_twice_after_any_cut(cut: str) -> None:
    p = seed()
    names = [h.name for h in p.hosts]
    e = edge(*cut.split("-"))
    assert e in p.tree.tree
    after = stp.after_cut(p.tree, names, e)
    remaining = [x for x in p.tree.weights if x != e]
    for i, a in enumerate(names):
        allowed = fewest_crossings(names, remaining, a)
        for b in names[i + 1 :]:
            path = tree_path(after, names, a, b)
            if b not in allowed:
                assert path == []
                continue
            assert path, (cut, a, b)
            assert crossings(path) <= max(1, allowed[b]), (cut, a, b, path)


def test_seed_bob_epsilon_cut_keeps_epsilon_vorke_direct() -> None:
    """The write-up's failure: without bob–epsilon, vorke must not take its own Atlantic wire."""
    p = seed()
    names = [h.name for h in p.hosts]
    after = stp.after_cut(p.tree, names, edge("bob", "epsilon"))
    assert tree_path(after, names, "vorke", "epsilon") == ["vorke", "epsilon"]
    assert after.forwarding_edges == (p.tree.tree - {edge("bob", "epsilon")}) | {
        edge("epsilon", "rho")
    }
    assert p.tree.replacement[edge("bob", "epsilon")] == edge("epsilon", "rho")


def _best_swap(nodes: list[str], tree: frozenset[Edge], w: dict[Edge, float],
               e: Edge) -> tuple[float, set[Edge]]:  # fmt: skip
    costs = {}
    for f in w:
        if f in tree:
            continue
        cand = (tree - {e}) | {f}
        if stp._spanning(nodes, tuple(cand)):
            costs[f] = stp.routing_cost(nodes, cand, w)
    if not costs:
        return 0.0, set()
    best = min(costs.values())
    return best, {f for f, c in costs.items() if abs(c - best) < 1e-6}


def test_seed_each_cut_converges_to_its_best_swap() -> None:
    p = seed()
    names = [h.name for h in p.hosts]
    for e in p.tree.tree:
        after = stp.after_cut(p.tree, names, e)
        best, fs = _best_swap(names, p.tree.tree, p.tree.weights, e)
        if not fs:
            assert e not in p.tree.replacement
            continue
        assert p.tree.replacement[e] in fs
        assert after.forwarding_edges == (p.tree.tree - {e}) | {p.tree.replacement[e]}
        # Static costs keep the other tree wires: the best swap is all they can give. Here it
        # is also the minimum routing-cost tree of what remains.
        rest = {x: v for x, v in p.tree.weights.items() if x != e}
        optimum, _ = stp.best_tree(names, rest)
        assert best == pytest.approx(stp.routing_cost(names, optimum, rest))


def random_graph(rng: random.Random, n: int, extra: int) -> tuple[list[str], dict[Edge, float]]:
    nodes = [f"h{i}" for i in range(n)]
    w: dict[Edge, float] = {}
    for i in range(1, n):
        w[edge(nodes[i], nodes[rng.randrange(i)])] = float(rng.randint(1, 100))
    pairs = [edge(a, b) for a, b in itertools.combinations(nodes, 2)]
    rng.shuffle(pairs)
    for e in pairs[:extra]:
        w.setdefault(e, float(rng.randint(1, 100)))
    return nodes, w


def test_swap_scores_agree_with_routing_cost() -> None:
    rng = random.Random(1)
    for _ in range(40):
        nodes, w = random_graph(rng, rng.randint(4, 12), rng.randint(1, 10))
        tree, _ = stp.best_tree(nodes, w)
        scores = stp.swap_scores(nodes, tree, w)
        assert scores is not None
        for e, cands in scores.items():
            brute = {}
            for f in w:
                if f not in tree and stp._spanning(nodes, tuple((tree - {e}) | {f})):
                    brute[f] = stp.routing_cost(nodes, (tree - {e}) | {f}, w)
            assert {f for _, f in cands} == set(brute)
            if len(cands) > 1:
                (s0, f0), *rest = cands
                for s, f in rest:  # equal up to one constant per cut
                    assert s - s0 == pytest.approx(brute[f] - brute[f0])


def _mesh_plan(nodes: list[str], w: dict[Edge, float]) -> stp.TreePlan:
    tree, method = stp.best_tree(nodes, w)
    medians = stp._medians(nodes, tree, w)
    root = medians[0]
    priority = dict.fromkeys(nodes, stp.DEFAULT_PRIORITY)
    priority[root] = stp.ROOT_PRIORITY
    priority[medians[1]] = stp.BACKUP_PRIORITY
    macs = {n: common.bridge_mac(n) for n in nodes}
    level, replacement = stp.failover_order(nodes, tree, w)
    cost = stp._costs(nodes, tree, w, {}, level, root)
    pc = {}
    for (a, b), c in cost.items():
        pc[(a, b)] = pc[(b, a)] = c
    expected = simulate(nodes, list(w), priority, macs, pc)
    tp = stp.TreePlan(w, tree, method, root, medians[1], macs, priority, pc, expected,
                      stp.routing_cost(nodes, tree, w), replacement)  # fmt: skip
    return tp


def test_random_meshes_tree_stands_and_each_cut_takes_one_wire() -> None:
    """Whole tree: exactly the planned tree forwards. One tree wire cut: the tree minus it
    plus exactly one non-tree wire; the planned best swap whenever the failover order could
    put it first among the wires crossing that cut (it nearly always can)."""
    rng = random.Random(7)
    honoured = total = 0
    for _ in range(60):
        nodes, w = random_graph(rng, rng.randint(4, 10), rng.randint(1, 9))
        tp = _mesh_plan(nodes, w)
        assert all(1 <= c <= 65535 for c in tp.port_cost.values())
        assert tp.expected.forwarding_edges == tp.tree
        level, _ = stp.failover_order(nodes, tp.tree, w)
        scores = stp.swap_scores(nodes, tp.tree, w)
        assert scores is not None
        for e in tp.tree:
            after = stp.after_cut(tp, nodes, e)
            cands = {f for _, f in scores[e]}
            if not cands:
                continue
            added = after.forwarding_edges - tp.tree
            assert len(added) == 1 and added <= cands
            assert after.forwarding_edges == (tp.tree - {e}) | added
            want = tp.replacement[e]
            total += 1
            if all(level[want] < level[f] for f in cands - {want}):
                assert added == {want}
                honoured += 1
    assert honoured >= 0.9 * total, (honoured, total)


def test_costs_fit_the_kernel_for_large_meshes() -> None:
    rng = random.Random(3)
    nodes, w = random_graph(rng, 300, 400)
    tp = _mesh_plan(nodes, w)
    assert all(1 <= c <= 65535 for c in tp.port_cost.values())
    assert tp.expected.forwarding_edges == tp.tree


def test_failover_order_without_non_tree_wires() -> None:
    nodes = ["a", "b", "c"]
    w = {edge("a", "b"): 5.0, edge("b", "c"): 7.0}
    level, replacement = stp.failover_order(nodes, frozenset(w), w)
    assert level == {} and replacement == {}


def test_measure_parses_pings_and_edits_only_latencies() -> None:
    from mesh_push.engine import measure
    from mesh_push.inventory import latencies

    out = (
        "=== mesh-push measure rho\n"
        "64 bytes from 10.88.88.2: icmp_seq=1 ttl=64 time=0.210 ms\n"
        "64 bytes from 10.88.88.2: icmp_seq=2 ttl=64 time=0.090 ms\n"
        "64 bytes from 10.88.88.2: icmp_seq=3 ttl=64 time=0.100 ms\n"
        "3 packets transmitted, 3 received, 0% packet loss, time 402ms\n"
        "=== mesh-push measure pi0\n"
        "3 packets transmitted, 0 received, 100% packet loss, time 2040ms\n"
    )
    ends = measure.parse_pings(out)
    assert ends["rho"].median_ms == pytest.approx(0.1) and ends["rho"].received == 3
    assert ends["pi0"].median_ms is None and ends["pi0"].error == "no reply"
    text = (ROOT / "inventory/seed.yaml").read_text()
    new = {frozenset(("bob", "rho")): measure.format_ms(11.456)}
    edited = latencies.rewrite(text, new)
    latencies.check_rewrite(text, edited, new)
    assert edited == text.replace("{hosts: [bob, rho], vni: 6, latency_ms: 12}",
                                  "{hosts: [bob, rho], vni: 6, latency_ms: 11.46}")  # fmt: skip
    assert measure.format_ms(0.0001) == "0.01"


def test_measure_write_keeps_a_symlinked_inventory_a_link(tmp_path: Path) -> None:
    from mesh_push.inventory import latencies

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "seed.yaml").write_text((ROOT / "inventory/seed.yaml").read_text())
    (repo / "seed.yaml").chmod(0o640)
    link = tmp_path / "mesh.yaml"
    link.symlink_to(repo / "seed.yaml")
    new = {frozenset(("bob", "rho")): "11.46"}
    assert latencies.write(link, link.read_text(), new) == str(link)
    assert link.is_symlink() and "latency_ms: 11.46}" in (repo / "seed.yaml").read_text()
    assert (repo / "seed.yaml").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in repo.iterdir()) == ["seed.yaml"]


def test_a_wire_prefix_names_the_wires_and_the_judge_follows(tmp_path: Path) -> None:
    """mesh.stp.wire_prefix: two meshes can each have a wire to the same peer on one host."""
    import dataclasses

    from mesh_push import modes
    from tests.unit.modes.test_judge import captured, keys, lab_mesh

    m = lab_mesh()
    prefixed = dataclasses.replace(m, stp=dataclasses.replace(m.stp, wire_prefix="a-"))
    p = own(plan(prefixed, keys()))
    rho = p.stp_host("rho")
    assert [(w.name, w.peer) for w in rho.wires] == [
        ("a-bob", "bob"), ("a-epsilon", "epsilon"), ("a-pi0", "pi0"), ("a-vorke", "vorke")
    ]  # fmt: skip
    # The captured hosts have wires without the prefix: each is missing, and the others are
    # this mesh's no more (unplanned interfaces are for the host script, not the judge).
    j = modes.of(prefixed).judge(p, dict(captured()))
    assert "wire a-bob missing" in j.hosts["rho"].drift


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        ("a b", "holds ' '"),
        ("x" * 15, "shorter than 15 bytes"),
        ("longprefix-", "would be longer than an interface name"),
    ],
)
def test_bad_wire_prefixes(tmp_path: Path, prefix: str, problem: str) -> None:
    from mesh_push.core.problems import InventoryError

    inv = tmp_path / "seed.yaml"
    text = (ROOT / "inventory/seed.yaml").read_text()
    inv.write_text(text.replace("mesh:\n", f"mesh:\n  stp: {{wire_prefix: '{prefix}'}}\n", 1))
    with pytest.raises(InventoryError) as e:
        inventory.load(inv)
    assert any("mesh.stp.wire_prefix" in str(x) and problem in str(x) for x in e.value.problems)
