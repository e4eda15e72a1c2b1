"""The lab's pure parts: address planning, overlap detection, unit parsing. No root needed."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import yaml

from mesh_push.inventory import parse
from mesh_push.lab.addresses import LabPlan, overlaps, plan
from mesh_push.lab.errors import LabError
from mesh_push.lab.nat import cuts_script
from mesh_push.lab.ops import parse_unit

LAB_YAML = Path(__file__).resolve().parents[2] / "inventory" / "lab.yaml"


def mesh_from(text: str) -> object:
    return parse(text, LAB_YAML)


def lab_text(**changes: object) -> str:
    data = yaml.safe_load(LAB_YAML.read_text())
    for path, value in changes.items():
        node = data
        *head, last = path.split("__")
        for key in head:
            node = node[key]
        node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


def test_plan_of_the_lab_inventory() -> None:
    p = plan(parse(LAB_YAML.read_text(), LAB_YAML))
    assert p.name == "mplab"
    assert p.wan == IPv4Network("198.18.0.0/24")
    assert p.controller == IPv4Address("198.18.0.1")
    by = {n.alias: n for n in p.nodes}
    assert set(by) == {"bob", "rho", "vorke", "epsilon", "pi0", "pi0.router"}
    assert by["bob"].address == IPv4Address("198.18.0.11")
    assert by["vorke"].address in p.wan
    pi0, router = by["pi0"], by["pi0.router"]
    assert pi0.address == IPv4Address("198.18.1.2") and pi0.prefixlen == 30
    assert pi0.gateway == IPv4Address("198.18.1.1")
    assert pi0.jump == "pi0.router" and pi0.wan_address == router.address
    assert router.address in p.wan and pi0.port is None
    addrs = [n.address for n in p.nodes]
    assert len(set(addrs)) == len(addrs) and p.controller not in addrs
    for n in p.nodes:
        assert n.ns.startswith("mplab-")
        assert n.port is None or len(n.port) <= 15
    assert p.namespaces[0] == "mplab-wan"


def test_nat_hosts_on_one_lan_share_its_router_and_a_switch() -> None:
    data = yaml.safe_load(LAB_YAML.read_text())
    data["hosts"]["nas"] = {"number": 6, "endpoint": "nat"}
    data["hosts"]["cam"] = {"number": 7, "endpoint": "nat"}
    data["links"] += [["rho", "nas"], ["rho", "cam"]]
    data["lab"]["lans"] = [["pi0", "nas"]]
    p = plan(parse(yaml.safe_dump(data, sort_keys=False), LAB_YAML))
    by = {n.alias: n for n in p.nodes}
    assert "nas.router" not in by and {"pi0.router", "cam.router"} <= set(by)
    router, pi0, nas, cam = by["pi0.router"], by["pi0"], by["nas"], by["cam"]
    assert router.lan == pi0.lan == nas.lan == IPv4Network("198.18.1.0/29")
    assert (pi0.address, nas.address) == (IPv4Address("198.18.1.2"), IPv4Address("198.18.1.3"))
    assert pi0.jump == nas.jump == "pi0.router" and nas.wan_address == router.address
    assert cam.lan == IPv4Network("198.18.1.8/30") and cam.prefixlen == 30  # after, aligned
    assert p.behind(router) == [pi0, nas] and p.switch_ns(router) == "mplab-s-pi0"
    assert p.switch_ns(by["cam.router"]) is None and "mplab-s-pi0" in p.namespaces
    assert LabPlan.from_json(p.to_json()) == p


def test_only_nat_hosts_share_a_lan() -> None:
    text = lab_text(lab__lans=[["pi0", "bob"], ["pi0", "ghost"]])
    with pytest.raises(LabError) as e:
        plan(parse(text, LAB_YAML))
    assert "lab.lans[0]: bob is a static host: only NAT hosts share a LAN" in str(e.value)
    assert "lab.lans[1]: pi0 is on another LAN already" in str(e.value)
    assert "lab.lans[1]: ghost is no host of the inventory" in str(e.value)


def test_static_address_outside_the_wan_is_refused() -> None:
    text = lab_text(hosts__bob__address="198.18.1.11")
    with pytest.raises(LabError, match=r"hosts.bob.address 198.18.1.11 is not in the lab's wan"):
        plan(parse(text, LAB_YAML))


def test_static_address_on_the_controller_is_refused() -> None:
    text = lab_text(hosts__bob__address="198.18.0.1")
    with pytest.raises(LabError, match="controller"):
        plan(parse(text, LAB_YAML))


def test_inventory_without_lab_section() -> None:
    data = yaml.safe_load(LAB_YAML.read_text())
    del data["lab"]
    with pytest.raises(LabError, match="no `lab:` section"):
        plan(parse(yaml.safe_dump(data), LAB_YAML))


def test_plan_round_trips_through_json() -> None:
    p = plan(parse(LAB_YAML.read_text(), LAB_YAML))
    assert LabPlan.from_json(p.to_json()) == p


def test_overlaps_sees_addresses_and_routes_but_not_default() -> None:
    addrs = [
        {
            "ifname": "eth0",
            "addr_info": [{"family": "inet", "local": "192.0.2.2", "prefixlen": 24}],
        },
        {"ifname": "lo", "addr_info": [{"family": "inet6", "local": "::1", "prefixlen": 128}]},
    ]
    routes = [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
        {"dst": "198.18.1.7", "dev": "tun0"},
        {"dst": "fd00::/64", "dev": "eth0"},
    ]
    assert overlaps(IPv4Network("198.18.0.0/23"), addrs, routes) == ["route 198.18.1.7 dev tun0"]
    assert overlaps(IPv4Network("192.0.2.0/25"), addrs, routes) == ["address 192.0.2.2/24 on eth0"]
    assert overlaps(IPv4Network("198.19.0.0/23"), addrs, routes) == []


def test_cuts_script_is_both_directions_and_uses_router_for_nat() -> None:
    p = plan(parse(LAB_YAML.read_text(), LAB_YAML))
    router = p.node("pi0.router").address
    script = cuts_script(p, [("bob", "pi0")])
    assert script.startswith("flush set bridge mplab_lab cuts\n")
    assert f"198.18.0.11 . {router}" in script and f"{router} . 198.18.0.11" in script
    assert cuts_script(p, []) == "flush set bridge mplab_lab cuts\n"


def test_parse_unit() -> None:
    unit = """[Unit]
Description=mesh
ExecStart=/bin/false
[Service]
Type=oneshot
ExecStartPre=-/bin/sh -c 'echo "a b"'
ExecStart=/usr/local/sbin/mesh-push-up \\
    --fast
ExecStart=
ExecStart=@/bin/true
ExecStartPost=/bin/echo done
[Install]
WantedBy=multi-user.target
"""
    assert parse_unit(unit) == [
        (["/bin/sh", "-c", 'echo "a b"'], True),
        (["/bin/true"], False),
        (["/bin/echo", "done"], False),
    ]
