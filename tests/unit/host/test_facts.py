"""Each host's ways, chosen from its facts (host/facts.py), and how they show in what is sent;
and where stp mode reads the spanning tree from (modes/stp/observe.py): brctl's section where it
has one, else iproute2's `ip -j -d link`."""

from __future__ import annotations

import dataclasses
import functools
import json
import re

import pytest

from mesh_push import inventory
from mesh_push.core.model import Mesh
from mesh_push.host import boot
from mesh_push.host import facts as backends
from mesh_push.host import programs as hostcmd
from mesh_push.host import state as observe
from mesh_push.host.facts import Facts
from mesh_push.modes.stp import observe as stp_observe
from mesh_push.modes.stp.observe import StpBridge, StpSeen
from tests import kit
from tests.kit import OBSERVED, ROOT

FULL = Facts(
    public_key=None,
    applied="",
    kernel_wireguard=True,
    wireguard_go=True,
    wg=True,
    brctl=True,
    init="systemd",
)


def test_facts_parse_from_the_first_command_s_output() -> None:
    text = (
        "=== facts\npublic_key=abc\nkernel_wireguard=no\nwireguard_go=/usr/bin/wireguard-go\n"
        "wg=/usr/bin/wg\nbrctl=\nsystemd=yes\nflock=/usr/bin/flock\napplied=d1g3st\n"
        "=== hostname\nh\n=== boot\ninit=runit\nhook=runit\nscript=yes\n"
    )
    f = backends.parse_facts(text)
    assert f == Facts("abc", "d1g3st", False, True, True, False, True, init="runit")
    for odd in ("init=Runit", "init=none", "init=", "init=runit;reboot", ""):
        assert backends.parse_facts(text.replace("init=runit", odd)).init == "none", odd
    assert not backends.parse_facts(text.replace("/usr/bin/flock", "")).flock
    assert f.iproute2
    assert not backends.parse_facts(text.replace("applied=", "iproute2=no\napplied=")).iproute2


@pytest.mark.parametrize(
    ("change", "setting", "wireguard", "boot"),
    [
        ({}, "auto", "kernel", "systemd"),
        ({"kernel_wireguard": False}, "auto", "wireguard-go", "systemd"),
        ({"init": "runit"}, "auto", "kernel", "runit"),
        ({"init": "openrc"}, "auto", "kernel", "openrc"),
        ({"init": "sysvinit", "brctl": False}, "auto", "kernel", "sysvinit"),
        # The inventory's `boot` names the init where none runs (the namespace lab), or
        # another than the one that runs.
        ({"init": "none"}, "systemd", "kernel", "systemd"),
        ({}, "openrc", "kernel", "openrc"),
    ],
)
def test_the_first_supported_way_wins(
    change: dict[str, object], setting: str, wireguard: str, boot: str
) -> None:
    chosen = backends.choose(dataclasses.replace(FULL, **change), setting)  # type: ignore[arg-type]
    assert (chosen.wireguard.name, chosen.boot.name) == (wireguard, boot)


def test_a_host_without_a_known_init_fails_at_the_facts_step() -> None:
    with pytest.raises(backends.NoBackend, match="no init system that mesh-push can hand"):
        backends.choose(dataclasses.replace(FULL, init="none"))


def test_systemd_is_told_only_where_it_runs() -> None:
    mesh = inventory.load(ROOT / "inventory/seed.yaml")
    for kind in boot.BOOTS:
        apply = hostcmd.apply(mesh, "d", "", kind)
        told = "systemctl daemon-reload" in apply
        assert told == (kind is boot.SystemdBoot), kind
    # Installed where systemd does not run (the namespace lab, an image): not told.
    systemd = hostcmd.apply(mesh, "d", "", boot.SystemdBoot)
    assert "[ ! -d /run/systemd/system ] || systemctl daemon-reload" in systemd


@functools.cache
def lab_mesh() -> Mesh:
    return inventory.load(ROOT / "inventory/lab.yaml")


def stp_seen(text: str) -> StpSeen:
    """stp mode's part of the state the engine parses from the gather's output."""
    seen = kit.state(text, lab_mesh()).mode_state
    assert isinstance(seen, StpSeen)
    return seen


def without_brctl(text: str, instead: str = "") -> str:
    """The capture as a host without brctl prints it: its section empty (the gather runs
    brctl only where `command -v` finds it), or holding `instead`."""
    out, n = re.subn(r"(?ms)^(=== brctl\n).*?(?=^=== )", lambda m: m.group(1) + instead, text)
    assert n == 1
    return out


HOSTS = ["bob", "rho", "vorke", "epsilon", "pi0"]


@pytest.mark.parametrize("host", HOSTS)
def test_the_tree_is_brctl_s_where_it_has_a_section(host: str) -> None:
    text = (OBSERVED / f"{host}.txt").read_text()
    s = observe.sections(text)
    by_brctl = stp_observe.parse_brctl_showstp(s["brctl"])
    assert by_brctl is not None and by_brctl.name == "internet"
    assert stp_seen(text).stp == by_brctl
    assert stp_observe.parse(s, json.loads(s["ip-link"]), "internet").stp == by_brctl


@pytest.mark.parametrize(
    "instead", ["", "bridge internet can't get info: Operation not supported\n"]
)
@pytest.mark.parametrize("host", HOSTS)
def test_without_brctl_the_tree_is_iproute2_s(host: str, instead: str) -> None:
    text = without_brctl((OBSERVED / f"{host}.txt").read_text(), instead)
    s = observe.sections(text)
    assert stp_observe.parse_brctl_showstp(s["brctl"]) is None
    by_ip = stp_observe.stp_from_ip_json(json.loads(s["ip-link"]), "internet")
    assert by_ip is not None and by_ip.ports
    assert stp_seen(text).stp == by_ip
    # The root still comes from sysfs, as with brctl.
    assert stp_seen(text).root_id == stp_seen((OBSERVED / f"{host}.txt").read_text()).root_id


def test_both_stp_readers_agree_on_a_real_capture() -> None:
    text = (OBSERVED / "vorke.txt").read_text()
    by_brctl = stp_seen(text).stp
    by_ip = stp_seen(without_brctl(text)).stp
    assert isinstance(by_brctl, StpBridge) and isinstance(by_ip, StpBridge)
    assert by_ip is not by_brctl and by_ip != by_brctl  # each read from its own section
    assert {p.name: p.state for p in by_ip.ports.values()} == {
        p.name: p.state for p in by_brctl.ports.values()
    }
    assert {p.name: p.state for p in by_ip.ports.values()} == {
        "bob": "blocking",
        "epsilon": "forwarding",
        "rho": "blocking",
    }
