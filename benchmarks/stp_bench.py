"""The spanning-tree search: where exhaustive search stops paying, and what the heuristic costs.

    python benchmarks/stp_bench.py [--seed N] [--graphs N]

1. Exact search time against the number of edge subsets it tries, C(links, hosts − 1), on
   random connected graphs (random latencies 1..100 ms), median of 3 runs each; fitted
   seconds per subset. EXACT_SEARCH_LIMIT in mesh_push/modes/stp/tree.py comes from this.
2. The heuristic (best shortest-path tree over every root) against the exact optimum on
   random small graphs: routing-cost ratio heuristic / exact.
3. The tree search plus failover analysis at the limit: it must stay well under 1 s.
4. Failover: after every single tree-wire cut of random meshes, the converged tree against
   the minimum routing-cost tree of the remaining graph, with and without failover levels.

Prints figures (and JSON with --json); never asserts."""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time

from mesh_push.modes.stp import tree as stp


def random_graph(rng: random.Random, n: int, m: int) -> tuple[list[str], dict[stp.Edge, float]]:
    nodes = [f"h{i}" for i in range(n)]
    w: dict[stp.Edge, float] = {}
    order = nodes[:]
    rng.shuffle(order)
    for i in range(1, n):  # a random spanning tree first: connected
        w[stp.edge(order[i], rng.choice(order[:i]))] = float(rng.randint(1, 100))
    pairs = [stp.edge(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1 :]]
    rng.shuffle(pairs)
    for e in pairs:
        if len(w) >= m:
            break
        w.setdefault(e, float(rng.randint(1, 100)))
    return nodes, w


def exact_timing(rng: random.Random) -> list[dict[str, float]]:
    saved = stp.EXACT_SEARCH_LIMIT
    stp.EXACT_SEARCH_LIMIT = 10**12
    rows = []
    try:
        for n, m in [(5, 10), (6, 12), (7, 13), (8, 15), (9, 14), (10, 15), (8, 18), (9, 18),
                     (10, 18), (12, 19), (10, 20), (14, 20)]:  # fmt: skip
            subsets = math.comb(m, n - 1)
            nodes, w = random_graph(rng, n, m)
            runs = []
            for _ in range(3):
                t = time.perf_counter()
                stp.best_tree(nodes, w)
                runs.append(time.perf_counter() - t)
            sec = statistics.median(runs)
            rows.append({"hosts": n, "links": m, "subsets": subsets, "seconds": sec,
                         "us_per_subset": 1e6 * sec / subsets})  # fmt: skip
    finally:
        stp.EXACT_SEARCH_LIMIT = saved
    return rows


def heuristic_gap(rng: random.Random, graphs: int) -> dict[str, float]:
    ratios = []
    worse = 0
    for _ in range(graphs):
        n = rng.randint(5, 9)
        m = rng.randint(n, min(n * (n - 1) // 2, n + 6))
        nodes, w = random_graph(rng, n, m)
        saved = stp.EXACT_SEARCH_LIMIT
        try:
            stp.EXACT_SEARCH_LIMIT = 10**12
            exact, _ = stp.best_tree(nodes, w)
            stp.EXACT_SEARCH_LIMIT = 0
            heur, _ = stp.best_tree(nodes, w)
        finally:
            stp.EXACT_SEARCH_LIMIT = saved
        r = stp.routing_cost(nodes, heur, w) / stp.routing_cost(nodes, exact, w)
        ratios.append(r)
        worse += r > 1 + 1e-9
    ratios.sort()
    return {
        "graphs": graphs,
        "optimal_share": 1 - worse / graphs,
        "mean_ratio": statistics.fmean(ratios),
        "p95_ratio": ratios[int(0.95 * (graphs - 1))],
        "max_ratio": ratios[-1],
    }


def _ratios(r: list[float]) -> dict[str, float]:
    r = sorted(r)
    return {
        "cuts": len(r),
        "optimal_share": sum(x < 1 + 1e-9 for x in r) / len(r),
        "mean_ratio": statistics.fmean(r),
        "p95_ratio": r[int(0.95 * (len(r) - 1))],
        "max_ratio": r[-1],
    }


def _port_costs(cost: dict[stp.Edge, int]) -> dict[tuple[str, str], int]:
    out = {}
    for (a, b), c in cost.items():
        out[(a, b)] = out[(b, a)] = c
    return out


def failover(rng: random.Random, graphs: int) -> dict[str, object]:
    """Every single tree-wire cut of random small meshes: routing cost of the tree 802.1D
    converges to, over the minimum routing-cost tree of the remaining graph; with the
    failover levels, and with the old rule (non-tree wires above the tree, latency order)."""
    new: list[float] = []
    old: list[float] = []
    swap: list[float] = []
    honoured = total = 0
    for _ in range(graphs):
        n = rng.randint(5, 9)
        nodes, w = random_graph(rng, n, rng.randint(n + 1, n + 7))
        tree, _ = stp.best_tree(nodes, w)
        medians = stp._medians(nodes, tree, w)
        prio = dict.fromkeys(nodes, stp.DEFAULT_PRIORITY)
        prio[medians[0]], prio[medians[1]] = stp.ROOT_PRIORITY, stp.BACKUP_PRIORITY
        macs = {x: f"02:00:00:00:{i // 256:02x}:{i % 256:02x}" for i, x in enumerate(nodes)}
        level, want = stp.failover_order(nodes, tree, w)
        pc_new = _port_costs(stp._costs(nodes, tree, w, {}, level, medians[0]))
        pc_old = _port_costs(stp._costs(nodes, tree, w, {}, {}, medians[0]))
        scores = stp.swap_scores(nodes, tree, w)
        assert scores is not None
        for e in tree:
            cands = {f for _, f in scores[e]}
            if not cands:
                continue
            rest = {x: v for x, v in w.items() if x != e}
            opt = stp.routing_cost(nodes, stp.best_tree(nodes, rest)[0], rest)
            for pc, out in ((pc_new, new), (pc_old, old)):
                got = stp.simulate(nodes, list(rest), prio, macs, pc).forwarding_edges
                out.append(stp.routing_cost(nodes, got, rest) / opt)
            swap.append(stp.routing_cost(nodes, (tree - {e}) | {want[e]}, rest) / opt)
            total += 1
            honoured += all(level[want[e]] < level[f] for f in cands - {want[e]})
    return {
        "levels": _ratios(new),
        "latency_order": _ratios(old),
        "best_swap": _ratios(swap),
        "best_swap_first_share": honoured / total,
    }


def plan_at_limit(rng: random.Random) -> dict[str, float]:
    """The slowest plan the limit allows: the biggest graph whose subset count fits."""
    worst = 0.0
    for n in range(5, 12):
        for m in range(n, n * (n - 1) // 2 + 1):
            if math.comb(m, n - 1) > stp.EXACT_SEARCH_LIMIT:
                break
            if math.comb(m, n - 1) < stp.EXACT_SEARCH_LIMIT // 2:
                continue
            nodes, w = random_graph(rng, n, m)
            t = time.perf_counter()
            tree, method = stp.best_tree(nodes, w)
            stp.failover_order(nodes, tree, w)
            worst = max(worst, time.perf_counter() - t)
            assert method == "exact"
    return {"limit": stp.EXACT_SEARCH_LIMIT, "worst_seconds": worst}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--graphs", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = exact_timing(rng)
    gap = heuristic_gap(rng, args.graphs)
    at_limit = plan_at_limit(rng)
    fail = failover(rng, args.graphs)
    if args.json:
        print(json.dumps({"exact": rows, "heuristic": gap, "at_limit": at_limit,
                          "failover": fail}, indent=2))  # fmt: skip
        return
    print("exact search: hosts links subsets seconds µs/subset")
    for r in rows:
        print(f"  {r['hosts']:>3} {r['links']:>4} {r['subsets']:>9} {r['seconds']:8.3f} "
              f"{r['us_per_subset']:6.1f}")  # fmt: skip
    print(f"heuristic vs exact on {gap['graphs']} random graphs (5-9 hosts): optimal in "
          f"{100 * gap['optimal_share']:.0f}%, mean ratio {gap['mean_ratio']:.4f}, "
          f"95th percentile {gap['p95_ratio']:.4f}, worst {gap['max_ratio']:.4f}")  # fmt: skip
    print(f"slowest exact search at EXACT_SEARCH_LIMIT={at_limit['limit']}: "
          f"{at_limit['worst_seconds']:.3f} s")  # fmt: skip
    print("after one tree-wire cut, routing cost over the optimum of the remaining graph:")
    for key in ("levels", "latency_order", "best_swap"):
        r = fail[key]
        assert isinstance(r, dict)
        print(
            f"  {key:<14} {r['cuts']} cuts: optimal {100 * r['optimal_share']:.0f}%, mean "
            f"{r['mean_ratio']:.4f}, p95 {r['p95_ratio']:.4f}, worst {r['max_ratio']:.4f}"
        )
    first = 100 * float(fail["best_swap_first_share"])  # type: ignore[arg-type]
    print(f"  best swap put first among its cut's wires: {first:.1f}%")


if __name__ == "__main__":
    main()
