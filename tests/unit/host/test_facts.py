"""Each host's ways, chosen from its facts (backends.py), and how they show in what is sent."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mesh_push import inventory
from mesh_push.engine import gather
from mesh_push.engine.gather import Facts
from mesh_push.host import facts as backends
from mesh_push.host import programs as hostcmd
from mesh_push.host import state as observe
from mesh_push.host import templates as render
from mesh_push.modes import plan
from tests.kit import ROOT

FULL = Facts(
    public_key=None,
    applied="",
    kernel_wireguard=True,
    wireguard_go=True,
    wg=True,
    brctl=True,
    systemd=True,
)


def test_facts_parse_from_the_first_command_s_output() -> None:
    text = (
        "=== facts\npublic_key=abc\nkernel_wireguard=no\nwireguard_go=/usr/bin/wireguard-go\n"
        "wg=/usr/bin/wg\nbrctl=\nsystemd=yes\nflock=/usr/bin/flock\napplied=d1g3st\n"
        "=== hostname\nh\n"
    )
    f = gather.parse_facts(text)
    assert f == Facts("abc", "d1g3st", False, True, True, False, True, True)
    assert not gather.parse_facts(text.replace("/usr/bin/flock", "")).flock


@pytest.mark.parametrize(
    ("change", "wireguard", "boot", "stp"),
    [
        ({}, "kernel", "systemd", "brctl"),
        ({"kernel_wireguard": False}, "wireguard-go", "systemd", "brctl"),
        ({"systemd": False, "brctl": False}, "kernel", "none", "iproute2"),
    ],
)
def test_the_first_supported_way_wins(
    change: dict[str, bool], wireguard: str, boot: str, stp: str
) -> None:
    chosen = backends.choose(dataclasses.replace(FULL, **change))
    assert (chosen.wireguard.name, chosen.boot.name, chosen.stp.name) == (wireguard, boot, stp)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"wg": False}, "apt-get install wireguard-tools"),
        ({"kernel_wireguard": False, "wireguard_go": False}, "apt-get install wireguard-go"),
        ({"flock": False}, "apt-get install util-linux"),
    ],
)
def test_a_host_without_what_is_needed_is_told_what_to_install(
    change: dict[str, bool], says: str
) -> None:
    with pytest.raises(backends.NoBackend, match=says):
        backends.choose(dataclasses.replace(FULL, **change))


def test_the_script_makes_the_interface_the_chosen_way() -> None:
    mesh = inventory.load(ROOT / "inventory/seed.yaml")
    p = plan.build(mesh, {h.name: h.public_key or "" for h in mesh.hosts})
    env = render.load_templates()
    hp = p.host("bob")
    kernel = render.render_host(p, hp, env, wireguard="kernel")
    go = render.render_host(p, hp, env, wireguard="wireguard-go")
    auto = render.render_host(p, hp, env)
    assert 'ip link add dev "$1" type wireguard\n' in kernel and "wireguard-go" not in kernel
    assert 'wireguard-go "$1"' in go and "type wireguard" not in go
    assert "type wireguard 2>/dev/null" in auto and 'wireguard-go "$1"' in auto


def test_systemd_is_told_only_where_it_runs() -> None:
    mesh = inventory.load(ROOT / "inventory/seed.yaml")
    assert "systemctl daemon-reload" in hostcmd.apply(mesh, "d", "", backends.SystemdBoot.reload)
    assert "systemctl" not in hostcmd.apply(mesh, "d", "", backends.PlainBoot.reload)


def test_both_stp_readers_agree_on_a_real_capture() -> None:
    text = (ROOT / "tests/data/observe/vorke.txt").read_text()
    by_brctl = gather.parse_state(text, inventory.load(ROOT / "inventory/lab.yaml"))
    facts = dataclasses.replace(gather.parse_facts(text), brctl=False)
    assert backends.choose_stp(facts) is backends.Iproute2
    assert by_brctl.stp is not None
    sections = {"brctl": ""}
    links = json.loads(observe.sections(text)["ip-link"])
    by_ip = backends.Iproute2.read(sections, links, "internet")
    assert by_ip is not None
    assert {p.name: p.state for p in by_ip.ports.values()} == {
        p.name: p.state for p in by_brctl.stp.ports.values()
    }
