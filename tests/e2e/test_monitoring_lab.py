"""`status --serve` on the lab (issue 18): scraped with a real HTTP client while a wire is cut,
its metrics show the mesh and the wire unhealthy, then healthy again and the tree back on plan
after the heal. Also the cost of one refresh against `status`. Needs root; under CI=true it
must run. Lab `mpx` on 198.18.84.0/23; the server listens on 127.0.0.1 only, and is stopped
by its pid."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mesh_push import inventory as inventory_mod
from tests.conftest import require_root
from tests.e2e.labkit import ROOT, cli_argv, lab_inventory, lab_up, mesh_push

LAB = "mpx"
NET = "198.18.84"
CUT = ("bob", "epsilon")  # a wire of the planned tree: cutting it moves the tree
INTERVAL = "1"


@dataclass
class Scraper:
    base: str

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        code, text = self.get("/metrics")
        assert code == 200, text
        return {
            (x.name, frozenset(x.labels.items())): x.value
            for fam in text_string_to_metric_families(text)
            for x in fam.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        want = set(labels.items())
        hits = [v for (n, ls), v in self.metrics().items() if n == name and want <= ls]
        assert len(hits) <= 1, (name, labels, hits)
        return hits[0] if hits else None

    def wait(self, what: str, seconds: float, ok: Callable[[], bool]) -> float:
        start = time.monotonic()
        while not ok():
            if time.monotonic() - start > seconds:
                seen = {
                    (n, tuple(sorted(ls))): v
                    for (n, ls), v in self.metrics().items()
                    if n.endswith(("healthy", "matches_plan"))
                }
                raise AssertionError(f"not {what} within {seconds} s: {seen}")
            time.sleep(0.5)
        return time.monotonic() - start


def plan_tree(inventory: Path, cut: str | None = None) -> dict[str, Any]:
    extra = ("--cut", cut) if cut else ()
    res = mesh_push("plan", "-i", str(inventory), "--json", *extra, check=True)
    tree: dict[str, Any] = json.loads(res.stdout)["tree"]
    return tree


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    inv = lab_inventory(tmp_path_factory.mktemp("monitoring") / "lab.yaml", LAB, NET)
    with lab_up(LAB, inv):
        mesh_push("up", "-i", str(inv), "--yes", "--json", check=True)
        yield inv


@pytest.fixture
def scraper(inventory: Path) -> Iterator[Scraper]:
    argv = cli_argv("status", "-i", str(inventory), "--serve", "127.0.0.1:0")
    proc = subprocess.Popen(
        [*argv, "--interval", INTERVAL],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving http://127.0.0.1:" in line, line + proc.stderr.read()
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        yield Scraper(f"http://127.0.0.1:{port}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        rest = proc.stderr.read()
        assert "Traceback" not in rest, rest
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # by its pid: the server this test started
            proc.wait()


def test_metrics_follow_a_cut_and_a_heal(scraper: Scraper, inventory: Path) -> None:
    # The wire label: the link's two hosts as the inventory lists them.
    lk = next(lk for lk in inventory_mod.load(inventory).links if {lk.a, lk.b} == set(CUT))
    wire = f"{lk.a}-{lk.b}"
    scraper.wait("healthy at first", 30, lambda: scraper.value("mesh_push_mesh_healthy") == 1)
    assert scraper.get("/healthz")[0] == 200
    assert scraper.value("mesh_push_wire_healthy", wire=wire) == 1
    assert scraper.value("mesh_push_tree_matches_plan") == 1

    # The cost of a refresh: the gather's own duration, as the server measures it, against
    # a whole `status` run (which also starts Python and loads the inventory).
    durations = set()
    for _ in range(6):
        d = scraper.value("mesh_push_gather_duration_seconds")
        assert d is not None
        durations.add(d)
        time.sleep(float(INTERVAL))
    runs = []
    for _ in range(3):
        start = time.monotonic()
        mesh_push("status", "-i", str(inventory), "--json", check=True)
        runs.append(time.monotonic() - start)
    print(
        f"\nrefresh (gather + judge) median {statistics.median(durations):.2f} s over "
        f"{len(durations)} refreshes; `status --json` median {statistics.median(runs):.2f} s"
    )

    # After the cut, STP fails over to the tree `plan --cut` predicts: the ports that block
    # in the plan but forward in that tree are off plan. (The cut wire's own ends may look
    # fine: each forwards, as planned, and its handshakes take minutes to age.)
    planned = {tuple(x) for x in plan_tree(inventory)["blocking"]}
    failover = {tuple(x) for x in plan_tree(inventory, "-".join(CUT))["blocking"]}
    off_plan = planned - failover
    assert off_plan
    cut = False
    try:
        mesh_push("lab", "cut", "--name", LAB, *CUT, check=True)
        cut = True
        took = scraper.wait(
            "unhealthy, the tree off plan, after the cut",
            40,
            lambda: (
                scraper.value("mesh_push_mesh_healthy") == 0
                and scraper.value("mesh_push_tree_matches_plan") == 0
                and all(
                    scraper.value("mesh_push_port_stp_matches_plan", host=h, peer=w) == 0
                    for h, w in off_plan
                )
            ),
        )
        own = scraper.value("mesh_push_wire_healthy", wire=wire)
        print(f"cut {wire}: the metrics showed the failover after {took:.1f} s (wire: {own})")
        # /healthz is the exporter's health: still fine while the mesh is not.
        assert scraper.get("/healthz")[0] == 200
    finally:
        if cut:
            mesh_push("lab", "heal", "--name", LAB, *CUT, check=True)
    took = scraper.wait(
        "healthy again after the heal",
        60,
        lambda: (
            scraper.value("mesh_push_mesh_healthy") == 1
            and scraper.value("mesh_push_tree_matches_plan") == 1
            and scraper.value("mesh_push_wire_healthy", wire=wire) == 1
        ),
    )
    print(f"healed {wire}: healthy in the metrics after {took:.1f} s")
    for end, far in (CUT, CUT[::-1]):
        at = {"host": end, "peer": far, "wire": wire}
        assert scraper.value("mesh_push_port_stp_matches_plan", **at) == 1
        assert scraper.value("mesh_push_port_stp_state", state="forwarding", **at) == 1
