"""Parsers as data: real `wg show`, `brctl showstp` and `ip -j -d link` output captured from the
lab (tests/data/observe/HOST.txt, the exact text `hostcmd.gather` prints), each beside
the state it must parse to (HOST.json); then the verdict judged from those real states."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from mesh_push import inventory
from mesh_push.host import programs as hostcmd
from mesh_push.host import state as observe
from mesh_push.modes import judge, plan
from tests.kit import OBSERVED, ROOT

HOSTS = ["bob", "rho", "vorke", "epsilon", "pi0"]


def state(host: str) -> observe.HostState:
    return observe.parse((OBSERVED / f"{host}.txt").read_text(), "internet")


@pytest.mark.parametrize("host", HOSTS)
def test_capture_parses_to_its_json(host: str) -> None:
    parsed = dataclasses.asdict(state(host))
    parsed["transfer"] = {k: list(v) for k, v in parsed["transfer"].items()}
    assert parsed == json.loads((OBSERVED / f"{host}.json").read_text())


def test_hand_checked_facts() -> None:
    vorke = state("vorke")
    assert vorke.hostname == "vorke"
    assert vorke.stp is not None
    assert vorke.stp.designated_root == "1000.0281b637d8fc"
    assert vorke.stp.root_port == 2 and vorke.stp.path_cost == 98
    assert {p.name: p.state for p in vorke.stp.ports.values()} == {
        "bob": "blocking",
        "epsilon": "forwarding",
        "rho": "blocking",
    }
    assert vorke.stp.ports["bob"].path_cost == 931
    assert vorke.links["internet"].addresses == ["10.99.99.3/24"]
    assert vorke.links["epsilon"].remote == "10.88.88.4" and vorke.links["epsilon"].port == 4789
    assert vorke.links["epsilon"].cost == 18 and vorke.links["internet"].priority == 32768
    assert vorke.boot_unit is True and set(vorke.keepalives.values()) == {"25"}
    assert len(vorke.handshakes) == 3 and all(ts > 0 for ts in vorke.handshakes.values())
    assert vorke.links["epsilon"].vni == 1 and vorke.links["epsilon"].master == "internet"
    assert vorke.links["wg0"].mtu == 1550 and vorke.links["internet"].mtu == 1500


@pytest.mark.parametrize("host", HOSTS)
def test_iproute2_fallback_agrees_with_brctl_on_ports(host: str) -> None:
    text = (OBSERVED / f"{host}.txt").read_text()
    links = json.loads(observe.sections(text)["ip-link"])
    via_ip = observe.stp_from_ip_json(links, "internet")
    via_brctl = state(host).stp
    assert via_ip is not None and via_brctl is not None
    assert via_ip.bridge_id == via_brctl.bridge_id
    ports = {(p.name, p.number, p.state, p.path_cost) for p in via_ip.ports.values()}
    assert ports == {(p.name, p.number, p.state, p.path_cost) for p in via_brctl.ports.values()}


def test_sysfs_root_is_used_because_iproute2_names_its_own_bridge() -> None:
    # The guide's warning, seen in these captures: on a non-root bridge `ip -d` gives its
    # own id as the root; brctl and sysfs give the real one.
    rho = state("rho")
    links = json.loads(observe.sections((OBSERVED / "rho.txt").read_text())["ip-link"])
    assert rho.root_id == "1000.0281b637d8fc"
    assert observe.stp_from_ip_json(links, "internet").designated_root != rho.root_id  # type: ignore[union-attr]


def test_bridge_id_forms() -> None:
    assert observe.normalise_bridge_id("1000.2:d:db:c6:c1:d8") == "1000.020ddbc6c1d8"
    assert observe.normalise_bridge_id("1000.020DDBC6C1D8\n") == "1000.020ddbc6c1d8"
    assert observe.normalise_bridge_id("") == ""


def test_gather_never_asks_for_secrets() -> None:
    cmd = hostcmd.gather(lab_plan().mesh)
    assert "dump" not in cmd and "showconf" not in cmd and "private" not in cmd


def lab_plan() -> plan.Plan:
    keys = {h: state(h).public_key or "" for h in HOSTS}
    return plan.build(inventory.load(ROOT / "inventory/lab.yaml"), keys)


def test_judge_healthy_on_the_captured_mesh() -> None:
    states = {h: state(h) for h in HOSTS}
    j = judge.judge(lab_plan(), states)
    assert j.healthy and j.tree_matches_plan, (
        j.reasons,
        {h: v.reasons for h, v in j.hosts.items()},
    )


def test_judge_unreachable_host_is_unknown_not_healthy() -> None:
    states = {h: state(h) for h in HOSTS if h != "pi0"}
    j = judge.judge(lab_plan(), states)
    assert not j.healthy
    assert j.hosts["pi0"].healthy is None and not j.hosts["pi0"].reachable
    assert all(j.hosts[h].healthy for h in HOSTS if h != "pi0")


def test_judge_flags_a_tree_that_differs_and_a_stale_handshake() -> None:
    states = {h: copy.deepcopy(state(h)) for h in HOSTS}
    vorke = states["vorke"]
    assert vorke.stp is not None
    vorke.stp.ports["bob"].state = "forwarding"
    vorke.stp.ports["epsilon"].state = "blocking"
    key = lab_plan().host("pi0").public_key
    assert key is not None
    states["rho"].handshakes[key] = states["rho"].now - 400
    j = judge.judge(lab_plan(), states)
    assert not j.healthy and j.tree_matches_plan is False
    assert any("differs from the plan" in r for r in j.reasons)
    assert any("pi0" in r and "400 s old" in r for r in j.hosts["rho"].reasons)
    wire = next(w for w in j.wires if set(w["hosts"]) == {"vorke", "bob"})
    assert any("planned blocking" in p for p in wire["problems"])
