"""Plan + render for generated inventories (ring plus chords): wall time and peak memory;
then the whole `mesh-push plan` command (tables, or --json) on a plain ring, whose host pairs
made it grow as hosts³ before they were summarised (a 2,000-host ring took hours).

    python benchmarks/plan_bench.py [SIZES...] [--ring N,...]
        (default: 1000 10000, --ring 2000)

Prints figures; never asserts. Each size runs in a fresh process so peak memory is its own."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, cast


def inventory(n: int) -> str:
    # A /16 holds 65534 hosts; ring plus a chord every 10 hosts; every fourth host static.
    lines = [
        "mesh:",
        "  name: bench",
        "  wireguard: {network: 10.88.0.0/16}",
        "  bridge: {network: 10.99.0.0/16}",
        "  keys: host",
        "hosts:",
    ]
    for i in range(n):
        kind = "static" if i % 2 == 0 else "dynamic"
        addr = f", address: 198.18.{i // 250}.{i % 250 + 1}" if kind == "static" else ""
        lines.append(f"  h{i}: {{endpoint: {kind}{addr}}}")
    lines.append("links:")
    for a in range(n):
        b = (a + 1) % n
        if a % 2 == 0 or b % 2 == 0:  # a dynamic pair could never find each other
            lines.append(f"  - {{hosts: [h{a}, h{b}], latency_ms: {1 + (a * 7) % 50}}}")
    for i in range(0, n // 2, 10):
        j = (i + n // 2) % n
        if i != j and (i % 2 == 0 or j % 2 == 0):
            lines.append(f"  - {{hosts: [h{i}, h{j}], latency_ms: {5 + (i * 3) % 90}}}")
    return "\n".join(lines) + "\n"


def ring(n: int) -> str:
    """A plain ring of static hosts, latencies 1-50 ms: its tree is the ring less one wire, so
    two neighbours go the whole way round."""
    lines = [
        "mesh:",
        "  name: ring",
        "  wireguard: {network: 10.88.0.0/16}",
        "  bridge: {network: 10.99.0.0/16}",
        "hosts:",
    ]
    lines += [
        f"  h{i}: {{endpoint: static, address: 198.18.{i // 250}.{i % 250 + 1}}}" for i in range(n)
    ]
    lines.append("links:")
    lines += [
        f"  - {{hosts: [h{a}, h{(a + 1) % n}], latency_ms: {1 + (a * 7) % 50}}}" for a in range(n)
    ]
    return "\n".join(lines) + "\n"


COMMAND = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
subprocess.run([sys.executable, "-m", "mesh_push.cli", "plan", *sys.argv[1:]],
               stdout=subprocess.DEVNULL, check=True)
took = time.perf_counter() - t0
print(took, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def plan_command(path: Path, *extra: str) -> dict[str, float]:
    """`mesh-push plan -i path` (output to /dev/null), 3 fresh processes: seconds, peak MiB."""
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", COMMAND, "-i", str(path), *extra],
            capture_output=True,
            text=True,
            check=True,
        )
        took, peak = map(float, out.stdout.split())
        runs.append((took, peak))
    return {
        "median_s": statistics.median(t for t, _ in runs),
        "min_s": min(t for t, _ in runs),
        "max_s": max(t for t, _ in runs),
        "peak_mib": max(m for _, m in runs),
    }


CHILD = """
import base64, hashlib, json, resource, sys, time
from mesh_push import inventory, modes
from mesh_push.host.templates import load_templates
from mesh_push.modes import scripts
path = sys.argv[1]
t0 = time.perf_counter()
mesh = inventory.load(path)
t1 = time.perf_counter()
keys = {h.name: base64.b64encode(hashlib.sha256(h.name.encode()).digest()).decode()
        for h in mesh.hosts}
mode = modes.of(mesh)
p = mode.plan(mesh, keys)
t2 = time.perf_counter()
env = load_templates()
total = sum(len(scripts.host_script(mode, p, hp, env)) for hp in p.hosts)
t3 = time.perf_counter()
print(json.dumps({"load": t1 - t0, "plan": t2 - t1, "render": t3 - t2, "total": t3 - t0,
                  "tree": p.tree.method, "bytes": total,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    args = sys.argv[1:]
    rings = [2000]
    if "--ring" in args:
        at = args.index("--ring")
        rings = [int(x) for x in args[at + 1].split(",")]
        del args[at : at + 2]
    sizes = [int(a) for a in args] or [1000, 10000]
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"inv{n}.yaml"
            path.write_text(inventory(n))
            runs = []
            for _ in range(3):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(path)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs.append(json.loads(out.stdout))
            totals = [r["total"] for r in runs]
            med = {k: statistics.median(r[k] for r in runs) for k in ("load", "plan", "render")}
            results[str(n)] = {
                "median_s": statistics.median(totals),
                "min_s": min(totals),
                "max_s": max(totals),
                "peak_mib": max(r["peak_mib"] for r in runs),
                "tree": runs[0]["tree"],
                **{f"{k}_s": v for k, v in med.items()},
            }
            r = cast(dict[str, Any], results[str(n)])
            print(
                f"{n:>6} hosts: plan+render {r['median_s']:.2f} s median "
                f"({r['min_s']:.2f}–{r['max_s']:.2f}; load {r['load_s']:.2f}, plan "
                f"{r['plan_s']:.2f}, render {r['render_s']:.2f}), peak {r['peak_mib']:.0f} MiB, "
                f"tree search: {r['tree']}"
            )
        for n in rings:
            path = Path(tmp) / f"ring{n}.yaml"
            path.write_text(ring(n))
            for label, extra in (("tables", ()), ("json", ("--json",))):
                r = plan_command(path, *extra)
                results[f"plan_command_ring_{n}_{label}"] = r
                print(
                    f"`mesh-push plan{' --json' if extra else ''}` of a {n}-host ring: "
                    f"{r['median_s']:.2f} s median ({r['min_s']:.2f}–{r['max_s']:.2f}), "
                    f"peak {r['peak_mib']:.0f} MiB"
                )
    Path("benchmarks/plan_bench.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
