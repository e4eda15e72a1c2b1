"""`status --graph` on the lab, for real: all green after `up`; with bob–epsilon cut, the wire
that takes over (epsilon–rho) forwards where the plan has it block, and the picture says so in
red, drawn as the ports now are. Needs root; under CI=true it must run.

README's status picture is this lab's, with the cut wire's handshake also gone stale (which
takes 180 s, too long for a test): docs/graph.md says how it was made."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_push.modes import picture
from tests.conftest import require_root
from tests.e2e.labkit import lab_inventory, lab_up, mesh_push
from tests.unit.modes.test_graph import blocking_end, parse, wire

pytestmark = pytest.mark.lab

LAB = "mpg"
NET = "198.18.80"
HOSTS = {"bob", "rho", "vorke", "epsilon", "pi0"}


@pytest.fixture(scope="module")
def inv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    path = lab_inventory(tmp_path_factory.mktemp("graph") / "lab.yaml", LAB, NET)
    with lab_up(LAB, path):
        res = mesh_push("up", "--yes", "--json", "-i", str(path))
        assert res.returncode == 0, res.stdout + res.stderr
        yield path


def status_graph(inv: Path, out: Path) -> tuple[int, str]:
    res = mesh_push("status", "--json", "-i", str(inv), "--graph", str(out))
    assert res.returncode in (0, 1), res.stdout + res.stderr
    json.loads(res.stdout)
    return res.returncode, out.with_suffix(".dot").read_text()


def test_healthy_mesh_is_green(inv: Path, tmp_path: Path) -> None:
    out = tmp_path / "status.svg"
    deadline = time.monotonic() + 30  # up verified it; STP may still be settling a port
    while (code := status_graph(inv, out)[0]) != 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert code == 0
    nodes, edges = parse(out.with_suffix(".dot").read_text())
    assert {n for n, a in nodes.items() if a.get("fillcolor") == "palegreen"} == HOSTS
    assert {e["color"] for e in edges.values()} == {picture.WIRE_COLOUR["healthy"]}
    assert out.read_text().startswith("<?xml")


def test_cut_wire_shows_where_the_tree_changed(inv: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut.dot"
    mesh_push("lab", "cut", "--name", LAB, "bob", "epsilon", check=True)
    try:
        # max_age + 2 × forward_delay + 2 = 16 s with the lab's timers (docs/stp.md)
        deadline = time.monotonic() + 40
        while True:
            code, source = status_graph(inv, out)
            _, edges = parse(source)
            takes_over = wire(edges, "epsilon", "rho")
            if takes_over["style"] == "solid" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert code == 1
        assert (takes_over["style"], takes_over["color"]) == ("solid", "red"), source
        assert blocking_end(edges, "epsilon", "rho") == set()
        # vorke now blocks towards bob and rho: as planned at bob, so that wire stays green
        assert blocking_end(edges, "vorke", "rho") == {"vorke"}
        assert blocking_end(edges, "vorke", "bob") == {"vorke"}
        assert "status, UNHEALTHY" in source
    finally:
        mesh_push("lab", "heal", "--name", LAB, "bob", "epsilon", check=True)
