"""mesh-push against the OpenSSH floor on real lab hosts, plan + render at scale, start-up time.

    sudo python benchmarks/push_bench.py [--sizes 5,20,50] [--runs 3] [--inner 2]
                                         [--plan-sizes 1000,10000] [--json FILE]
    sudo python benchmarks/push_bench.py --profile DIR     # py-spy of status / no-op up, 5 hosts

Prints figures and writes JSON (benchmarks/push_bench.json); it never asserts on a time.

Per lab size (5: inventory/lab.yaml; 20 and 50: lab_bench.ring, a ring plus chords, every
tenth host dynamic and every tenth behind NAT), on a lab of its own (`mpbN`, a free /23 in
198.19.0.0/16), with STP timers STP_BY_SIZE (or --stp), `--runs` cycles of:

  up from nothing (after `down`: private keys stay on the hosts, as `down` leaves them;
  the first cycle on a fresh lab also generates them), `--inner` × no-op up, `--inner` ×
  status, down, then the OpenSSH floor on the same hosts: `ssh HOST true`, the gather command
  of status, the host's rendered script through `ssh HOST sh -s` from nothing and a second
  time ("no changes"), the down script through `ssh HOST sh -s`; every floor runs one ssh per
  host, all in parallel.

mesh-push runs as a subprocess (so interpreter start and imports count) through a tiny wrapper
that counts and timestamps every `mesh_push.engine.ssh.connect` and `.run` call: the
remote commands per host, and the SSH part of `up` from wall timestamps. The package itself is
not changed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lab_bench  # benchmarks/ is sys.path[0] when this file is run
import plan_bench
import yaml

from mesh_push.lab import addresses
from mesh_push.lab.system import ip_json

REPO = lab_bench.REPO
FAST_STP = {"hello": 1, "forward_delay": 4, "max_age": 6, "ageing": 2}  # inventory/lab.yaml
# 50 wireguard-go processes on 2 cores delay BPDUs by seconds, and a BPDU's message age grows
# by that delay at every hop (12 hops deep here): with max_age 6 they age out and the tree
# churns. These timers respect 2 × (forward_delay − 1) ≥ max_age ≥ 2 × (hello + 1).
SLOW_STP = {"hello": 2, "forward_delay": 9, "max_age": 16, "ageing": 2}
STP_BY_SIZE = {5: FAST_STP, 20: FAST_STP, 50: SLOW_STP}

# Runs `mesh-push ARGS` in this interpreter, recording each ssh.connect / ssh.run call.
CHILD = r"""
import json, sys, threading, time
t_start = time.monotonic()
from mesh_push import cli
from mesh_push.engine import ssh
t_import = time.monotonic()
trace, aliases, lock = [], {}, threading.Lock()
_run, _connect = ssh.run, ssh.connect

def kind(cmd):
    # up's first command makes a missing key (keys: host); status and verify's polls do not.
    for key, name in (("wg genkey", "facts"), ("MESH_PUSH_CHECK=1", "check"), ("apply.sh", "apply"),
                      ("=== hostname", "gather"),
                      ("ping -c", "ping"), ("sh -s", "down")):
        if key in cmd:
            return name
    return "other"

def run(conn, command, stdin=None, timeout=300):
    t = time.monotonic()
    try:
        return _run(conn, command, stdin, timeout)
    finally:
        with lock:
            trace.append(["run", aliases.get(id(conn), conn.host), kind(command), t,
                          time.monotonic()])

def connect(mesh, target, accept_new=False, timeout=None, **kwargs):
    t = time.monotonic()
    conn = None
    try:
        conn = _connect(mesh, target, accept_new, timeout, **kwargs)
        return conn
    finally:
        with lock:
            if conn is not None:
                aliases[id(conn)] = target.alias
            trace.append(["connect", target.alias, "ok" if conn else "failed", t,
                          time.monotonic()])

ssh.run, ssh.connect = run, connect
rc = 99
try:
    rc = cli.main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        json.dump({"start": t_start, "imported": t_import, "end": time.monotonic(), "rc": rc,
                   "trace": trace}, f)
sys.exit(rc)
"""


# --------------------------------------------------------------------------- small helpers


def stats(xs: Iterable[float]) -> dict[str, Any]:
    v = sorted(xs)
    if not v:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v)}


def fmt(s: dict[str, Any], unit: str = "s", digits: int = 2) -> str:
    if not s or s.get("median") is None:
        return "–"
    m, lo, hi = s["median"], s["min"], s["max"]
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f}){unit if unit != 's' else ''}"


def free_network(tried: set[str]) -> ipaddress.IPv4Network:
    """A /23 of 198.19.0.0/16 that no address or route of the machine touches, from the top
    down (tests and lab_bench take the bottom ones)."""
    addrs, routes = ip_json("addr"), ip_json("route")
    nets = list(ipaddress.IPv4Network("198.19.0.0/16").subnets(new_prefix=23))
    for net in reversed(nets):
        if str(net) not in tried and not addresses.overlaps(net, addrs, routes):
            return net
    raise SystemExit("no free /23 in 198.19.0.0/16")


def lab_inventory(
    size: int, name: str, net: ipaddress.IPv4Network, stp: dict[str, int]
) -> dict[str, Any]:
    data = lab_bench.five(name, net) if size == 5 else lab_bench.ring(size, name, net)
    mesh = dict(data.get("mesh") or {})
    mesh.update(name=name, stp=stp)
    return {"mesh": mesh, **{k: v for k, v in data.items() if k != "mesh"}}


def mesh_push(args: list[str], tmp: Path) -> dict[str, Any]:
    """One traced `mesh-push ARGS` in a subprocess."""
    trace_file = tmp / "trace.json"
    trace_file.unlink(missing_ok=True)
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(trace_file), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    t1 = time.monotonic()
    tr = json.loads(trace_file.read_text()) if trace_file.exists() else {"trace": []}
    report = None
    if "--json" in args:
        try:
            report = json.loads(done.stdout)
        except ValueError:
            report = None
    return {
        "wall": t1 - t0,
        "t0": t0,
        "rc": done.returncode,
        "stderr": done.stderr[-2000:],
        "report": report,
        **tr,
    }


def parallel_ssh(
    cfg: Path, hosts: list[str], command: list[str], stdin: Callable[[str], str] | None
) -> dict[str, Any]:
    """One `ssh -F cfg HOST COMMAND` per host, all at once; wall time from the first start to
    the last exit."""

    def one(h: str) -> tuple[int, str]:
        p = subprocess.run(
            ["ssh", "-F", str(cfg), "-o", "BatchMode=yes", h, *command],
            input=stdin(h) if stdin else None,
            capture_output=True,
            text=True,
        )
        return p.returncode, p.stdout

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        t0 = time.monotonic()
        results = list(pool.map(one, hosts))
        wall = time.monotonic() - t0
    changes = sum(out.count("changed: ") for _, out in results)
    return {"wall": wall, "failed": sum(1 for rc, _ in results if rc != 0), "changes": changes}


# --------------------------------------------------------------------------- trace analysis


def per_host_calls(run: dict[str, Any], hosts: list[str]) -> dict[str, Any]:
    """Remote commands (ssh.run) and connections (ssh.connect, jump hosts included) per host."""
    runs = Counter(h for ev, h, *_ in run["trace"] if ev == "run")
    kinds = Counter(k for ev, _h, k, *_ in run["trace"] if ev == "run")
    conns = Counter(ev for ev, *_ in run["trace"] if ev == "connect")["connect"]
    n = len(hosts)
    return {
        "runs_per_host": sum(runs.values()) / n,
        "runs_min": min(runs.get(h, 0) for h in hosts),
        "runs_max": max(runs.get(h, 0) for h in hosts),
        "by_kind_per_host": {k: v / n for k, v in sorted(kinds.items())},
        "connects_per_host": conns / n,
    }


def phases(run: dict[str, Any]) -> dict[str, float]:
    """Wall-clock phases of one traced command, from its own timestamps."""
    tr = run["trace"]
    start = run["t0"]
    out: dict[str, float] = {"total": run["wall"]}
    if "imported" in run:
        out["startup_and_imports"] = run["imported"] - start
    conn = [e for e in tr if e[0] == "connect"]
    by = {
        k: [e for e in tr if e[0] == "run" and e[2] == k]
        for k in ("facts", "apply", "gather", "ping", "down")
    }
    if conn:
        c0 = min(e[3] for e in conn)
        out["connect"] = max(e[4] for e in conn) - c0
        first_phase = by["facts"] or by["gather"] or by["down"]
        if first_phase:
            out["connect_and_first_command"] = max(e[4] for e in first_phase) - c0
        last = by["apply"] or by["facts"]
        if last:
            # The SSH part of `up`: first connect to the last apply (facts when nothing applied).
            out["ssh_part"] = max(e[4] for e in last) - c0
        if by["apply"] and by["facts"]:
            out["prepare_gap"] = min(e[3] for e in by["apply"]) - max(e[4] for e in by["facts"])
            out["apply"] = max(e[4] for e in by["apply"]) - min(e[3] for e in by["apply"])
        if by["gather"]:
            out["verify_or_gather"] = max(e[4] for e in by["gather"] + by["ping"]) - min(
                e[3] for e in by["gather"]
            )
    for k, evs in [("connect", conn), *by.items()]:
        if evs:
            durs = sorted(e[4] - e[3] for e in evs)
            out[f"each_{k}_median"] = statistics.median(durs)
            out[f"each_{k}_max"] = durs[-1]
    if "end" in run:
        out["after_last_ssh_to_exit"] = (
            run["t0"] + run["wall"] - max((e[4] for e in tr), default=run["t0"])
        )
    return out


def json_ssh_part(report: dict[str, Any] | None) -> dict[str, float] | None:
    """What the JSON report alone tells: the slowest host's connect + command (the facts)
    + apply."""
    if not report:
        return None
    per = [h["seconds"] for h in report["hosts"]]
    return {
        "max_host_connect_facts_apply": max(
            s.get("connect", 0) + s.get("command", 0) + s.get("apply", 0) for s in per
        ),
        "max_connect": max(s.get("connect", 0) for s in per),
        "max_facts": max(s.get("command", 0) for s in per),
        "max_apply": max(s.get("apply", 0) for s in per),
        "verify": (report.get("verify") or {}).get("seconds", 0.0),
    }


# --------------------------------------------------------------------------- one lab


def rendered_scripts(inv: Path) -> tuple[dict[str, str], str]:
    """Each host's up script, and the down script (the same for every host)."""
    from mesh_push import inventory, modes
    from mesh_push.engine import keys
    from mesh_push.host.templates import load_templates
    from mesh_push.modes import scripts

    mesh = inventory.load(inv)
    mode = modes.of(mesh)
    p = mode.plan(mesh, keys.public_keys(mesh))
    env = load_templates()
    ups = {hp.name: scripts.host_script(mode, p, hp, env) for hp in p.hosts}
    return ups, scripts.down_script(mesh, env, purge=False)


def check(run: dict[str, Any], what: str) -> None:
    if run["rc"] != 0:
        raise RuntimeError(f"mesh-push {what} exited {run['rc']}:\n{run['stderr']}")


def check_up(run: dict[str, Any], what: str, lab: str = "", bridge: str = "") -> None:
    """A failed verify (exit 1, every host applied) is a figure, not a reason to stop; the
    STP and WireGuard state of the hosts it names is recorded in run["diag"]."""
    rep = run["report"]
    if rep is None or not all(h["ok"] for h in rep["hosts"]):
        check(run, what)
    verify = (rep.get("verify") or {}) if rep else {}
    if verify and not verify.get("ok"):
        problems = verify.get("problems") or []
        print(
            f"  note: {what}: verify failed after {verify.get('seconds')} s with "
            f"{len(problems)} problem(s), e.g. {problems[:3]}",
            flush=True,
        )
        if lab:
            hosts = sorted({p.split(":", 1)[0] for p in problems})[:4]
            run["diag"] = {h: diagnose(lab, h, bridge) for h in hosts}


def diagnose(lab: str, host: str, bridge: str) -> dict[str, str]:
    """Inside the lab host (lab exec, not SSH): its bridge's STP view and wg handshakes."""

    def ex(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "mesh_push.cli", "lab", "exec", "--name", lab, host, "--",
             *argv],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return done.stdout[-6000:] + done.stderr[-500:]

    return {
        "showstp": ex("brctl", "showstp", bridge),
        "handshakes": ex("wg", "show", "all", "latest-handshakes"),
        "date": ex("date", "+%s"),
    }


# What each cycle times: mesh-push's commands, and OpenSSH doing the same remote work.
COMMANDS = ("up", "noop", "check", "status", "down")
FLOORS = ("floor_true", "floor_gather", "floor_apply", "floor_noop", "floor_check", "floor_down")


def bench_lab(size: int, runs: int, inner: int, tmp: Path, stp: dict[str, int]) -> dict[str, Any]:
    name = f"mpb{size}"
    tried: set[str] = set()
    inv = tmp / f"{name}.yaml"
    for _attempt in range(5):
        net = free_network(tried)
        tried.add(str(net))
        data = lab_inventory(size, name, net, stp)
        inv.write_text(yaml.safe_dump(data, sort_keys=False))
        t0 = time.monotonic()
        up = subprocess.run(
            [sys.executable, "-m", "mesh_push.cli", "lab", "up", "-i", str(inv)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        lab_up_s = time.monotonic() - t0
        if up.returncode == 0:
            break
        lab_down(name)
        if "overlap" not in up.stderr:
            raise RuntimeError(f"lab up {name} failed:\n{up.stderr}")
    else:
        raise RuntimeError(f"no network for {name}")
    hosts = list(data["hosts"])
    cfg = Path(f"/run/mesh-push/lab/{name}/ssh_config")
    i = str(inv)
    res: dict[str, list[Any]] = {k: [] for k in (*COMMANDS, *FLOORS)}
    from mesh_push import inventory
    from mesh_push.engine.gather import first_command

    mesh = inventory.load(inv)
    # What `status` runs on each host: the facts, then the state.
    gather = first_command(mesh)
    links = len(data["links"])
    print(
        f"  lab {name}: {size} hosts, {links} links on {net}, lab up {lab_up_s:.2f} s, stp {stp}",
        flush=True,
    )
    try:
        for r in range(runs):
            up_run = mesh_push(["up", "-i", i, "--yes", "--json"], tmp)
            check_up(up_run, "up", name, mesh.bridge)
            res["up"].append(up_run)
            for _ in range(inner):
                noop = mesh_push(["up", "-i", i, "--yes", "--json"], tmp)
                check_up(noop, "up (no change)", name, mesh.bridge)
                if any(h["status"] != "unchanged" for h in noop["report"]["hosts"]):
                    print("  warning: a no-op up changed something", flush=True)
                res["noop"].append(noop)
            for _ in range(inner):
                # `up --check` on the converged mesh: the facts, then the check (exit 0).
                ck = mesh_push(["up", "-i", i, "--check", "--json"], tmp)
                if ck["rc"] != 0:
                    print(f"  warning: up --check exited {ck['rc']}", flush=True)
                res["check"].append(ck)
            for _ in range(inner):
                st = mesh_push(["status", "-i", i, "--json"], tmp)
                res["status"].append(st)  # exit 1 = unhealthy: still a timed status
            scripts, down_script = rendered_scripts(inv)
            down = mesh_push(["down", "-i", i, "--yes", "--json"], tmp)
            check(down, "down")
            res["down"].append(down)
            for _ in range(inner):
                res["floor_true"].append(parallel_ssh(cfg, hosts, ["true"], None))
                res["floor_gather"].append(parallel_ssh(cfg, hosts, [gather], None))
            res["floor_apply"].append(parallel_ssh(cfg, hosts, ["sh", "-s"], scripts.__getitem__))
            for _ in range(inner):
                res["floor_noop"].append(
                    parallel_ssh(cfg, hosts, ["sh", "-s"], scripts.__getitem__)
                )
            # The check's floor: the facts on every host, then every script in its read-only
            # mode (mesh-push needs all the facts before it can render any script). Run after
            # floor_noop, on the mesh it converged.
            for _ in range(inner):
                facts = parallel_ssh(cfg, hosts, [gather], None)
                dry = parallel_ssh(
                    cfg, hosts, ["env", "MESH_PUSH_CHECK=1", "sh", "-s"], scripts.__getitem__
                )
                res["floor_check"].append(
                    {
                        "wall": facts["wall"] + dry["wall"],
                        "failed": facts["failed"] + dry["failed"],
                        "changes": dry["changes"],
                    }
                )
            res["floor_down"].append(
                parallel_ssh(cfg, hosts, ["sh", "-s"], dict.fromkeys(hosts, down_script).get)
            )
            check(mesh_push(["down", "-i", i, "--yes", "--json"], tmp), "down (cleanup)")
            print(
                f"  cycle {r + 1}/{runs}: up {up_run['wall']:.2f} s, no-op up "
                f"{res['noop'][-1]['wall']:.2f} s, status {res['status'][-1]['wall']:.2f} s, "
                f"down {down['wall']:.2f} s | ssh true {res['floor_true'][-1]['wall']:.2f} s, "
                f"script {res['floor_apply'][-1]['wall']:.2f} s / "
                f"{res['floor_noop'][-1]['wall']:.2f} s, down script "
                f"{res['floor_down'][-1]['wall']:.2f} s",
                flush=True,
            )
    finally:
        lab_down(name)
    out = summarise(size, name, str(net), hosts, res)
    out.update(stp=stp, links=links, lab_up_s=lab_up_s)
    out["diag"] = [
        {"what": key, "cycle": n, **r["diag"]}
        for key in ("up", "noop")
        for n, r in enumerate(res[key])
        if r.get("diag")
    ]
    return out


def lab_down(name: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "mesh_push.cli", "lab", "down", "--name", name],
        cwd=REPO,
        capture_output=True,
    )


def summarise(
    size: int, name: str, net: str, hosts: list[str], res: dict[str, list[Any]]
) -> dict[str, Any]:
    def ph(key: str, field: str) -> dict[str, Any]:
        return stats(p[field] for p in (phases(r) for r in res[key]) if field in p)

    def js(key: str, field: str) -> dict[str, Any]:
        return stats(j[field] for j in (json_ssh_part(r["report"]) for r in res[key]) if j)

    out: dict[str, Any] = {"hosts": size, "lab": name, "network": net}
    for key in COMMANDS:
        fields = (
            "total",
            "startup_and_imports",
            "connect",
            "connect_and_first_command",
            "ssh_part",
            "prepare_gap",
            "apply",
            "verify_or_gather",
            "after_last_ssh_to_exit",
        )
        fields += tuple(
            f"each_{k}_{m}"
            for k in ("connect", "facts", "apply", "gather", "ping", "down")
            for m in ("median", "max")
        )
        out[key] = {f: ph(key, f) for f in fields if ph(key, f)["n"]}
        if key in ("up", "noop", "down"):
            out[key]["json"] = {
                f: js(key, f)
                for f in (
                    "max_host_connect_facts_apply",
                    "max_connect",
                    "max_facts",
                    "max_apply",
                    "verify",
                )
            }
        calls = [per_host_calls(r, hosts) for r in res[key]]
        out[key]["calls"] = calls[0] if calls else None
        out[key]["exit_codes"] = sorted({r["rc"] for r in res[key]})
        if key in ("up", "noop"):
            out[key]["verify_failed"] = sum(
                1 for r in res[key] if not ((r["report"] or {}).get("verify") or {}).get("ok")
            )
    for key in FLOORS:
        out[key] = {
            "wall": stats(r["wall"] for r in res[key]),
            "failed_hosts": max(r["failed"] for r in res[key]),
            "changes": [r["changes"] for r in res[key]],
        }
    return out


# --------------------------------------------------------------------------- plan, start-up


def bench_plan(sizes: list[int], runs: int, tmp: Path) -> dict[str, Any]:
    out = {}
    for n in sizes:
        path = tmp / f"plan{n}.yaml"
        path.write_text(plan_bench.inventory(n))
        rs = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-c", plan_bench.CHILD, str(path)],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            )
            rs.append(json.loads(done.stdout))
        out[str(n)] = {
            "total": stats(r["total"] for r in rs),
            "load": stats(r["load"] for r in rs),
            "plan": stats(r["plan"] for r in rs),
            "render": stats(r["render"] for r in rs),
            "peak_mib": max(r["peak_mib"] for r in rs),
            "tree": rs[0]["tree"],
        }
        print(
            f"  plan+render {n} hosts: {fmt(out[str(n)]['total'])} s, peak "
            f"{out[str(n)]['peak_mib']:.0f} MiB",
            flush=True,
        )
    return out


def bench_startup(runs: int) -> dict[str, Any]:
    script = Path(sys.executable).parent / "mesh-push"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mesh_push.cli"]

    def timed(argv: list[str]) -> float:
        t0 = time.monotonic()
        subprocess.run(argv, cwd=REPO, capture_output=True, check=True)
        return time.monotonic() - t0

    helps = [timed([*cmd, "--help"]) for _ in range(runs)]
    bare = [timed([sys.executable, "-c", "pass"]) for _ in range(runs)]
    imp = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mesh_push.cli", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in imp.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), len(m.group(3)) - 1, m.group(4)))
    top = sorted((r for r in rows if r[2] <= 4), reverse=True)[:12]
    return {
        "command": " ".join([*cmd, "--help"]),
        "help": stats(helps),
        "python_bare": stats(bare),
        "importtime_top": [
            {"module": mod, "cumulative_ms": cum / 1000, "self_ms": own / 1000, "depth": d}
            for cum, own, d, mod in top
        ],
        "modules_imported": len(rows),
    }


# --------------------------------------------------------------------------- profile


def profile(out_dir: Path, tmp: Path) -> None:
    """py-spy (all threads, native-free) of `status` and a no-op `up` on a 5-host lab."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "mpbp5"
    net = free_network(set())
    data = lab_inventory(5, name, net, FAST_STP)
    inv = tmp / f"{name}.yaml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        subprocess.run(
            [sys.executable, "-m", "mesh_push.cli", "lab", "up", "-i", str(inv)],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        check(mesh_push(["up", "-i", str(inv), "--yes", "--json"], tmp), "up")
        for label, args in (
            ("status", ["status", "-i", str(inv), "--json"]),
            ("noop-up", ["up", "-i", str(inv), "--yes", "--json"]),
        ):
            for idle in (False, True):
                stem = out_dir / f"{label}{'-idle' if idle else ''}"
                subprocess.run(
                    [
                        "py-spy",
                        "record",
                        "-r",
                        "500",
                        "-f",
                        "raw",
                        "-o",
                        f"{stem}.txt",
                        *(["--idle"] if idle else []),
                        "--",
                        sys.executable,
                        "-m",
                        "mesh_push.cli",
                        *args,
                    ],
                    cwd=REPO,
                    capture_output=True,
                )
                print(
                    f"--- {label} ({'wall, idle included' if idle else 'on CPU'}): {stem}.txt",
                    flush=True,
                )
                for frame, share in top_frames(Path(f"{stem}.txt")):
                    print(f"  {share:5.1f}%  {frame}")
    finally:
        lab_down(name)


def top_frames(path: Path, n: int = 25) -> list[tuple[str, float]]:
    """Inclusive share of samples per function (each counted once per stack)."""
    total, incl = 0, Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = {re.sub(r" \(.*?:\d+\)$", "", f) + " " + _file(f) for f in stack.split(";")}
        for f in frames:
            incl[f] += c
    return [(f, 100 * c / total) for f, c in incl.most_common(n)] if total else []


def _file(frame: str) -> str:
    m = re.search(r"\((.*?)(?::\d+)?\)$", frame)
    if not m:
        return ""
    p = m.group(1)
    for mark in ("site-packages/", "lib/python3.11/", "work/main/"):
        if mark in p:
            return "[" + p.split(mark, 1)[1] + "]"
    return f"[{p}]"


# --------------------------------------------------------------------------- output


def table(labs: list[dict[str, Any]]) -> None:
    print(
        "\nmedian (min–max) in seconds; floor = one OpenSSH `ssh HOST …` per host, all in parallel"
    )
    head = f"{'':44}" + "".join(f"{str(lab['hosts']) + ' hosts':>24}" for lab in labs)
    print(head)
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("up from nothing: total wall", lambda x: fmt(x["up"]["total"])),
        ("  start-up + imports", lambda x: fmt(x["up"].get("startup_and_imports", {}))),
        ("  SSH part (connect → last apply)", lambda x: fmt(x["up"].get("ssh_part", {}))),
        ("    connect (all hosts)", lambda x: fmt(x["up"].get("connect", {}))),
        ("    connect + facts", lambda x: fmt(x["up"].get("connect_and_first_command", {}))),
        ("    plan + render gap", lambda x: fmt(x["up"].get("prepare_gap", {}))),
        ("    apply (waves)", lambda x: fmt(x["up"].get("apply", {}))),
        (
            "  SSH part per JSON (slowest host c+f+a)",
            lambda x: fmt(x["up"]["json"]["max_host_connect_facts_apply"]),
        ),
        ("  verify (report verify.seconds)", lambda x: fmt(x["up"]["json"]["verify"])),
        ("floor: ssh sh -s script, from nothing", lambda x: fmt(x["floor_apply"]["wall"])),
        ("no-op up: total wall", lambda x: fmt(x["noop"]["total"])),
        ("  SSH part (connect → facts)", lambda x: fmt(x["noop"].get("ssh_part", {}))),
        ("  verify", lambda x: fmt(x["noop"]["json"]["verify"])),
        (
            "  one connect (median over calls)",
            lambda x: fmt(x["noop"].get("each_connect_median", {})),
        ),
        ("  one connect (slowest)", lambda x: fmt(x["noop"].get("each_connect_max", {}))),
        ("  one facts command (median)", lambda x: fmt(x["noop"].get("each_facts_median", {}))),
        ("  one gather command (median)", lambda x: fmt(x["noop"].get("each_gather_median", {}))),
        ("  one ping command (median)", lambda x: fmt(x["noop"].get("each_ping_median", {}))),
        ("floor: ssh sh -s script, no changes", lambda x: fmt(x["floor_noop"]["wall"])),
        ("up --check: total wall", lambda x: fmt(x["check"]["total"])),
        ("floor: ssh facts, then ssh check script", lambda x: fmt(x["floor_check"]["wall"])),
        ("status: total wall", lambda x: fmt(x["status"]["total"])),
        ("  connect + gather", lambda x: fmt(x["status"].get("connect_and_first_command", {}))),
        ("floor: ssh HOST <gather command>", lambda x: fmt(x["floor_gather"]["wall"])),
        ("down: total wall", lambda x: fmt(x["down"]["total"])),
        ("floor: ssh sh -s down script", lambda x: fmt(x["floor_down"]["wall"])),
        ("floor: ssh HOST true", lambda x: fmt(x["floor_true"]["wall"])),
        ("remote commands/host: up from nothing", lambda x: _calls(x["up"]["calls"])),
        ("remote commands/host: no-op up", lambda x: _calls(x["noop"]["calls"])),
        ("remote commands/host: up --check", lambda x: _calls(x["check"]["calls"])),
        ("remote commands/host: status", lambda x: _calls(x["status"]["calls"])),
        ("remote commands/host: down", lambda x: _calls(x["down"]["calls"])),
        (
            "ssh connections/host (jumps included)",
            lambda x: f"{x['noop']['calls']['connects_per_host']:.2f}",
        ),
    ]
    for label, f in rows:
        print(f"{label:44}" + "".join(f"{f(lab):>24}" for lab in labs))
    print("\nratios mesh-push / floor (medians; target ≤ 1.3×):")
    for lab in labs:
        r = ratios(lab)
        print(
            f"  {lab['hosts']:>2} hosts: "
            + ", ".join(f"{k} {v:.2f}×{'' if v <= 1.3 else ' (over)'}" for k, v in r.items())
        )
        c = lab["noop"]["calls"]
        print(
            f"     no-op up remote commands per host: {c['runs_per_host']:.2f} "
            f"(min {c['runs_min']}, max {c['runs_max']}; target 1)"
        )


def ratios(lab: dict[str, Any]) -> dict[str, float]:
    """mesh-push / floor, medians: the issue's three targets, then the rest."""
    pairs = {
        "up SSH part / script from nothing": (lab["up"].get("ssh_part"), lab["floor_apply"]),
        "no-op up total / script no-change": (lab["noop"]["total"], lab["floor_noop"]),
        "no-op up SSH part / script no-change": (lab["noop"].get("ssh_part"), lab["floor_noop"]),
        "up --check total / facts + check script": (lab["check"]["total"], lab["floor_check"]),
        "status total / gather": (lab["status"]["total"], lab["floor_gather"]),
        "status connect+gather / gather": (
            lab["status"].get("connect_and_first_command"),
            lab["floor_gather"],
        ),
        "down total / down script": (lab["down"]["total"], lab["floor_down"]),
        "down total / ssh true": (lab["down"]["total"], lab["floor_true"]),
    }
    return {
        k: a["median"] / b["wall"]["median"]
        for k, (a, b) in pairs.items()
        if a and a.get("n") and b["wall"].get("n")
    }


def _calls(c: dict[str, Any] | None) -> str:
    if not c:
        return "–"
    kinds = "+".join(f"{v:g}{k[0]}" for k, v in c["by_kind_per_host"].items())
    return f"{c['runs_per_host']:.2f} ({kinds})"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="5,20,50")
    ap.add_argument("--runs", type=int, default=3, help="cycles per lab (up from nothing …)")
    ap.add_argument("--inner", type=int, default=2, help="no-op ups, statuses, floors per cycle")
    ap.add_argument(
        "--stp",
        metavar="HELLO/FD/MAX_AGE",
        help="STP timers for every lab (default: lab.yaml's 1/4/6 up to 20 hosts, 2/9/16 above)",
    )
    ap.add_argument("--plan-sizes", default="1000,10000")
    ap.add_argument("--plan-runs", type=int, default=3)
    ap.add_argument("--startup-runs", type=int, default=10)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "push_bench.json")
    ap.add_argument("--profile", type=Path, metavar="DIR", help="only profile (py-spy)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("push_bench needs root (the lab)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="push_bench.") as t:
        tmp = Path(t)
        if args.profile:
            profile(args.profile, tmp)
            return 0
        result: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "commit": git("rev-parse", "HEAD"),
            # Uncommitted changes to the package itself (benchmarks/ and docs/ do not count).
            "mesh_push_dirty": git("status", "--porcelain", "--", "mesh_push").splitlines(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "runs": args.runs,
            "inner": args.inner,
        }
        print("start-up:", flush=True)
        result["startup"] = st = bench_startup(args.startup_runs)
        print(
            f"  {st['command']}: {fmt(st['help'])} s over {args.startup_runs} runs "
            f"(bare python {fmt(st['python_bare'])} s); "
            f"{st['modules_imported']} modules; top (cumulative ms):"
        )
        for row in st["importtime_top"]:
            print(f"    {row['cumulative_ms']:8.1f}  {'  ' * row['depth']}{row['module']}")
        print("plan + render:", flush=True)
        sizes = [int(s) for s in args.plan_sizes.split(",") if s]
        result["plan"] = bench_plan(sizes, args.plan_runs, tmp)
        result["labs"] = []
        for size in (int(s) for s in args.sizes.split(",") if s):
            print(f"lab of {size}:", flush=True)
            stp = STP_BY_SIZE.get(size, SLOW_STP if size > 20 else FAST_STP)
            if args.stp:
                hello, fd, max_age = (int(x) for x in args.stp.split("/"))
                stp = {"hello": hello, "forward_delay": fd, "max_age": max_age, "ageing": 2}
            result["labs"].append(bench_lab(size, args.runs, args.inner, tmp, stp))
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        table(result["labs"])
        for lab in result["labs"]:
            lab["ratios"] = ratios(lab)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
