"""STP against EVPN on the same inventories (issue 20).

    python benchmarks/mode_bench.py [--plan-only] [--cuts N] [--json] [INVENTORY ...]

Each inventory (default: inventory/lab.yaml and inventory/lab-evpn20.yaml) is run in both
modes, as a copy with `mesh.mode` set (stp mode gets the lab's fast timers: hello 1,
forward_delay 4, max_age 6, ageing 2). From the plans:
  - the total latency over all host pairs (stp: over the planned tree; evpn: shortest paths);
  - the worst detour of any pair: its path's latency over the shortest possible.
On a lab of its own (lab `mpbm`, 198.19.200.0/23), per mode:
  - the wall time of `up` from nothing (fresh lab);
  - the failover time after each single-link cut (the first N links that carry traffic):
    the longest silence of a 20 ms ping between two hosts whose planned path uses the link,
    the cut healed after each measure (lab.failover).
Needs root for the lab part. Prints figures (and JSON with --json); never asserts."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mesh_push import inventory, modes
from mesh_push.lab import failover
from mesh_push.modes.base import Plan
from mesh_push.modes.evpn.plan import EvpnPlan
from mesh_push.modes.stp import pairs as stp
from mesh_push.modes.stp.plan import StpPlan
from mesh_push.modes.topology import Edge, edge

ROOT = Path(__file__).resolve().parent.parent
LAB, NET = "mpbm", "198.19.200"
FAST_STP = "  stp: {hello: 1, forward_delay: 4, max_age: 6, ageing: 2}\n"


def variant(source: Path, mode: str, dest: Path) -> Path:
    """`source` in `mode`, on this benchmark's own lab name and network."""
    text = source.read_text()
    text = re.sub(r"^  mode: \w+\n", "", text, flags=re.M)
    text = re.sub(r"^  stp: .*\n", "", text, flags=re.M)
    text = re.sub(r"^  # Fast timers.*\n", "", text, flags=re.M)
    extra = f"  mode: {mode}\n" + (FAST_STP if mode == "stp" else "")
    text = text.replace("mesh:\n", "mesh:\n" + extra, 1)
    m = re.search(r"lab:\n  name: \w+\n  network: (\d+\.\d+\.\d+)\.0/23", text)
    assert m, f"{source}: no lab section"
    text = text.replace(m.group(0), f"lab:\n  name: {LAB}\n  network: {NET}.0/23")
    text = text.replace(f"{m.group(1)}.", f"{NET}.")
    dest.write_text(text)
    return dest


def plan_figures(stp_mesh: Any, evpn_mesh: Any) -> dict[str, Any]:
    sp = modes.of(stp_mesh).plan(stp_mesh, {})
    ep = modes.of(evpn_mesh).plan(evpn_mesh, {})
    assert isinstance(sp, StpPlan) and isinstance(ep, EvpnPlan)
    u = ep.underlay
    names = [h.name for h in stp_mesh.hosts]
    best = {(a, b): u.latency_of(path) for a, b, path in u.pairs()}
    stp_paths = {(a, b): path for a, b, path in stp.tree_paths(sp.tree.expected, names)}

    def worst(paths: dict[tuple[str, str], list[str]], latency: Any) -> tuple[float, str]:
        ratio, pair = 1.0, ""
        for (a, b), path in paths.items():
            key = (a, b) if (a, b) in best else (b, a)
            lat = latency(path)
            if best[key] > 0 and lat / best[key] > ratio:
                ratio, pair = lat / best[key], f"{a}–{b} {lat:g} ms, shortest {best[key]:g} ms"
        return ratio, pair

    stp_worst = worst(stp_paths, lambda p: stp.path_latency(p, sp.tree.weights))
    evpn_worst = worst({(a, b): p for a, b, p in u.pairs()}, u.latency_of)
    return {
        "hosts": len(names),
        "links": len(stp_mesh.links),
        "stp": {
            "total_latency_ms": sp.tree.routing_cost_ms,
            "worst_detour": stp_worst[0],
            "worst_pair": stp_worst[1],
        },
        "evpn": {
            "total_latency_ms": sum(best.values()),
            "worst_detour": evpn_worst[0],
            "worst_pair": evpn_worst[1],
        },
    }


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mesh_push.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def users_of(p: Plan, link: Edge) -> tuple[str, str] | None:
    """A host pair whose planned path crosses `link`: its own ends first."""
    names = [h.name for h in p.mesh.hosts]
    if isinstance(p, EvpnPlan):
        paths = list(p.underlay.pairs())
    else:
        assert isinstance(p, StpPlan)
        paths = list(stp.tree_paths(p.tree.expected, names))
    crossing = [
        (a, b)
        for a, b, path in paths
        if any(edge(x, y) == link for x, y in itertools.pairwise(path))
    ]
    if not crossing:
        return None
    return link if link in crossing or (link[1], link[0]) in crossing else crossing[0]


def lab_figures(inv: Path, cuts: int) -> dict[str, Any]:
    mesh = inventory.load(inv)
    cli("lab", "down", "--name", LAB)
    res = cli("lab", "up", "-i", str(inv))
    if res.returncode != 0:
        raise SystemExit(f"lab up failed: {res.stderr}")
    try:
        t = time.monotonic()
        res = cli("up", "--yes", "-i", str(inv))
        up_s = time.monotonic() - t
        if res.returncode != 0:
            raise SystemExit(f"up failed:\n{res.stdout[-2000:]}\n{res.stderr}")
        p = modes.of(mesh).plan(mesh, {})
        window = 5.0 if mesh.mode == "evpn" else mesh.stp.max_age + 2 * mesh.stp.forward_delay + 6
        rows = []
        for lk in mesh.links:
            if len(rows) >= cuts:
                break
            link = edge(lk.a, lk.b)
            pair = users_of(p, link)
            if pair is None:
                continue
            src, dst = pair
            address = str(p.host(dst).bridge_address.ip)
            o = failover.measure(LAB, src, address, (lk.a, lk.b), window=window)
            rows.append(
                {
                    "cut": list(link),
                    "ping": [src, dst],
                    "seconds": None if o is None else round(o.seconds, 3),
                }
            )
            # Back to the planned state before the next cut.
            deadline = time.monotonic() + 60
            while cli("status", "-i", str(inv)).returncode != 0 and time.monotonic() < deadline:
                time.sleep(1)
        return {"up_from_nothing_s": round(up_s, 2), "failover": rows}
    finally:
        cli("lab", "down", "--name", LAB)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inventories", nargs="*", type=Path)
    ap.add_argument("--plan-only", action="store_true", help="no lab: the plans' figures only")
    ap.add_argument("--cuts", type=int, default=7, help="links cut per mode (default 7)")
    ap.add_argument("--mode", choices=("stp", "evpn"), help="the lab part in this mode only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    invs = args.inventories or [ROOT / "inventory/lab.yaml", ROOT / "inventory/lab-evpn20.yaml"]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for source in invs:
            files = {m: variant(source, m, Path(tmp) / f"{m}.yaml") for m in ("stp", "evpn")}
            meshes = {m: inventory.load(f) for m, f in files.items()}
            row = {"inventory": str(source), **plan_figures(meshes["stp"], meshes["evpn"])}
            print(f"\n{source.name}: {row['hosts']} hosts, {row['links']} links", flush=True)
            for m in ("stp", "evpn"):
                f = row[m]
                print(
                    f"  {m:4}  total pair latency {f['total_latency_ms']:8.0f} ms   worst "
                    f"detour {f['worst_detour']:.2f}× ({f['worst_pair'] or 'none'})"
                )
            if not args.plan_only:
                for m in [args.mode] if args.mode else ["stp", "evpn"]:
                    lab = lab_figures(files[m], args.cuts)
                    row[m].update(lab)
                    cuts = ", ".join(
                        f"{'–'.join(r['cut'])} {'-' if r['seconds'] is None else r['seconds']}"
                        for r in lab["failover"]
                    )
                    print(
                        f"  {m:4}  up from nothing {lab['up_from_nothing_s']:.1f} s; "
                        f"failover (s) after each cut: {cuts}",
                        flush=True,
                    )
            out.append(row)
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
