"""The metrics, from the judge's verdict on the real captured states (tests/data/observe):
what each says when the mesh is healthy and when one thing is broken, that promtool accepts the
textfile, that docs/monitoring.md documents every metric, and that hostile names (past the
inventory's checks) and hostile host output are escaped, never new series."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mesh_push import inventory
from mesh_push.core.model import Mesh
from mesh_push.files.fsutil import LocalFileError
from mesh_push.host import state as observe
from mesh_push.modes.base import Plan
from mesh_push.modes.stp.metrics import STP_STATES
from mesh_push.modes.stp.observe import StpBridge, StpSeen
from mesh_push.modes.stp.plan import StpPlan, own
from mesh_push.monitoring import metrics
from mesh_push.monitoring.status import write_textfile
from tests.kit import OBSERVED, ROOT, judge, plan, state

# The lab's mesh (inventory/lab.yaml, stp) as captured healthy (tests/data/observe).
HOSTS = ["bob", "rho", "vorke", "epsilon", "pi0"]
States = dict[str, observe.HostState]


@functools.cache
def lab_mesh() -> Mesh:
    return inventory.load(ROOT / "inventory/lab.yaml")


@functools.cache
def captured() -> States:
    return {h: state((OBSERVED / f"{h}.txt").read_text(), lab_mesh()) for h in HOSTS}


def keys() -> dict[str, str]:
    wg = lab_mesh().wg_interface
    return {h: st.wg[wg].public_key for h, st in captured().items()}


@functools.cache
def lab_plan() -> StpPlan:
    return own(plan(lab_mesh(), keys()))


def states() -> States:
    """A fresh deep copy of the healthy captured mesh, for one test to break."""
    return copy.deepcopy(captured())


def seen(st: observe.HostState) -> StpSeen:
    assert isinstance(st.mode_state, StpSeen)
    return st.mode_state


def bridge(st: observe.HostState) -> StpBridge:
    stp = seen(st).stp
    assert stp is not None
    return stp


def promtool() -> str:
    path = ROOT / ".venv/bin/promtool"
    assert path.exists(), "promtool missing: scripts/install puts it in .venv/bin"
    return str(path)


def snapshot(s: dict[str, observe.HostState] | None = None) -> metrics.Snapshot:
    p = lab_plan()
    return metrics.Snapshot(p, judge(p, states() if s is None else s), 0.75, 1.8e9)


def samples(snap: metrics.Snapshot, tmp_path: Path) -> list[Sample]:
    """The textfile written for `snap`, checked by promtool, read back."""
    path = tmp_path / "mesh.prom"
    write_textfile(path, snap)
    text = path.read_text()
    res = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert not res.stdout.strip() and not res.stderr.strip(), res  # no lint complaint either
    return [x for fam in text_string_to_metric_families(text) for x in fam.samples]


def wire_of(a: str, b: str) -> str:
    lk = next(lk for lk in lab_plan().mesh.links if {lk.a, lk.b} == {a, b})
    return f"{lk.a}-{lk.b}"


def value(found: list[Sample], name: str, **labels: str) -> float:
    hits = [x.value for x in found if x.name == name and labels.items() <= x.labels.items()]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def test_a_healthy_mesh(tmp_path: Path) -> None:
    found = samples(snapshot(), tmp_path)
    mesh = {"mesh": "lab"}
    assert value(found, "mesh_push_mesh_healthy", **mesh) == 1
    assert value(found, "mesh_push_tree_matches_plan", **mesh) == 1
    assert value(found, "mesh_push_gather_duration_seconds", **mesh) == 0.75
    assert value(found, "mesh_push_gather_timestamp_seconds", **mesh) == 1.8e9
    for h in HOSTS:
        assert value(found, "mesh_push_host_reachable", host=h) == 1
        assert value(found, "mesh_push_host_healthy", host=h) == 1
        assert value(found, "mesh_push_bridge_root_info", host=h, root="bob") == 1
        assert value(found, "mesh_push_bridge_root_matches_plan", host=h) == 1
    p = lab_plan()
    for hp in p.hosts:
        for pe in hp.peers:
            at = {"host": hp.name, "peer": pe.name}
            assert 0 <= value(found, "mesh_push_peer_handshake_age_seconds", **at) < 180
            assert value(found, "mesh_push_peer_received_bytes_total", **at) > 0
            assert value(found, "mesh_push_peer_sent_bytes_total", **at) > 0
    blocking = {tuple(x) for x in p.tree.expected.blocking}
    for lk in p.mesh.links:
        wire = f"{lk.a}-{lk.b}"
        assert value(found, "mesh_push_wire_healthy", wire=wire) == 1
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            at = {"host": here, "peer": there, "wire": wire}
            planned = "blocking" if (here, there) in blocking else "forwarding"
            for stp_state in STP_STATES:
                want = 1 if stp_state == planned else 0
                assert value(found, "mesh_push_port_stp_state", state=stp_state, **at) == want
            assert value(found, "mesh_push_port_stp_matches_plan", **at) == 1


def test_a_port_forwarding_against_the_plan(tmp_path: Path) -> None:
    s = states()
    bridge(s["vorke"]).ports["bob"].state = "forwarding"  # planned blocking
    found = samples(snapshot(s), tmp_path)
    wire = wire_of("vorke", "bob")
    at = {"host": "vorke", "peer": "bob", "wire": wire}
    assert value(found, "mesh_push_mesh_healthy") == 0
    assert value(found, "mesh_push_tree_matches_plan") == 0
    assert value(found, "mesh_push_port_stp_matches_plan", **at) == 0
    assert value(found, "mesh_push_port_stp_state", state="forwarding", **at) == 1
    assert value(found, "mesh_push_wire_healthy", wire=wire) == 0
    assert value(found, "mesh_push_host_healthy", host="vorke") == 0


def test_an_unreachable_host_has_no_stale_figures(tmp_path: Path) -> None:
    s = states()
    del s["pi0"]
    found = samples(snapshot(s), tmp_path)
    assert value(found, "mesh_push_host_reachable", host="pi0") == 0
    assert value(found, "mesh_push_host_healthy", host="pi0") == 0
    assert not [x for x in found if x.labels.get("host") == "pi0" and "peer" in x.labels]
    # Unknown is not "differs": the tree's metric is left out, the mesh is unhealthy.
    assert not [x for x in found if x.name == "mesh_push_tree_matches_plan"]
    assert value(found, "mesh_push_mesh_healthy") == 0


def test_a_handshake_never_made_is_infinitely_old(tmp_path: Path) -> None:
    s = states()
    rho_key = lab_plan().host("rho").public_key
    assert rho_key
    s["bob"].wg["wg0"].handshakes[rho_key] = 0
    found = samples(snapshot(s), tmp_path)
    assert value(found, "mesh_push_peer_handshake_age_seconds", host="bob", peer="rho") == (
        math.inf
    )


def test_every_metric_is_documented() -> None:
    # Both modes' families (an evpn mesh's, judged with no host read, has them all, empty).
    evpn = plan(inventory.load(ROOT / "inventory/lab-evpn.yaml"))
    both = (snapshot(), metrics.Snapshot(evpn, judge(evpn, {}), 0.75, 1.8e9))
    names = {fam.name for snap in both for fam in metrics.families(snap)}
    doc = (ROOT / "docs/monitoring.md").read_text()
    documented = set(re.findall(r"`(mesh_push_[a-z_]+)`", doc))
    # Counters are documented with the `_total` their samples carry.
    emitted = {n + "_total" if n.endswith("_bytes") else n for n in names}
    assert emitted <= documented, emitted - documented
    assert documented <= emitted, documented - emitted


HOSTILE = [
    'a"b',
    "back\\slash",
    "new\nline",
    'x"} 1\nmesh_push_mesh_healthy{mesh="lab"} 1\n#',
    "{}=,",
    "ünï\tcode",
    "",
]


def hostile_plan() -> tuple[Plan, dict[str, str]]:
    """The lab's plan with hostile mesh and host names, built past the inventory's checks."""
    p = lab_plan()
    new = {h: f"{h}{HOSTILE[i % len(HOSTILE)]}" for i, h in enumerate(HOSTS)}
    mesh = p.mesh
    mesh = dataclasses.replace(
        mesh,
        name='mesh"}\n' + HOSTILE[3],
        hosts=tuple(dataclasses.replace(h, name=new[h.name]) for h in mesh.hosts),
        links=tuple(dataclasses.replace(lk, a=new[lk.a], b=new[lk.b]) for lk in mesh.links),
        stp=dataclasses.replace(mesh.stp, root=new[mesh.stp.root] if mesh.stp.root else None),
    )
    return plan(mesh, {new[h]: k for h, k in keys().items()}), new


def test_hostile_names_and_host_output_are_escaped(tmp_path: Path) -> None:
    p, new = hostile_plan()
    s = {new[h]: st for h, st in states().items()}
    for st in s.values():
        # What a host prints is not trusted either: a root id and port states of its making.
        seen(st).root_id = HOSTILE[3]
        for pt in bridge(st).ports.values():
            pt.state = 'forwarding"} 1\nmesh_push_mesh_healthy 1'
    snap = metrics.Snapshot(p, judge(p, s), 0.5, 1.8e9)
    found = samples(snap, tmp_path)
    names = {fam.name for fam in metrics.families(snap)}
    assert {x.name.removesuffix("_total") for x in found} <= names
    assert [x.value for x in found if x.name == "mesh_push_mesh_healthy"] == [0]
    assert {x.labels["mesh"] for x in found} == {p.mesh.name}
    hosts = {x.labels["host"] for x in found if "host" in x.labels}
    assert hosts == set(new.values())
    assert {x.labels["peer"] for x in found if "peer" in x.labels} <= set(new.values())
    # A root id that is not a bridge id's form is not passed on.
    assert {x.labels["root"] for x in found if "root" in x.labels} == {"unknown"}
    assert {x.labels["state"] for x in found if "state" in x.labels} == set(STP_STATES)
    # A state no kernel reports is in no state series, and matches no plan.
    assert not [x for x in found if x.name == "mesh_push_port_stp_state" and x.value]


def test_a_foreign_root_is_shown_by_its_bridge_id(tmp_path: Path) -> None:
    s = states()
    seen(s["pi0"]).root_id = "8000.02aabbccddee"
    found = samples(snapshot(s), tmp_path)
    assert value(found, "mesh_push_bridge_root_info", host="pi0") == 1
    roots = [
        x.labels["root"] for x in found if x.labels.get("host") == "pi0" and "root" in x.labels
    ]
    assert roots == ["8000.02aabbccddee"]
    assert value(found, "mesh_push_bridge_root_matches_plan", host="pi0") == 0


def test_the_textfile_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "mesh.prom"
    path.write_text("old\n")
    write_textfile(path, snapshot())
    assert "mesh_push_mesh_healthy" in path.read_text()
    assert os.listdir(tmp_path) == ["mesh.prom"]  # no temporary file left behind


def test_an_unwritable_textfile_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalFileError, match="cannot write"):
        write_textfile(tmp_path / "missing-dir" / "mesh.prom", snapshot())


def test_the_wire_label_is_the_links_hosts_as_the_inventory_lists_them() -> None:
    # As in status --json's wires[].hosts, joined by `-`.
    wires = {
        x.labels["wire"]
        for fam in metrics.families(snapshot())
        for x in fam.samples
        if "wire" in x.labels
    }
    assert wires == {f"{lk.a}-{lk.b}" for lk in lab_plan().mesh.links}
