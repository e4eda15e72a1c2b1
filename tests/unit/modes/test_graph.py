"""`plan --graph` and `status --graph`: the DOT text of the write-up's network, of a cut, and of
each live state `status` colours; hostile names; the files written, and the exit codes. The
committed picture in docs/ must be the one the documented command makes today."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import graphviz
import pytest

from mesh_push import cli, inventory, modes
from mesh_push.core.model import Host, Link
from mesh_push.core.problems import printable
from mesh_push.files import picture as files
from mesh_push.modes import picture
from mesh_push.modes.base import Plan
from mesh_push.modes.judgement import Judgement
from mesh_push.modes.stp import graph as stp_graph
from mesh_push.modes.stp import tree as stp
from mesh_push.modes.stp.plan import StpPlan, own
from mesh_push.modes.topology import Edge, edge
from tests.kit import ROOT, plan
from tests.unit.modes.test_judge import handshake, judge, lab_plan, port, states

SEED = ROOT / "inventory" / "seed.yaml"
# README: the picture of the write-up's network, and the command that makes it.
DOCS_DOT, DOCS_SVG = ROOT / "docs" / "seed.dot", ROOT / "docs" / "seed.svg"
REGENERATE = ["plan", "-i", "inventory/seed.yaml", "--graph", "docs/seed.svg"]

ID = r'(?:"(?:[^"\\]|\\.)*"|[^\s"\[\]-][^\s\[\]]*)'
VALUE = r'(?:"(?:[^"\\]|\\.)*"|[^\s\]]+)'
NODE = re.compile(rf"^\t({ID})(?: \[(.*)\])?$")
EDGE = re.compile(rf"^\t({ID}) -- ({ID})(?: \[(.*)\])?$")
ATTR = re.compile(rf"(\w+)=({VALUE})")

Attrs = dict[str, str]


def _unquote(text: str) -> str:
    return text[1:-1] if text.startswith('"') else text


def _attrs(text: str | None) -> Attrs:
    return {k: _unquote(v) for k, v in ATTR.findall(text or "")}


def parse(source: str) -> tuple[dict[str, Attrs], dict[tuple[str, str], Attrs]]:
    """Our DOT, one statement a line: nodes by id, edges by (tail, head) ids. The legend (an
    HTML label) is kept as one node with its raw line."""
    nodes: dict[str, Attrs] = {}
    edges: dict[tuple[str, str], Attrs] = {}
    for line in source.splitlines():
        if line.startswith('\t"#legend"'):
            nodes["#legend"] = {"raw": line}
        elif m := EDGE.match(line):
            edges[(_unquote(m[1]), _unquote(m[2]))] = _attrs(m[3])
        elif (m := NODE.match(line)) and m[1] not in ("graph", "node", "edge"):
            nodes[_unquote(m[1])] = _attrs(m[2])
    return nodes, edges


def seed_plan() -> StpPlan:
    return own(plan(inventory.load(SEED), {}))


def plan_graph(p: Plan, cut: Edge | None = None) -> graphviz.Graph:
    """What `plan --graph` draws (with `--cut`, after losing that link)."""
    return modes.of(p.mesh).graph(p, None, cut)


def status_graph(p: Plan, j: Judgement) -> graphviz.Graph:
    """What `status --graph` draws."""
    return modes.of(p.mesh).graph(p, j, None)


def wire(edges: dict[tuple[str, str], Attrs], a: str, b: str) -> Attrs:
    return edges.get((a, b)) or edges[(b, a)]


def blocking_end(edges: dict[tuple[str, str], Attrs], a: str, b: str) -> set[str]:
    """The hosts at which the wire a–b carries the bar (tee) of a blocking port."""
    tail, head = (a, b) if (a, b) in edges else (b, a)
    e = edges[(tail, head)]
    out = set()
    if e.get("dir") in ("back", "both") and e.get("arrowtail") == "tee":
        out.add(tail)
    if e.get("dir") in ("forward", "both") and e.get("arrowhead") == "tee":
        out.add(head)
    return out


TREE = {("epsilon", "vorke"), ("epsilon", "bob"), ("bob", "rho"), ("rho", "pi0")}
BLOCKED_AT = {("vorke", "bob"): "vorke", ("epsilon", "rho"): "epsilon", ("vorke", "rho"): "vorke"}


def test_seed_hosts_are_shaped_by_kind_and_the_roots_marked() -> None:
    nodes, _ = parse(plan_graph(seed_plan()).source)
    assert set(nodes) == {"bob", "rho", "vorke", "epsilon", "pi0", "#legend"}
    assert {n: a["shape"] for n, a in nodes.items() if n != "#legend"} == {
        "bob": "box",
        "rho": "box",
        "epsilon": "box",
        "vorke": "ellipse",
        "pi0": "octagon",
    }
    # rho is pi0's jump host: a double outline, and said in its label
    assert nodes["rho"]["peripheries"] == "2"
    assert "peripheries" not in nodes["bob"]
    assert nodes["rho"]["label"] == r"rho\nstatic, jump host\nbackup root"
    assert nodes["bob"]["label"] == r"bob\nstatic\nroot"
    assert nodes["pi0"]["label"] == r"pi0\nNAT"
    assert (nodes["bob"]["penwidth"], nodes["rho"]["penwidth"]) == ("3", "2")
    assert "penwidth" not in nodes["epsilon"]


def test_seed_wires_tree_thick_blocked_dashed_with_the_blocking_end() -> None:
    _, edges = parse(plan_graph(seed_plan()).source)
    assert len(edges) == 7
    for a, b in TREE:
        e = wire(edges, a, b)
        assert (e["style"], e["penwidth"]) == ("solid", picture.TREE_WIDTH), (a, b)
        assert "dir" not in e
    for (a, b), at in BLOCKED_AT.items():
        e = wire(edges, a, b)
        assert (e["style"], e["penwidth"]) == ("dashed", picture.BLOCKED_WIDTH), (a, b)
        assert blocking_end(edges, a, b) == {at}
    # latency and VNI; a longer wire for more latency
    assert wire(edges, "epsilon", "vorke")["label"] == r"18 ms\nVNI 1"
    assert wire(edges, "rho", "pi0")["label"] == r"5 ms\nVNI 7"
    assert float(wire(edges, "vorke", "rho")["len"]) > float(wire(edges, "rho", "pi0")["len"])


def test_seed_legend_and_layout() -> None:
    g = plan_graph(seed_plan())
    nodes, _ = parse(g.source)
    legend = nodes["#legend"]["raw"]
    for text in ("static / dynamic / NAT host", "jump host", "blocking end", "latency, VNI"):
        assert text in legend
    assert "healthy" not in legend  # colours are for status
    assert f"layout={picture.LAYOUT}" in g.source
    assert 'label="mesh seed: plan"' in g.source


def test_cut_shows_the_tree_after_it() -> None:
    p = seed_plan()
    cut = edge("bob", "epsilon")
    nodes, edges = parse(plan_graph(p, cut).source)
    gone = wire(edges, "bob", "epsilon")
    assert (gone["style"], gone["color"]) == ("dotted", picture.CUT_COLOUR)
    assert gone["label"].endswith(r"\ncut")
    assert blocking_end(edges, "bob", "epsilon") == set()
    # docs/stp.md: epsilon's root port becomes rho's wire, vorke blocks towards bob and rho.
    assert wire(edges, "epsilon", "rho")["style"] == "solid"
    assert blocking_end(edges, "epsilon", "rho") == set()
    for a, b in (("vorke", "bob"), ("vorke", "rho")):
        assert wire(edges, a, b)["style"] == "dashed"
        assert blocking_end(edges, a, b) == {"vorke"}
    assert wire(edges, "epsilon", "vorke")["style"] == "solid"
    assert "the cut wire" in nodes["#legend"]["raw"]
    outcome = stp.after_cut(p.tree, [h.name for h in p.mesh.hosts], cut)
    drawn = {edge(a, b) for (a, b), e in edges.items() if e["style"] == "solid"}
    assert drawn == set(outcome.forwarding_edges)


def test_evpn_plan_and_cut_draw_the_underlay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """evpn mode has its picture too: every link drawn with its OSPF cost, the route
    reflectors in bold; with --cut, that link dotted (OSPF reroutes, nothing blocks)."""
    inventory_file = ROOT / "inventory" / "lab-evpn.yaml"
    out = tmp_path / "cut.gv"
    argv = ["plan", "-i", str(inventory_file), "--cut", "bob-rho", "--graph", str(out)]
    assert cli.main(argv) == cli.EXIT_OK
    assert "Without bob–rho" in capsys.readouterr().out  # the pairs that reroute
    source = out.read_text()
    assert source == plan_graph(plan(inventory.load(inventory_file)), edge("bob", "rho")).source
    nodes, edges = parse(source)
    assert len(edges) == 7
    gone = wire(edges, "bob", "rho")
    assert (gone["style"], gone["color"]) == ("dotted", picture.CUT_COLOUR)
    assert gone["label"] == r"12 ms\nVNI 6\ncost 120\ncut"
    for (a, b), e in edges.items():
        if {a, b} != {"bob", "rho"}:
            assert (e["style"], e["penwidth"]) == ("solid", picture.TREE_WIDTH), (a, b)
        assert blocking_end(edges, a, b) == set()
    assert wire(edges, "rho", "pi0")["label"] == r"5 ms\nVNI 7\ncost 50"
    assert {n for n, a in nodes.items() if a.get("penwidth") == "3"} == {"bob", "rho"}
    assert nodes["rho"]["label"] == r"rho\nstatic\nroute reflector"
    assert "the cut link" in nodes["#legend"]["raw"]
    assert 'label="mesh labevpn (evpn): plan, after cutting bob–rho"' in source


# --- status: the live states, on the captured lab (tests/data/observe) ---------------------


def status_dot(mutate: object = None, errors: dict[str, str] | None = None) -> str:
    s = states()
    if callable(mutate):
        mutate(s)
    p = lab_plan()
    return str(status_graph(p, judge(p, s, errors)).source)


def test_status_healthy_is_green_with_a_legend() -> None:
    source = status_dot()
    nodes, edges = parse(source)
    assert 'label="mesh lab: status, healthy"' in source
    for name in ("bob", "rho", "vorke", "epsilon", "pi0"):
        assert (nodes[name]["style"], nodes[name]["fillcolor"]) == ("filled", "palegreen")
    assert {e["color"] for e in edges.values()} == {picture.WIRE_COLOUR["healthy"]}
    legend = nodes["#legend"]["raw"]
    for text in stp_graph.STATES.values():
        assert text in legend
    for state, fill in picture.HOST_FILL.items():
        assert f"BGCOLOR='{fill}'>host</TD><TD ALIGN='LEFT'>{state}" in legend
    # the tree as the hosts' ports have it: the captured lab converged to the plan
    for a, b in TREE:
        assert wire(edges, a, b)["style"] == "solid"
    for (a, b), at in BLOCKED_AT.items():
        assert blocking_end(edges, a, b) == {at}


def test_status_stale_handshake() -> None:
    nodes, edges = parse(status_dot(handshake("bob", "rho", 400)))
    e = wire(edges, "bob", "rho")
    assert e["color"] == picture.WIRE_COLOUR["stale"] == "darkorange"
    assert "handshake at bob 400 s old" in e["tooltip"]
    assert nodes["bob"]["fillcolor"] == nodes["rho"]["fillcolor"] == "salmon"
    assert nodes["bob"]["label"].endswith(r"\nunhealthy")
    assert wire(edges, "epsilon", "vorke")["color"] == "forestgreen"


def test_status_port_not_as_planned() -> None:
    swapped = (port("vorke", "bob", "forwarding"), port("vorke", "epsilon", "blocking"))
    _, edges = parse(status_dot(lambda s: [f(s) for f in swapped]))
    for a, b in (("vorke", "bob"), ("epsilon", "vorke")):
        assert wire(edges, a, b)["color"] == picture.WIRE_COLOUR["port"] == "red"
    # drawn as the ports are, not as planned
    assert wire(edges, "vorke", "bob")["style"] == "solid"
    assert wire(edges, "epsilon", "vorke")["style"] == "dashed"
    assert blocking_end(edges, "epsilon", "vorke") == {"vorke"}
    assert wire(edges, "bob", "rho")["color"] == "forestgreen"


def test_status_unreachable_host() -> None:
    def gone(s: dict[str, object]) -> None:
        del s["pi0"]

    nodes, edges = parse(status_dot(gone, {"pi0": "ssh: connection refused"}))
    assert nodes["pi0"]["fillcolor"] == "lightgrey"
    assert nodes["pi0"]["label"] == r"pi0\nNAT\nunreachable"
    assert nodes["pi0"]["tooltip"] == "unreachable: ssh: connection refused"
    e = wire(edges, "rho", "pi0")
    assert e["color"] == picture.WIRE_COLOUR["unreachable"]
    assert e["style"] == "solid"  # planned: its end could not be read


# --- hostile names and values -----------------------------------------------------------

HOSTILE = ['a"b', "<x>", "c\nd", "e:f", "g\\", "legend", "h\\N", "i]j [k=l]"]


def hostile_plan() -> Plan:
    """The seed's shape with names no inventory accepts (its checks are not relied on)."""
    mesh = inventory.load(SEED)
    rename = dict(zip([h.name for h in mesh.hosts], HOSTILE, strict=False))
    hosts = [dataclasses.replace(h, name=rename[h.name]) for h in mesh.hosts]
    hosts += [Host(n, "static", None, 10 + i) for i, n in enumerate(HOSTILE[len(hosts) :])]
    links = [dataclasses.replace(lk, a=rename[lk.a], b=rename[lk.b]) for lk in mesh.links]
    links += [Link(HOSTILE[0], n, 20 + i) for i, n in enumerate(HOSTILE[len(mesh.hosts) :])]
    hosts = [dataclasses.replace(h, ssh=dataclasses.replace(h.ssh, via=None)) for h in hosts]
    return plan(dataclasses.replace(mesh, hosts=tuple(hosts), links=tuple(links)), {})


def drawn(source: str) -> dict[str, Any]:
    """What Graphviz itself reads in `source` (dot -Tjson)."""
    done = subprocess.run(
        ["dot", "-Tjson"], input=source, capture_output=True, text=True, check=True
    )
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def unescape(text: str) -> str:
    """A DOT escString as Graphviz shows it: \\n a line break, \\\\ one backslash."""
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text)


NEEDS_DOT = pytest.mark.skipif(shutil.which("dot") is None, reason="scripts/install has it")


@NEEDS_DOT
def test_hostile_names_stay_text() -> None:
    p = hostile_plan()
    g = drawn(plan_graph(p).source)
    hosts = [o for o in g["objects"] if o["name"] != "#legend"]
    # one node per host, each labelled with its own name, as text; every wire between them
    assert sorted(unescape(o["label"]).split("\n")[0] for o in hosts) == sorted(
        printable(n) for n in HOSTILE
    )
    assert len(g["edges"]) == len(p.mesh.links)
    assert [o["name"] for o in g["objects"]].count("#legend") == 1


@NEEDS_DOT
def test_hostile_host_output_stays_text() -> None:
    s = states()
    del s["pi0"]
    why = 'refused "<b>x</b>"\\N\n]; evil [color=red'
    p = lab_plan()
    g = drawn(status_graph(p, judge(p, s, {"pi0": why})).source)
    pi0 = next(o for o in g["objects"] if o["name"] == "pi0")
    assert unescape(pi0["tooltip"]) == "unreachable: " + printable(why)
    assert len(g["objects"]) == 6 and len(g["edges"]) == len(p.mesh.links)
    assert all(e.get("color") != "red" for e in g["edges"])


def test_text_never_makes_html_or_escapes() -> None:
    assert picture.text("<a", "b>") == r"<a\nb>"
    g = plan_graph(hostile_plan())
    assert "label=<<TABLE" in g.source  # the legend, our own HTML
    assert g.source.count("=<") == 1  # and no other HTML label


# --- files and exit codes -----------------------------------------------------------------


def test_unknown_ending_is_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mesh.pdf"
    assert cli.main(["plan", "-i", str(SEED), "--graph", str(out)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "must end in one of .dot, .gv, .svg, .png" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_missing_dot_is_bad_usage_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(files.shutil, "which", lambda _name: None)
    for command in ("plan", "status"):
        out = tmp_path / "mesh.svg"
        # status would connect to the seed's hosts: it must stop before that
        assert cli.main([command, "-i", str(SEED), "--graph", str(out)]) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert "needs Graphviz's `dot`, which is not installed" in err, err
        assert list(tmp_path.iterdir()) == []
    # the DOT itself needs no dot
    assert cli.main(["plan", "-i", str(SEED), "--graph", str(tmp_path / "m.gv")]) == cli.EXIT_OK
    assert (tmp_path / "m.gv").read_text() == plan_graph(seed_plan()).source


@NEEDS_DOT
def test_svg_and_png_come_with_their_dot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for ending, magic in ((".svg", b"<?xml"), (".png", b"\x89PNG")):
        out = tmp_path / f"cut{ending}"
        argv = ["plan", "-i", str(SEED), "--cut", "bob-epsilon", "--graph", str(out), "--json"]
        assert cli.main(argv) == cli.EXIT_OK
        captured = capsys.readouterr()
        json.loads(captured.out)  # stdout stays one JSON document
        assert f"wrote {out.with_suffix('.dot')}, {out}" in captured.err
        assert out.read_bytes().startswith(magic)
        expected = plan_graph(seed_plan(), edge("bob", "epsilon")).source
        assert out.with_suffix(".dot").read_text() == expected


def test_committed_picture_is_current() -> None:
    """docs/seed.svg is made by `mesh-push plan -i inventory/seed.yaml --graph docs/seed.svg`
    (README). The DOT beside it is compared: what `dot` draws of it may differ by a pixel
    between Graphviz versions, the DOT does not."""
    assert DOCS_DOT.read_text() == plan_graph(seed_plan()).source, (
        "docs/seed.dot is out of date: run .venv/bin/mesh-push " + " ".join(REGENERATE)
    )
    svg = DOCS_SVG.read_text()
    assert svg.startswith("<?xml") and "mesh seed: plan" in svg
    for name in ("bob", "rho", "vorke", "epsilon", "pi0"):
        assert f"<title>{name}</title>" in svg


def test_large_meshes_get_straight_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Routing edges around nodes takes neato minutes at 500 hosts (picture.SPLINE_HOSTS)."""
    assert "splines=true" in plan_graph(seed_plan()).source
    monkeypatch.setattr(picture, "SPLINE_HOSTS", 4)
    assert "splines=false" in plan_graph(seed_plan()).source


def test_readme_pictures_exist() -> None:
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert "docs/seed.svg" in pictures and "docs/status-cut.svg" in pictures
    for path in pictures:
        head = (ROOT / path).read_bytes()[:8]
        # Graphviz's drawings, and the status page as a browser drew it (a PNG).
        assert head.startswith(b"\x89PNG" if path.endswith(".png") else b"<?xml"), path
