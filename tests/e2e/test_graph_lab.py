"""`status --graph` on the lab, for real, in both modes (issue 26), each on a lab of its own:
all green after `up`; with bob–epsilon cut, the picture says so in red, drawn as the mesh now
is. stp: the wire that takes over (epsilon–rho) forwards where the plan has it block, drawn
solid and red, the ports as they now are, and the cut wire is red (no BPDU crosses it).
evpn: the cut link itself is red (OSPF and BFD down over it) while every other link stays
green and no port blocks anywhere, and the pairs `plan --cut` reroutes still reach each other
across the bridge. Needs root; under CI=true it must run.

README's status picture is the stp lab's: docs/graph.md says how it was made."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mesh_push.modes import picture
from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import MODES, lab_exec, lab_inventory, lab_up, mesh_push
from tests.unit.modes.test_graph import blocking_end, parse, wire

pytestmark = pytest.mark.lab

# Each mode's lab and network (/23s checked unused on this machine before they were chosen).
LABS = {"stp": labs.lab("mpg"), "evpn": labs.lab("mpgev")}
assert set(LABS) == set(MODES)
HOSTS = {"bob", "rho", "vorke", "epsilon", "pi0"}
CUT = ("bob", "epsilon")


@dataclass
class Lab:
    mode: str
    name: str
    inv: Path
    plan: dict[str, Any]  # `plan --json`


@pytest.fixture(scope="module", params=MODES)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_root()
    mode = request.param
    name, net = LABS[mode]
    path = lab_inventory(tmp_path_factory.mktemp(f"graph-{mode}") / "lab.yaml", name, net, mode)
    with lab_up(name, path):
        res = mesh_push("up", "--yes", "--json", "-i", str(path))
        assert res.returncode == 0, res.stdout + res.stderr
        plan = json.loads(mesh_push("plan", "--json", "-i", str(path), check=True).stdout)
        assert plan["mode"] == mode
        yield Lab(mode, name, path, plan)


def status_graph(inv: Path, out: Path) -> tuple[int, str]:
    res = mesh_push("status", "--json", "-i", str(inv), "--graph", str(out))
    assert res.returncode in (0, 1), res.stdout + res.stderr
    json.loads(res.stdout)
    return res.returncode, out.with_suffix(".dot").read_text()


def links(lab: Lab) -> set[tuple[str, str]]:
    return {(lk["hosts"][0], lk["hosts"][1]) for lk in lab.plan["links"]}


def test_healthy_mesh_is_green(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "status.svg"
    deadline = time.monotonic() + 30  # up verified it; STP may still be settling a port
    while (code := status_graph(lab.inv, out)[0]) != 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert code == 0
    nodes, edges = parse(out.with_suffix(".dot").read_text())
    assert {n for n, a in nodes.items() if a.get("fillcolor") == "palegreen"} == HOSTS
    assert {e["color"] for e in edges.values()} == {picture.WIRE_COLOUR["healthy"]}
    assert out.read_text().startswith("<?xml")
    if lab.mode == "evpn":
        # Every link drawn solid (routed, none blocks), the route reflectors in bold.
        assert set(edges) == links(lab)
        assert {e["style"] for e in edges.values()} == {"solid"}
        assert not any(blocking_end(edges, a, b) for a, b in edges)
        bold = {n for n, a in nodes.items() if a.get("penwidth") == "3"}
        assert bold == set(lab.plan["evpn"]["route_reflectors"])


def test_a_cut_shows_in_red_where_the_mesh_changed(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "cut.dot"
    mesh_push("lab", "cut", "--name", lab.name, *CUT, check=True)
    try:
        if lab.mode == "stp":
            stp_cut(lab, out)
        else:
            evpn_cut(lab, out)
    finally:
        mesh_push("lab", "heal", "--name", lab.name, *CUT, check=True)


def stp_cut(lab: Lab, out: Path) -> None:
    # max_age + 2 × forward_delay + 2 = 16 s with the lab's timers (docs/stp.md)
    deadline = time.monotonic() + 40
    while True:
        code, source = status_graph(lab.inv, out)
        _, edges = parse(source)
        takes_over, cut = wire(edges, "epsilon", "rho"), wire(edges, *CUT)
        deaf = "no BPDU crosses it" in cut.get("tooltip", "")
        if (takes_over["style"] == "solid" and deaf) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert code == 1
    assert (takes_over["style"], takes_over["color"]) == ("solid", "red"), source
    # The cut wire itself: red once each end claims it (no BPDU crosses), not 180 s later.
    assert (cut["color"], deaf) == ("red", True), cut
    assert blocking_end(edges, "epsilon", "rho") == set()
    # vorke now blocks towards bob and rho: as planned at bob, so that wire stays green
    assert blocking_end(edges, "vorke", "rho") == {"vorke"}
    assert blocking_end(edges, "vorke", "bob") == {"vorke"}
    assert "status, UNHEALTHY" in source


def evpn_cut(lab: Lab, out: Path) -> None:
    # BFD notices within a second and OSPF's dead interval is 4 s; a status run takes some.
    deadline = time.monotonic() + 40
    while True:
        code, source = status_graph(lab.inv, out)
        nodes, edges = parse(source)
        cut = wire(edges, *CUT)
        # Red at the first problem; OSPF's and BFD's are seen a moment apart.
        down = all(w in cut.get("tooltip", "") for w in ("OSPF", "BFD"))
        if (cut["color"] == picture.WIRE_COLOUR["port"] and down) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert code == 1
    # The cut link: red (its handshakes are still fresh: OSPF and BFD are what is down).
    assert (cut["style"], cut["color"]) == ("solid", "red"), source
    assert "OSPF" in cut["tooltip"] and "BFD" in cut["tooltip"], cut
    # The rest of the underlay is untouched: green, solid, no port blocks anywhere.
    for a, b in links(lab):
        if {a, b} == set(CUT):
            continue
        assert (wire(edges, a, b)["style"], wire(edges, a, b)["color"]) == (
            "solid",
            picture.WIRE_COLOUR["healthy"],
        ), (a, b, source)
    assert not any(blocking_end(edges, a, b) for a, b in edges)
    # The link's ends are unhealthy hosts; every other host is healthy.
    fill = {n: a.get("fillcolor") for n, a in nodes.items() if n in HOSTS}
    assert {n for n, f in fill.items() if f == "salmon"} == set(CUT), fill
    assert {n for n, f in fill.items() if f == "palegreen"} == HOSTS - set(CUT), fill
    assert "status, UNHEALTHY" in source
    # The pairs `plan --cut` reroutes still reach each other across the bridge, around the cut.
    res = mesh_push("plan", "--json", "-i", str(lab.inv), "--cut", "-".join(CUT), check=True)
    rerouted = json.loads(res.stdout)["evpn"]["cut"]["rerouted"]
    bridge = {h["name"]: h["bridge_address"].split("/")[0] for h in lab.plan["hosts"]}
    assert {tuple(sorted(r["hosts"])) for r in rerouted} >= {tuple(sorted(CUT))}
    for r in rerouted:
        a, b = r["hosts"]
        assert r["new_path"], r
        target = bridge[b]
        deadline = time.monotonic() + 15
        while lab_exec(lab.name, a, "ping", "-c", "1", "-W", "1", target).returncode != 0:
            assert time.monotonic() < deadline, f"{a} → {b} ({target}) after the cut"
