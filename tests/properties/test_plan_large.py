"""`plan` of large meshes (issue 14): a 2,000-host ring plans, and its host pairs are summarised
rather than listed (n hosts: n(n-1)/2 pairs, each path up to n hosts long). No timing is
asserted here: benchmarks/plan_bench.py measures it."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

from rich.console import Console

from mesh_push import inventory
from mesh_push.modes import reports as mode_reports
from mesh_push.modes.stp import pairs
from mesh_push.modes.stp import tree as stp
from mesh_push.modes.stp.plan import StpPlan, own
from mesh_push.modes.stp.simulate import Outcome
from mesh_push.modes.topology import edge
from mesh_push.views import reports
from tests.kit import ROOT, plan


def ring(n: int, tmp: Path) -> StpPlan:
    lines = ["mesh:", "  wireguard: {network: 10.88.0.0/16}", "  bridge: {network: 10.99.0.0/16}"]
    lines.append("hosts:")
    lines += [
        f"  h{i}: {{endpoint: static, address: 198.18.{i // 250}.{i % 250 + 1}}}" for i in range(n)
    ]
    lines.append("links:")
    lines += [
        f"  - {{hosts: [h{a}, h{(a + 1) % n}], latency_ms: {1 + (a * 7) % 50}}}" for a in range(n)
    ]
    path = tmp / f"ring{n}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return own(plan(inventory.load(path), {}))


def _render(p: StpPlan, **kwargs: object) -> str:
    buf = io.StringIO()
    reports.show_plan(p, out=Console(file=buf, force_terminal=False, width=200), **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def test_a_2000_host_ring_plans_with_a_pair_summary(tmp_path: Path) -> None:
    n = 2000
    p = ring(n, tmp_path)
    assert len(p.hosts) == n and len(p.tree.tree) == n - 1
    data = reports.plan_json(p)
    tree = data["tree"]
    assert tree["pairs"] is None  # not listed: 1,999,000 of them
    s = tree["pair_summary"]
    assert s["pairs"] == n * (n - 1) // 2 and s["cut_off"] == 0
    assert s["total_latency_ms"] == tree["routing_cost_ms"]
    assert abs(s["total_latency_ms"] - p.tree.routing_cost_ms) < 1e-6 * p.tree.routing_cost_ms
    # A ring's tree is the ring less one wire: the two ends of that wire go all the way round.
    assert len(s["longest"]["path"]) == n
    linked = s["linked"]
    assert linked["pairs"] == n and linked["cut_off"] == 0
    assert [b["pairs"] for b in linked["by_detour"]] == [n - 1, 0, 0, 0, 1]
    (worst,) = linked["worst"]
    assert len(worst["path"]) == n and worst["tree_ms"] == s["longest"]["latency_ms"]
    assert worst["detour"] == worst["tree_ms"] / worst["wire_ms"]
    text = _render(p)
    assert "Host pairs over the tree: 1,999,000" in text
    assert "plan --all-pairs" in text
    assert "… 1994 more …" in text  # the worst detour's path, shortened


def test_pairs_are_listed_up_to_50_hosts_and_with_all_pairs(tmp_path: Path) -> None:
    small = ring(mode_reports.PAIR_TABLE_HOSTS, tmp_path)
    assert len(reports.plan_json(small)["tree"]["pairs"]) == 50 * 49 // 2
    big = ring(mode_reports.PAIR_TABLE_HOSTS + 1, tmp_path)
    assert reports.plan_json(big)["tree"]["pairs"] is None
    assert len(reports.plan_json(big, all_pairs=True)["tree"]["pairs"]) == 51 * 50 // 2
    text = _render(big, all_pairs=True)
    assert text.count(" ↔ ") == 51 * 50 // 2
    assert "Host pairs over the tree\npair" in text  # streamed as plain lines


def test_tree_paths_match_one_search_per_pair() -> None:
    p = own(plan(inventory.load(ROOT / "inventory/seed.yaml"), {}))
    names = [h.name for h in p.hosts]
    for outcome in (p.tree.expected, stp.after_cut(p.tree, names, edge("bob", "rho"))):
        listed = list(pairs.tree_paths(outcome, names))
        assert [(a, b) for a, b, _ in listed] == list(itertools.combinations(names, 2))
        for a, b, path in listed:
            assert path == pairs.tree_path(outcome, names, a, b)


def test_pair_summary_agrees_with_every_pair() -> None:
    p = own(plan(inventory.load(ROOT / "inventory/seed.yaml"), {}))
    names = [h.name for h in p.hosts]
    w = p.tree.weights
    s = pairs.pair_summary(p.tree.expected, names, w)
    lats = [pairs.path_latency(path, w) for _, _, path in pairs.tree_paths(p.tree.expected, names)]
    assert s.pairs == 10 and s.cut_off == 0
    assert abs(s.total_ms - sum(lats)) < 1e-9 and s.longest is not None
    assert s.longest[2] == max(lats)
    assert s.linked == len(w) and sum(s.by_detour) == len(w)
    for d in s.worst:
        assert d.path == pairs.tree_path(p.tree.expected, names, d.a, d.b)
        assert d.tree_ms == pairs.path_latency(d.path, w)
    assert sum(s.by_detour[1:]) == len(s.worst)  # every detour is among the worst 10 here


def test_pair_summary_of_a_forest_counts_the_pairs_cut_off() -> None:
    nodes = ["a", "b", "c", "d", "e"]
    w = {edge("a", "b"): 1.0, edge("b", "c"): 2.0, edge("d", "e"): 4.0}
    w[edge("c", "d")] = 8.0  # a wire that does not forward: the tree is cut in two
    forwarding = frozenset(e for e in w if e != edge("c", "d"))
    outcome = Outcome("a", {}, {}, frozenset(), forwarding)
    s = pairs.pair_summary(outcome, nodes, w)
    assert s.pairs == 10 and s.cut_off == 3 * 2
    assert s.total_ms == 1 + 2 + 3 + 4  # a-b, b-c, a-c, d-e
    assert s.longest is not None and s.longest[:3] == ("d", "e", 4.0)
    assert s.linked_cut_off == 1 and sum(s.by_detour) == 3


def test_a_wire_of_zero_ms_has_no_finite_detour() -> None:
    d = pairs.Detour("a", "b", 0.0, 5.0, ["a", "c", "b"])
    assert d.ratio is None
    assert pairs.Detour("a", "b", 0.0, 0.0, ["a", "b"]).ratio == 1.0
