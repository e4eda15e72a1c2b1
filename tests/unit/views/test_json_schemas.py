"""Every `--json` output against its schema in docs/schemas/ (described in docs/json.md).

Real documents, built without hosts: `plan` and `render` by running the command, in both
modes; `status` from the captured lab states of tests/data/observe, judged (evpn mode: its
link interfaces as the gather reads them, with FRR as captured in tests/data/evpn); the run
document (`up`,
`rotate-keys`, `down`) from hand-built reports of every outcome; `measure` and the lab's
commands through their own printing code, with what needs hosts or root replaced by
values. The schemas' enums are checked against the code they come from, and a few wrong
documents must be refused, so that a schema that accepts anything cannot pass."""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mesh_push import inventory
from mesh_push.cli import handlers
from mesh_push.core import model
from mesh_push.engine import commands, outcome
from mesh_push.engine import measure as measure_cmd
from mesh_push.engine.apply import Rollout
from mesh_push.engine.commands import Run
from mesh_push.engine.keys import public_keys as known_keys
from mesh_push.engine.outcome import HostReport, Outcome
from mesh_push.engine.verify import Verification
from mesh_push.host import state as observe
from mesh_push.inventory.schema import LAB_KINDS, LAB_LOGINS, LAB_NAME
from mesh_push.lab import addresses, ops
from mesh_push.lab import cli as lab_cli
from mesh_push.lab import move as lab_move
from mesh_push.lab.names import moved
from mesh_push.lab.state import LabState
from mesh_push.modes.base import Plan
from mesh_push.modes.evpn import observe as evpn_observe
from mesh_push.modes.stp.observe import StpBridge, StpSeen, stp_from_ip_json
from mesh_push.views import reports
from mesh_push.views import run as run_view
from tests import zygote
from tests.kit import DATA, GOLDEN, OBSERVED, ROOT, judge, plan
from tests.kit import state as kit_state
from tests.schemas import NAMES, SCHEMAS, errors, schema, validate

HOSTS = ["bob", "rho", "vorke", "epsilon", "pi0"]
LAB = ROOT / "inventory/lab.yaml"


@functools.cache
def _lab_mesh() -> model.Mesh:
    return inventory.load(LAB)


def state(host: str) -> observe.HostState:
    """`host`'s state as captured on the lab (tests/data/observe), parsed as the engine does."""
    return kit_state((OBSERVED / f"{host}.txt").read_text(), _lab_mesh())


def public_key(st: observe.HostState) -> str:
    return st.wg[_lab_mesh().wg_interface].public_key


def lab_plan() -> Plan:
    return plan(_lab_mesh(), {h: public_key(state(h)) for h in HOSTS})


def stp_of(st: observe.HostState) -> StpBridge | None:
    assert isinstance(st.mode_state, StpSeen)
    return st.mode_state.stp


def mesh_push(*args: str) -> subprocess.CompletedProcess[str]:
    return zygote.run(args, cwd=ROOT, env=os.environ, timeout=60)


# --------------------------------------------------------------------------- the schemas


def test_one_valid_schema_per_output() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("*.schema.json")) == sorted(
        f"{n}.schema.json" for n in NAMES
    )
    for name in NAMES:
        Draft202012Validator.check_schema(schema(name))
        assert schema(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_docs_json_md_links_every_schema() -> None:
    text = (ROOT / "docs" / "json.md").read_text()
    for name in NAMES:
        assert f"(schemas/{name}.schema.json)" in text, name


def _enum(name: str, *path: str) -> list[Any]:
    node: Any = schema(name)
    for key in path:
        node = node[key]
    return list(node["enum"])


def test_run_status_enum_is_the_outcomes() -> None:
    assert _enum("run", "$defs", "host", "properties", "status") == [o.value for o in Outcome]
    rules = schema("run")["$defs"]["host"]["allOf"]
    ok = rules[0]["if"]["properties"]["status"]["enum"]
    assert sorted(ok) == sorted(o.value for o in Outcome if o.ok)
    failing = rules[1]["if"]["properties"]["status"]["enum"]
    assert sorted(failing + ok + ["pending"]) == sorted(o.value for o in Outcome)


def test_run_seconds_keys_are_those_the_code_records() -> None:
    recorded = set()
    for source in (ROOT / "mesh_push").rglob("*.py"):
        recorded |= set(re.findall(r"\.seconds\[\"(\w+)\"\]", source.read_text()))
    seconds = schema("run")["$defs"]["host"]["properties"]["seconds"]
    assert recorded and set(seconds["propertyNames"]["enum"]) == recorded


def test_status_stp_states_cover_the_captured_ones() -> None:
    """The kernel's port states (brctl and iproute2 print the same words), and "" where the
    tool printed none: every state of the captures, read either way, is one of them."""
    states = _enum("status", "$defs", "stpState")
    assert states == ["disabled", "listening", "learning", "forwarding", "blocking", ""]
    seen = set()
    for host in HOSTS:
        text = (OBSERVED / f"{host}.txt").read_text()
        links = json.loads(observe.sections(text)["ip-link"])
        for stp in (stp_of(state(host)), stp_from_ip_json(links, "internet")):
            assert stp is not None
            seen |= {port.state for port in stp.ports.values()}
    assert seen and seen <= set(states)


def test_plan_and_lab_enums_follow_the_model() -> None:
    endpoint_kinds = list(typing.get_args(model.EndpointKind))
    assert _enum("plan", "$defs", "host", "properties", "endpoint") == endpoint_kinds
    assert _enum("plan", "properties", "mtu", "properties", "policy") == list(
        typing.get_args(model.MtuPolicy)
    )
    node = schema("lab-up")["$defs"]["node"]["properties"]
    assert node["kind"]["enum"] == [*endpoint_kinds, "router"]
    assert node["role"]["enum"] == list(typing.get_args(addresses.Role))
    assert _enum("lab-up", "properties", "login") == list(LAB_LOGINS)
    assert _enum("lab-up", "properties", "kind") == list(LAB_KINDS)
    assert _enum("lab-status", "$defs", "lab", "properties", "kind") == list(LAB_KINDS)
    assert _enum("lab-status", "$defs", "node", "properties", "kind") == [*endpoint_kinds, "router"]
    for name, where in (
        ("lab-up", schema("lab-up")["properties"]["name"]),
        ("lab-status", schema("lab-status")["$defs"]["lab"]["properties"]["name"]),
        ("lab-move", schema("lab-move")["properties"]["lab"]),
    ):
        assert where["pattern"] == LAB_NAME.pattern, name


# --------------------------------------------------------------------------- plan, render


@pytest.mark.parametrize(
    "args",
    [
        ["-i", "inventory/seed.yaml"],  # no public keys known: every public_key is null
        ["-i", "inventory/lab.yaml"],  # keys from inventory/lab.state.json
        ["-i", "inventory/lab.yaml", "--cut", "bob-rho"],
        ["-i", "inventory/lab.yaml", "--cut", "rho-pi0"],  # pi0 cut off: null costs, empty paths
        ["-i", "inventory/lab-evpn.yaml"],
        ["-i", "inventory/lab-evpn.yaml", "--cut", "bob-rho"],  # two pairs reroute
        ["-i", "inventory/lab-evpn.yaml", "--cut", "rho-pi0"],  # pi0 cut off: no new path
        ["-i", "inventory/lab-evpn20.yaml"],
    ],
    ids=["seed", "lab", "lab-cut", "lab-cut-off", "evpn", "evpn-cut", "evpn-cut-off", "evpn20"],
)
def test_plan(args: list[str]) -> None:
    res = mesh_push("plan", *args, "--json")
    assert res.returncode == 0, res.stderr
    validate(res.stdout, "plan")
    doc = json.loads(res.stdout)
    if "seed" in args[1]:
        assert all(h["public_key"] is None for h in doc["hosts"])
    evpn = "evpn" in args[1]
    assert doc["mode"] == ("evpn" if evpn else "stp")
    assert all(pe["interface"] for h in doc["hosts"] for pe in h["peers"])
    if evpn:
        assert doc["tree"] is None and doc["stp"] is None
        assert all("ospf_cost" in lk and "in_tree" not in lk for lk in doc["links"])
        cut = doc["evpn"]["cut"]
        assert (cut is None) is ("--cut" not in args)
        if "bob-rho" in args:
            assert cut["link"] == ["bob", "rho"] and cut["rerouted"]
            assert all(r["new_path"] for r in cut["rerouted"])
        if "rho-pi0" in args:
            assert all(r["new_path"] == [] for r in cut["rerouted"])
    else:
        assert doc["evpn"] is None
        assert all("in_tree" in lk and "ospf_cost" not in lk for lk in doc["links"])
    if "rho-pi0" in args and not evpn:
        assert doc["tree"]["routing_cost_ms"] is None
        assert any(p["path"] == [] for p in doc["tree"]["pairs"])


def _plan_doc(*args: str) -> dict[str, Any]:
    res = mesh_push("plan", *args, "--json")
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def test_plan_schema_refuses_what_the_plan_never_prints() -> None:
    doc = _plan_doc("-i", "inventory/lab.yaml")
    host, link = doc["hosts"][0], doc["links"][0]
    for broken in (
        {**doc, "extra": 1},
        {**doc, "mtu": {**doc["mtu"], "policy": "shrink"}},
        {**doc, "hosts": [{**host, "public_key": "not a key"}]},
        {
            **doc,
            "tree": {**doc["tree"], "pairs": [{"hosts": ["a", "b"], "path": [], "latency_ms": 3}]},
        },
        # stp mode has a tree, the stp timers and no evpn part; its hosts wires, its links
        # in_tree and never an OSPF cost; every peer names its interface
        {**doc, "tree": None},
        {**doc, "stp": None},
        {**doc, "mode": "evpn"},
        {**doc, "hosts": [_without(host, "wires")]},
        {**doc, "hosts": [{**host, "peers": [_without(host["peers"][0], "interface")]}]},
        {**doc, "links": [_without(link, "in_tree")]},
        {**doc, "links": [{**link, "ospf_cost": 10}]},
    ):
        assert errors(broken, "plan"), broken


def test_plan_schema_refuses_what_an_evpn_plan_never_prints() -> None:
    doc = _plan_doc("-i", "inventory/lab-evpn.yaml")
    host, link, evpn = doc["hosts"][0], doc["links"][0], doc["evpn"]
    cut = _plan_doc("-i", "inventory/lab-evpn.yaml", "--cut", "rho-pi0")["evpn"]["cut"]
    off = cut["rerouted"][0]  # a pair cut off
    for broken in (
        # no tree and no stp part, no bridge priority or wires, no in_tree; every link has
        # its OSPF cost
        {**doc, "tree": _plan_doc("-i", "inventory/lab.yaml")["tree"]},
        {**doc, "stp": {"hello": 2, "forward_delay": 15, "max_age": 20}},
        {**doc, "evpn": None},
        {**doc, "hosts": [{**host, "bridge_priority": 32768}]},
        {**doc, "hosts": [{**host, "wires": []}]},
        {**doc, "links": [{**link, "in_tree": True}]},
        {**doc, "links": [_without(link, "ospf_cost")]},
        # a pair cut off has no new latency; a path has both its ends; cut is always there
        {**doc, "evpn": {**evpn, "cut": {**cut, "rerouted": [{**off, "new_latency_ms": 1.0}]}}},
        {**doc, "evpn": {**evpn, "cut": {**cut, "rerouted": [{**off, "new_path": ["rho"]}]}}},
        {**doc, "evpn": _without(evpn, "cut")},
    ):
        assert errors(broken, "plan"), broken


def test_render(tmp_path: Path) -> None:
    inv = tmp_path / "seed.yaml"
    shutil.copy(ROOT / "inventory/seed.yaml", inv)
    keys = json.loads((GOLDEN / "seed.keys.json").read_text())
    (tmp_path / "seed.state.json").write_text(json.dumps({"public_keys": keys}))
    res = mesh_push("render", "-i", str(inv), "-o", str(tmp_path / "out"), "--json")
    assert res.returncode == 0, res.stderr
    validate(res.stdout, "render")
    scripts = json.loads(res.stdout)["scripts"]
    assert sorted(scripts) == sorted(keys)
    assert all(Path(path).is_file() for path in scripts.values())


# --------------------------------------------------------------------------- status


def _states() -> dict[str, observe.HostState]:
    return {h: state(h) for h in HOSTS}


def test_status_healthy() -> None:
    p = lab_plan()
    doc = reports.status_json(p, judge(p, _states()))
    validate(doc, "status")
    assert doc["healthy"] is True


def test_status_with_an_unreachable_host() -> None:
    p = lab_plan()
    states = {h: st for h, st in _states().items() if h != "pi0"}
    doc = reports.status_json(p, judge(p, states, {"pi0": "connect: timed out"}))
    validate(doc, "status")
    pi0 = next(h for h in doc["hosts"] if h["name"] == "pi0")
    assert pi0["reachable"] is False and pi0["healthy"] is None
    assert pi0["wireguard"] is None and pi0["bridge"] is None
    assert doc["tree_matches_plan"] is None
    assert any(w["ends"]["pi0"] is None for w in doc["wires"] if "pi0" in w["hosts"])


def test_status_unhealthy_everywhere_it_can_be() -> None:
    """A tree that differs, a port still learning, a stale handshake, a bridge and a wg0 gone."""
    states = {h: copy.deepcopy(st) for h, st in _states().items()}
    vorke = stp_of(states["vorke"])
    assert vorke is not None
    vorke.ports["bob"].state = "forwarding"
    vorke.ports["epsilon"].state = "learning"
    p = lab_plan()
    pi0_key = p.host("pi0").public_key
    assert pi0_key is not None
    states["rho"].wg["wg0"].handshakes[pi0_key] = states["rho"].now - 400
    epsilon_seen = states["epsilon"].mode_state
    assert isinstance(epsilon_seen, StpSeen)
    epsilon_seen.stp = None
    del states["epsilon"].links["internet"]
    del states["bob"].wg["wg0"]  # wg0 gone
    del states["bob"].links["wg0"]
    doc = reports.status_json(p, judge(p, states))
    validate(doc, "status")
    assert doc["healthy"] is False and doc["tree_matches_plan"] is False
    epsilon = next(h for h in doc["hosts"] if h["name"] == "epsilon")
    assert epsilon["bridge"] is None and epsilon["healthy"] is False
    bob = next(h for h in doc["hosts"] if h["name"] == "bob")
    assert bob["wireguard"]["public_key"] is None and bob["wireguard"]["listen_port"] is None


def test_status_before_a_key_is_known() -> None:
    """A first `up` never ran for vorke: its peers' planned key is null, and with it what
    `wg` says about that peer."""
    known = {h: public_key(state(h)) for h in HOSTS if h != "vorke"}
    p = plan(_lab_mesh(), known)
    doc = reports.status_json(p, judge(p, _states()))
    validate(doc, "status")
    peers = [pe for h in doc["hosts"] for pe in h["wireguard"]["peers"] if pe["name"] == "vorke"]
    assert peers and all(pe["public_key"] is None for pe in peers)


def test_the_example_in_status_md_is_valid() -> None:
    text = (ROOT / "docs" / "status.md").read_text()
    (example,) = re.findall(r"```json\n(.*?)```", text, re.S)
    validate(example, "status")


def test_status_schema_refuses_an_unreachable_host_said_healthy() -> None:
    p = lab_plan()
    states = {h: st for h, st in _states().items() if h != "pi0"}
    doc = json.loads(json.dumps(reports.status_json(p, judge(p, states))))
    pi0 = next(h for h in doc["hosts"] if h["name"] == "pi0")
    pi0["healthy"] = True
    assert errors(doc, "status")
    doc["healthy"] = True
    pi0["healthy"] = None
    assert errors(doc, "status")


EVPN = ROOT / "inventory/lab-evpn.yaml"
NOW = 1_800_000_000
PSK_FP = "0123456789abcdef"  # a pre-shared key's fingerprint, as hosts report it


def _evpn_plan(psk: bool = False) -> Plan:
    """The evpn lab's plan, its keys from inventory/lab-evpn.state.json; with `psk`, every
    link has a pre-shared key (of fingerprint PSK_FP)."""
    text = EVPN.read_text()
    if psk:
        text = text.replace("  mode: evpn\n", "  mode: evpn\n  psk: true\n")
    mesh = inventory.parse(text, EVPN)
    return plan(mesh, known_keys(mesh), dict.fromkeys(mesh.links, PSK_FP) if psk else None)


def _frr(prefix: str = "") -> evpn_observe.FrrState:
    def read(name: str) -> str:
        return (DATA / "evpn" / f"{prefix}rho-{name}.json").read_text()

    frr = evpn_observe.parse(
        {
            "frr-daemons": "watchfrr\nzebra\nbgpd\nospfd\nbfdd",
            "frr-bgp": read("bgp-l2vpn-evpn-summary"),
            "frr-bfd": read("bfd-peers"),
            "frr-ospf": read("ospf-neighbor"),
            "frr-vni": read("evpn-vni-detail"),
        }
    )
    assert frr is not None
    return frr


def _evpn_states(p: Plan) -> dict[str, observe.HostState]:
    """Every host but pi0 as the gather reads it: each link interface up, its peer heard from
    5 s ago (with the planned pre-shared key, or none); rho's FRR as captured on the lab, the
    others' not read."""
    out = {}
    for hp in p.hosts:
        if hp.name == "pi0":
            continue
        links, wg = {}, {}
        for iface in hp.wg:
            (peer,) = iface.peers
            key = peer.public_key or ""
            links[iface.name] = observe.Link(
                iface.name, True, p.mesh.mtu.wireguard, "wireguard",
                addresses=[str(iface.address)], alias=p.mesh.mark,
            )  # fmt: skip
            wg[iface.name] = observe.WgIf(
                public_key=hp.public_key or "",
                listen_port=iface.port,
                handshakes={key: NOW - 5},
                endpoints={key: "198.18.4.99:51820"},
                transfer={key: (1234, 5678)},
                allowed_ips={key: peer.allowed_ips_text},
                keepalives={key: str(peer.keepalive or "off")},
                psks={key: peer.psk_fp or "none"},
            )
        frr = _frr() if hp.name == "rho" else None
        out[hp.name] = observe.HostState(hp.name, NOW, links, wg, mode_state=frr)
    return out


@pytest.mark.parametrize("psk", [False, True], ids=["no-psk", "psk"])
def test_status_evpn(psk: bool) -> None:
    p = _evpn_plan(psk)
    doc = reports.status_json(p, judge(p, _evpn_states(p), {"pi0": "connect: timed out"}))
    validate(doc, "status")
    assert doc["mode"] == "evpn" and doc["healthy"] is False
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert hosts["pi0"]["reachable"] is False
    assert hosts["pi0"]["links"] is None and hosts["pi0"]["frr"] is None
    assert hosts["rho"]["frr"] is not None and hosts["bob"]["frr"] is None
    ends = [h["links"] for h in doc["hosts"] if h["links"] is not None]
    assert ends and all(
        lk["endpoint"] == "198.18.4.99:51820"
        and lk["preshared_key"] is psk
        and lk["preshared_key_planned"] is psk
        for links in ends
        for lk in links
    )
    for w in doc["links"]:
        for name, end in w["ends"].items():
            if name == "pi0":
                assert end is None
            else:
                assert end["preshared_key"] is psk


def test_status_schema_refuses_an_evpn_link_without_its_pre_shared_key() -> None:
    p = _evpn_plan()
    doc = json.loads(json.dumps(reports.status_json(p, judge(p, _evpn_states(p)))))
    validate(doc, "status")
    for name in ("preshared_key", "preshared_key_planned", "endpoint"):
        broken = copy.deepcopy(doc)
        del broken["hosts"][0]["links"][0][name]
        assert errors(broken, "status"), name
    broken = copy.deepcopy(doc)
    del broken["links"][0]["ends"][broken["links"][0]["hosts"][0]]["preshared_key"]
    assert errors(broken, "status")


# --------------------------------------------------------------------------- run


def _reports() -> dict[str, HostReport]:
    """One host per outcome, each as the commands leave it."""
    out: dict[str, HostReport] = {}

    def add(o: Outcome) -> HostReport:
        rep = out[o.value.replace(" ", "-")] = HostReport(o.value.replace(" ", "-"))
        rep.outcome = o
        return rep

    add(Outcome.PENDING)
    add(Outcome.UNREACHABLE).fail(Outcome.UNREACHABLE, "connect", "connection refused")
    failed = add(Outcome.FAILED)
    failed.seconds = {"connect": 0.1234, "command": 0.5, "apply": 2.34567}
    failed.changes = ["wg0: created"]
    failed.fail(Outcome.FAILED, "bridge", "the host script failed", 3, "line\n" * 20 + "it broke\n")
    add(Outcome.SKIPPED).fail(
        Outcome.SKIPPED, "apply", "not touched: it is reached through failed, which failed"
    )
    add(Outcome.NOT_ATTEMPTED).fail(
        Outcome.NOT_ATTEMPTED, "rollout", "rollout stopped before batch 2 of 2: ..."
    )
    rolled = add(Outcome.ROLLED_BACK)
    rolled.changes = ["wg0: peer added"]
    rolled.fail(Outcome.ROLLED_BACK, "confirm", "no confirmation within 8 s: ...")
    add(Outcome.EXCLUDED).message = "outside --limit: not touched"
    changed = add(Outcome.CHANGED)
    changed.changes = ["wire bob: created", "bridge internet: MTU 1500"]
    changed.drift = ["wire bob missing"]
    changed.message = "repaired: wire bob missing"
    changed.seconds = {"connect": 0.2, "command": 0.31, "apply": 1.5}
    add(Outcome.UNCHANGED).seconds = {"connect": 0.2, "command": 0.3}
    pending = add(Outcome.WOULD_CHANGE)
    pending.changes = ["wire rho created (vni 6)"]
    pending.seconds = {"connect": 0.2, "command": 0.3, "check": 0.4}
    return out


def _only(reports: dict[str, HostReport], *outcomes: Outcome) -> dict[str, HostReport]:
    return {n: r for n, r in reports.items() if r.outcome in outcomes}


def _run_doc(run: Run) -> dict[str, Any]:
    doc = run_view.run_json(run)
    validate(doc, "run")
    assert doc["ok"] is run.ok
    return doc


def test_run_every_outcome_a_stopped_rollout_and_a_failed_verification() -> None:
    reports = _only(_reports(), *(o for o in Outcome if o is not Outcome.PENDING))
    rollout = Rollout([["failed", "rolled-back"], ["not-attempted"]], 0, 2, ("failed",))
    verification = Verification(
        False,
        61.23456,
        ["changed: no handshake with unchanged", "the spanning tree differs from the plan"],
        {},
        False,
        ["changed", "unchanged"],
        ["unreachable", "failed", "skipped", "not-attempted", "rolled-back"],
    )
    doc = _run_doc(Run(reports, rollout, verification))
    assert {h["status"] for h in doc["hosts"]} == {o.value for o in Outcome} - {"pending"}
    assert doc["rollout"]["failed"] == ["failed"]
    failed = next(h for h in doc["hosts"] if h["name"] == "failed")
    assert failed["exit_code"] == 3 and failed["output_tail"].endswith("it broke")


def test_run_all_well() -> None:
    reports = _only(_reports(), Outcome.CHANGED, Outcome.UNCHANGED, Outcome.EXCLUDED)
    verification = Verification(True, 4.5, [], {}, True, ["changed", "unchanged"], [])
    doc = _run_doc(Run(reports, Rollout([["changed"]], 1), verification))
    assert doc["ok"] is True and "failed" not in doc["rollout"]
    assert doc["rollout"]["stopped_before_batch"] is None


def test_run_verification_of_nothing() -> None:
    reports = _only(_reports(), Outcome.UNREACHABLE)
    problem = "no host could be verified: none was worked on"
    verification = Verification(False, 0.0, [problem], {}, not_verified=["unreachable"])
    _run_doc(Run(reports, Rollout([], 0), verification))


def test_run_cancelled() -> None:
    reports = _only(_reports(), Outcome.PENDING, Outcome.UNREACHABLE, Outcome.EXCLUDED)
    doc = _run_doc(Run(reports, cancelled=True))
    assert doc["cancelled"] is True and doc["ok"] is False


def test_down_and_no_verify() -> None:
    reports = _only(_reports(), Outcome.CHANGED, Outcome.UNCHANGED, Outcome.FAILED)
    doc = _run_doc(Run(reports))
    assert doc["rollout"] is None and doc["verify"] is None


def test_run_schema_refuses_the_old_and_the_inconsistent() -> None:
    reports = _only(_reports(), Outcome.CHANGED, Outcome.FAILED)
    doc = run_view.run_json(Run(reports, Rollout([["changed", "failed"]], 2)))
    validate(doc, "run")

    def broken(name: str, **change: Any) -> dict[str, Any]:
        out = copy.deepcopy(doc)
        host = next(h for h in out["hosts"] if h["name"] == name)
        if "stderr_tail" in change:
            del host["output_tail"]
        host.update(change)
        return out

    for wrong in (
        broken("failed", stderr_tail="it broke"),  # the field's old name
        broken("failed", status="error"),
        broken("failed", ok=True),  # ok is exactly changed, unchanged and excluded
        broken("changed", step="apply"),  # a host that went well has no failure
        broken("changed", seconds={"verify": 1.0}),
        {**doc, "ok": True},  # with a failed host
        {**doc, "rollout": {**doc["rollout"], "failed": []}},  # failed only when stopped
    ):
        assert errors(wrong, "run"), wrong


# --------------------------------------------------------------------------- measure


PINGS = {
    # host → peer → what ping printed (programs.measure puts each under a marker line)
    "bob": {"epsilon": [80.1, 80.3, 79.9], "rho": [12.0, 12.4, 11.8], "vorke": []},
    "rho": {"bob": [12.2, 12.1, 12.3], "epsilon": [85.0, 85.2, 84.9], "vorke": []},
    "epsilon": {"bob": [80.0, 80.2, 80.1], "rho": [85.1, 85.1, 85.0], "vorke": []},
    "vorke": {},  # its ping command failed: see UNREACHABLE
}
UNREACHABLE = {"pi0": "connect: connection refused", "vorke": "ssh: the command timed out"}


def _ping_text(peers: dict[str, list[float]], count: int) -> str:
    lines = []
    for peer, times in peers.items():
        lines.append(f"{measure_cmd.MARK}{peer}")
        lines += [f"64 bytes from x: icmp_seq={i} ttl=64 time={t} ms" for i, t in enumerate(times)]
        lines.append(f"{count} packets transmitted, {len(times)} received")
    return "\n".join(lines) + "\n"


def _fake_measure(
    mesh: model.Mesh, _access: Any, count: int, _limit: frozenset[str] | None = None
) -> tuple[list[measure_cmd.LinkResult], dict[str, str]]:
    """commands.measure without hosts: the same assembly over parsed ping outputs."""
    per_host = {h: measure_cmd.parse_pings(_ping_text(peers, count)) for h, peers in PINGS.items()}
    results = []
    for lk in mesh.links:
        ends = {}
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            got = per_host.get(here, {}).get(there)
            if got is None:
                got = measure_cmd.End(there, error=UNREACHABLE.get(here, "not measured"))
            got.host = here
            ends[here] = got
        results.append(measure_cmd.LinkResult(lk.a, lk.b, lk.vni, lk.latency_ms, ends))
    return results, dict(UNREACHABLE)


@pytest.mark.parametrize("write", [False, True])
def test_measure(
    write: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inv = tmp_path / "lab.yaml"
    shutil.copy(ROOT / "inventory/lab.yaml", inv)
    monkeypatch.setattr(commands, "measure", _fake_measure)
    monkeypatch.delenv("MESH_PUSH_BECOME_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("MESH_PUSH_BECOME_PASSWORD", raising=False)
    args = argparse.Namespace(
        inventory=inv, count=3, write=write, json=True, accept_new=False, ask_become_pass=False
    )
    code = handlers.measure(args)
    out = capsys.readouterr().out
    validate(out, "measure")
    doc = json.loads(out)
    # vorke's links are measured from neither end, so not every link is: exit 1
    assert doc["ok"] is False and code == 1
    assert doc["written"] == (str(inv) if write else None)
    rho_pi0 = next(lk for lk in doc["links"] if set(lk["hosts"]) == {"rho", "pi0"})
    assert rho_pi0["ends"]["pi0"]["error"] == UNREACHABLE["pi0"]


def test_measure_all_links_measured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    full = {h: {pe.name: [1.5, 1.25] for pe in lab_plan().host(h).peers} for h in HOSTS}
    monkeypatch.setattr(sys.modules[__name__], "PINGS", full)
    monkeypatch.setattr(sys.modules[__name__], "UNREACHABLE", {})
    monkeypatch.setattr(commands, "measure", _fake_measure)
    args = argparse.Namespace(
        inventory=ROOT / "inventory/lab.yaml",
        count=2,
        write=False,
        json=True,
        accept_new=False,
        ask_become_pass=False,
    )
    assert handlers.measure(args) == 0
    out = capsys.readouterr().out
    validate(out, "measure")
    assert json.loads(out)["ok"] is True
    assert errors({**json.loads(out), "ok": False}, "measure")


# --------------------------------------------------------------------------- lab


def _lab_plan(dns_name: bool = False, kind: str = "netns") -> addresses.LabPlan:
    text = (ROOT / "inventory/lab.yaml").read_text()
    if dns_name:  # epsilon known by a name the lab serves
        text = text.replace("address: 198.18.0.14", "address: eps.mesh.test")
    if kind == "vm":
        text = text.replace("  name: mplab\n", "  name: mplab\n  kind: vm\n")
    return addresses.plan(inventory.parse(text, ROOT / "inventory/lab.yaml"))


@pytest.mark.parametrize(("dns_name", "kind"), [(False, "netns"), (True, "netns"), (True, "vm")])
def test_lab_up(
    dns_name: bool, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = LabState(_lab_plan(dns_name, kind), "inventory/lab.yaml", phase="up")
    times = ops.VmTimes("tcg", None, 88.2) if kind == "vm" else None
    monkeypatch.setattr(ops, "up", lambda _inventory, **_kw: ops.UpResult(lab, 3.14159, times))
    args = argparse.Namespace(inventory=ROOT / "inventory/lab.yaml", json=True)
    assert lab_cli._up(args) == 0
    out = capsys.readouterr().out
    validate(out, "lab-up")
    data = json.loads(out)
    nodes = data["nodes"]
    assert {n["role"] for n in nodes} == {"host", "router"}
    assert any(n["dns_name"] for n in nodes) is dns_name
    assert data["kind"] == kind and ("vm" in data) is (kind == "vm")


def test_lab_status(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """mplab up (pi0's namespace gone, a stray one, one cut), and `old`: leftovers only."""
    lp = _lab_plan()
    lab = LabState(lp, "inventory/lab.yaml", phase="up", cuts=[("bob", "rho")])
    namespaces = [ns for ns in lp.namespaces if ns != "mplab-h-pi0"] + ["mplab-x", "old-h-a"]
    pids = {"bob": 101, "rho": 102, "vorke": None}
    monkeypatch.setattr(ops, "known_labs", lambda: ["mplab"])
    monkeypatch.setattr(ops, "netns_list", lambda: namespaces)
    monkeypatch.setattr(ops.netns, "links_with_prefix", lambda prefix: ["mplab-ctl"])
    monkeypatch.setattr(LabState, "load", staticmethod(lambda n: lab if n == "mplab" else None))
    monkeypatch.setattr(ops, "keeper_pid", lambda _n, alias: pids.get(alias, 200))
    monkeypatch.setattr(ops, "sshd_pid", lambda _n, alias: pids.get(alias, 300))
    monkeypatch.setattr(ops, "pid_alive", lambda pid: pid is not None and pid != 102)
    args = argparse.Namespace(inventory=None, name=None, json=True)
    lab_cli._status(args)
    out = capsys.readouterr().out
    validate(out, "lab-status")
    labs = {x["name"]: x for x in json.loads(out)}
    assert labs["old"]["phase"] is None and labs["old"]["nodes"] == []
    assert labs["mplab"]["stray_namespaces"] == ["mplab-x"]
    assert labs["mplab"]["cuts"] == [["bob", "rho"]]
    labs["old"]["network"] = "198.18.0.0/23"  # a lab without state.json has none
    assert errors(list(labs.values()), "lab-status")


def test_lab_status_of_guests(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A vm lab: guests report their QEMU pid and whether their sshd answers (rho's not)."""
    lab = LabState(_lab_plan(kind="vm"), "inventory/lab.yaml", phase="up")
    monkeypatch.setattr(ops, "known_labs", lambda: ["mplab"])
    monkeypatch.setattr(ops, "netns_list", lambda: lab.plan.namespaces)
    monkeypatch.setattr(ops.netns, "links_with_prefix", lambda prefix: ["mplab-ctl"])
    monkeypatch.setattr(LabState, "load", staticmethod(lambda n: lab))
    monkeypatch.setattr(ops, "keeper_pid", lambda _n, _alias: 200)
    monkeypatch.setattr(ops, "sshd_pid", lambda _n, _alias: 300)
    monkeypatch.setattr(ops, "pid_alive", lambda pid: pid is not None)
    monkeypatch.setattr(ops.vm, "probe_ssh", lambda _d, aliases: {a: a != "rho" for a in aliases})
    monkeypatch.setattr(ops.vm, "qemu_pid", lambda _d: 400)
    assert lab_cli._status(argparse.Namespace(inventory=None, name="mplab", json=True)) == 0
    out = capsys.readouterr().out
    validate(out, "lab-status")
    nodes = {n["alias"]: n for n in json.loads(out)[0]["nodes"]}
    assert json.loads(out)[0]["kind"] == "vm"
    assert nodes["bob"]["vm"] and nodes["bob"]["keeper_pid"] == 400
    assert nodes["bob"]["sshd_pid"] is None and nodes["bob"]["sshd_alive"]
    assert not nodes["rho"]["sshd_alive"]
    router = nodes["pi0.router"]
    assert not router["vm"] and router["keeper_pid"] == 200 and router["sshd_pid"] == 300
    assert lab_cli._status(argparse.Namespace(inventory=None, name="mplab", json=False)) == 1
    text = capsys.readouterr().out
    assert "qemu 400 up  sshd answers" in text and "sshd DOES NOT ANSWER" in text


@pytest.mark.parametrize(("host", "address"), [("vorke", "198.18.0.40"), ("epsilon", None)])
def test_lab_move(
    host: str,
    address: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lp = _lab_plan(dns_name=True)
    where = address or str(lp.node(host).address)  # None: to where it is already
    after = moved(lp, host, where)
    lab = LabState(lp, "inventory/lab.yaml", phase="up")
    result = lab_move.MoveResult(lab, lp.node(host), after.node(host))
    monkeypatch.setattr(lab_move, "move", lambda _n, _h, _a: result)
    args = argparse.Namespace(inventory=None, name="mplab", host=host, address=where, json=True)
    assert lab_cli._move(args) == 0
    out = capsys.readouterr().out
    validate(out, "lab-move")
    assert json.loads(out)["changed"] is (address is not None)


def test_validate_names_what_is_wrong() -> None:
    with pytest.raises(AssertionError, match=r"\$\.scripts"):
        validate({"scripts": {"bob": 3}}, "render")
    with pytest.raises(ValueError, match="no schema"):
        validate({}, "push")
    assert outcome.TAIL_LINES == 8  # output_tail's "at most 8 lines" in docs/json.md


def test_check_every_outcome_with_a_diff() -> None:
    """`up --check --json`: the run's document, no rollout or verification, each host's diff
    (null without --diff), `pending` when some host would change."""
    checked = (Outcome.WOULD_CHANGE, Outcome.UNCHANGED, Outcome.FAILED, Outcome.UNREACHABLE)
    reports = _only(_reports(), *checked, Outcome.EXCLUDED)
    reports["would-change"].diff = "--- would-change: applied\n+++ would-change: new\n"
    doc = run_view.check_json(Run(reports, checked=True))
    validate(doc, "run")
    assert doc["check"] is True and doc["pending"] is True and doc["ok"] is False
    assert doc["rollout"] is None and doc["verify"] is None
    diffs = {h["name"]: h["diff"] for h in doc["hosts"]}
    assert (
        diffs["would-change"].startswith("--- would-change: applied") and diffs["unchanged"] is None
    )
    clean = run_view.check_json(Run(_only(_reports(), Outcome.UNCHANGED), checked=True))
    validate(clean, "run")
    assert clean["ok"] is True and clean["pending"] is False
