"""How long `mesh-push lab up` / `lab down` take, and the memory a lab's processes use.

    sudo python3 benchmarks/lab_bench.py [--runs 3] [--sizes 5,50]

Size 5 is inventory/lab.yaml; other sizes are generated: a ring of hosts plus chords, every
tenth host behind NAT and every tenth dynamic. Each lab gets its own name and a network in
198.19.0.0/16 that the machine does not use; every lab is taken down, even on Ctrl-C.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mesh_push.lab import addresses  # noqa: E402
from mesh_push.lab.ops import lab_processes_rss_kib  # noqa: E402
from mesh_push.lab.system import ip_json  # noqa: E402


def free_network() -> ipaddress.IPv4Network:
    addrs, routes = ip_json("addr"), ip_json("route")
    for net in ipaddress.IPv4Network("198.19.0.0/16").subnets(new_prefix=23):
        if not addresses.overlaps(net, addrs, routes):
            return net
    raise SystemExit("no free /23 in 198.19.0.0/16")


def ring(n: int, name: str, net: ipaddress.IPv4Network) -> dict[str, Any]:
    wan = next(net.subnets(prefixlen_diff=1))
    hosts: dict[str, Any] = {}
    for i in range(n):
        h: dict[str, Any] = {"number": i + 1}
        if i % 10 == 5:
            h["endpoint"] = "nat"
        elif i % 10 == 3:
            h["endpoint"] = "dynamic"
        else:
            h.update(endpoint="static", address=str(wan.network_address + 10 + i))
        hosts[f"h{i:02d}"] = h
    pairs = {tuple(sorted((i, (i + 1) % n))) for i in range(n)}
    pairs |= {tuple(sorted((i, (i + 7) % n))) for i in range(0, n, 5)}
    kinds = [hosts[f"h{i:02d}"]["endpoint"] for i in range(n)]
    links = [
        [f"h{a:02d}", f"h{b:02d}"]
        for a, b in sorted(pairs)
        if a != b and "static" in (kinds[a], kinds[b])
    ]
    return {"lab": {"name": name, "network": str(net)}, "hosts": hosts, "links": links}


def five(name: str, net: ipaddress.IPv4Network) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    old_wan = ipaddress.IPv4Network("198.18.0.0/24")
    new_wan = next(net.subnets(prefixlen_diff=1))
    data["lab"] = {"name": name, "network": str(net)}
    for h in data["hosts"].values():
        if "address" in h:
            off = int(ipaddress.IPv4Address(h["address"])) - int(old_wan.network_address)
            h["address"] = str(new_wan.network_address + off)
    return data


def lab(*args: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mesh_push.cli", "lab", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"mesh-push lab {' '.join(args)} failed:\n{done.stderr}")
    return elapsed


def ssh_ok(name: str, host: str) -> bool:
    cfg = f"/run/mesh-push/lab/{name}/ssh_config"
    out = subprocess.run(["ssh", "-F", cfg, host, "hostname"], capture_output=True, text=True)
    return out.stdout.strip() == host


def bench(size: int, runs: int, tmp: Path) -> dict[str, Any]:
    name = f"mpb{size}"[:6]
    net = free_network()
    data = five(name, net) if size == 5 else ring(size, name, net)
    inv = tmp / f"{name}.yaml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    ups, downs, rss, procs = [], [], [], []
    try:
        for _ in range(runs):
            ups.append(lab("up", "-i", str(inv)))
            rss.append(lab_processes_rss_kib(name))
            st = json.loads(
                subprocess.run(
                    [sys.executable, "-m", "mesh_push.cli", "lab", "status", "--name", name,
                     "--json"],
                    cwd=REPO, capture_output=True, text=True,
                ).stdout
            )  # fmt: skip
            procs.append(sum(1 for n in st[0]["nodes"] if n["sshd_alive"]))
            nat = next(h for h, v in data["hosts"].items() if v["endpoint"] == "nat")
            first = next(iter(data["hosts"]))
            if not (ssh_ok(name, first) and ssh_ok(name, nat)):
                raise SystemExit(f"ssh into {first} or {nat} of {name} failed")
            downs.append(lab("down", "--name", name))
    finally:
        subprocess.run(
            [sys.executable, "-m", "mesh_push.cli", "lab", "down", "--name", name],
            cwd=REPO,
            capture_output=True,
        )
    nodes = len(data["hosts"]) + sum(1 for h in data["hosts"].values() if h["endpoint"] == "nat")
    return {
        "hosts": size,
        "namespaces": nodes + 1,
        "sshds": procs[0],
        "up_s": statistics.median(ups),
        "down_s": statistics.median(downs),
        "rss_mib": statistics.median(rss) / 1024,
        "runs": runs,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="5,50")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("lab_bench needs root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(int(s), args.runs, Path(tmp)) for s in args.sizes.split(",")]
    print(f"{'hosts':>5} {'netns':>5} {'sshd':>4} {'up (s)':>7} {'down (s)':>8} {'RSS (MiB)':>9}"
          "   median of runs")  # fmt: skip
    for r in results:
        print(
            f"{r['hosts']:>5} {r['namespaces']:>5} {r['sshds']:>4} {r['up_s']:>7.2f} "
            f"{r['down_s']:>8.2f} {r['rss_mib']:>9.1f}   {r['runs']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
