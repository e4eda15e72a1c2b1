"""The hosts' names on the mesh (`mesh.names`, modes/names.py): what the inventory takes, the
block every host's /etc/hosts gets, and the judge's view of it. The lab test
(tests/e2e/test_two_meshes.py) resolves them for real."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.problems import InventoryError, format_path
from mesh_push.inventory import schema
from mesh_push.modes import names
from tests import kit
from tests.unit.modes.test_judge import judge, lab_mesh, lab_plan, states

ROOT = Path(__file__).resolve().parents[3]


def with_names(text: str, names_yaml: str) -> str:
    return text.replace("mesh:\n", f"mesh:\n  names: {names_yaml}\n", 1)


def problems(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    with pytest.raises(InventoryError) as info:
        inventory.load(f)
    return [f"{format_path(p.path)}: {p.message}" for p in info.value.problems]


def test_the_block_names_every_bridge_address(tmp_path: Path) -> None:
    f = tmp_path / "lab.yaml"
    f.write_text(with_names((ROOT / "inventory/lab.yaml").read_text(), "{domain: VPN.Example.}"))
    m = inventory.load(f)
    assert m.names_domain == "vpn.example"
    p = dataclasses.replace(lab_plan(), mesh=m)
    lines = names.hosts_block(p).splitlines()
    assert lines[0] == m.names_begin and lines[-1] == m.names_end
    assert "10.99.99.3\tvorke.vpn.example\tvorke" in lines
    assert len(lines) == len(m.hosts) + 2
    assert names.hosts_block(lab_plan()) == ""  # no mesh.names: no block


@pytest.mark.parametrize(
    ("names_yaml", "said"),
    [
        ("{domain: -bad.example}", "mesh.names.domain: '-bad.example' is not a DNS domain"),
        ("{domain: a..b}", "mesh.names.domain: 'a..b' is not a DNS domain"),
        ("{}", "mesh.names: needs `domain:`"),
        ("{domain: ok.example, zone: x}", "mesh.names.zone"),
    ],
)
def test_a_bad_domain_is_refused(tmp_path: Path, names_yaml: str, said: str) -> None:
    text = with_names((ROOT / "inventory/lab.yaml").read_text(), names_yaml)
    found = problems(tmp_path, text)
    assert any(said in p for p in found), found


def test_host_names_must_be_dns_labels(tmp_path: Path) -> None:
    text = with_names((ROOT / "inventory/lab.yaml").read_text(), "{domain: vpn.example}")
    text = text.replace("pi0", "pi_0")
    found = problems(tmp_path, text)
    assert any("hosts.pi_0: 'pi_0' is not a DNS label" in p for p in found), found


def test_the_judge_sees_the_block_as_configuration() -> None:
    p = lab_plan()
    s = states()
    s["bob"].names = "# BEGIN something else"
    j = judge(p, s)
    assert "/etc/hosts holds the mesh's names, and mesh.names is not set" in j.hosts["bob"].drift
    s = states()
    s["bob"].names = ""
    assert judge(p, s).hosts["bob"].healthy
    m = dataclasses.replace(lab_mesh(), names_domain="vpn.example")
    named = dataclasses.replace(p, mesh=m)
    s = states()
    for st in s.values():
        st.names = names.hosts_block(named)
    s["rho"].names = ""
    j = judge(named, s)
    assert j.hosts["rho"].drift == ["/etc/hosts lacks the mesh's names"]
    assert j.hosts["bob"].healthy


def test_zones_name_every_host_and_address(tmp_path: Path) -> None:
    f = tmp_path / "lab.yaml"
    f.write_text(with_names((ROOT / "inventory/lab.yaml").read_text(), "{domain: vpn.example}"))
    p = dataclasses.replace(lab_plan(), mesh=inventory.load(f))
    forward = names.zone(p, 1234).splitlines()
    assert "$ORIGIN vpn.example." in forward
    assert (
        "@\tIN\tSOA\tbob.vpn.example. hostmaster.bob.vpn.example. (1234 3600 600 86400 300)"
        in forward
    )
    assert "vorke\tIN\tA\t10.99.99.3" in forward
    reverse = names.reverse_zone(p, 1234).splitlines()
    assert "$ORIGIN 99.99.10.in-addr.arpa." in reverse
    assert "3\tIN\tPTR\tvorke.vpn.example." in reverse
    # A /16 bridge network: its reverse zone is the /16's, each host two labels deep.
    wide = dataclasses.replace(
        p, mesh=dataclasses.replace(p.mesh, bridge_network=IPv4Network("10.99.0.0/16"))
    )
    assert "$ORIGIN 99.10.in-addr.arpa." in names.reverse_zone(wide, 1).splitlines()


def test_ipv6_ula_is_derived_from_the_mesh_name(tmp_path: Path) -> None:
    """mesh.ipv6: ula: a /64 in fd00::/8 from the mesh's name (RFC 4193's SHA-1, low 40 bits),
    the same every time; host n gets its n-th address, named in /etc/hosts and the zones."""
    text = (ROOT / "inventory/lab.yaml").read_text().replace("mesh:\n", "mesh:\n  ipv6: ula\n", 1)
    f = tmp_path / "lab.yaml"
    f.write_text(with_names(text, "{domain: vpn.example}"))
    m = inventory.load(f)
    assert m.bridge_network6 is not None and str(m.bridge_network6).startswith("fd")
    assert m.bridge_network6 == schema.ula("lab")
    assert schema.ula("lab") != schema.ula("lab2")
    p = kit.plan(m, {})
    vorke = p.host("vorke").bridge_address6
    assert vorke is not None and str(vorke) == f"{m.bridge_network6.network_address + 3}/64"
    assert f"{vorke.ip}\tvorke.vpn.example\tvorke" in names.hosts_block(p).splitlines()
    assert f"vorke\tIN\tAAAA\t{vorke.ip}" in names.zone(p, 1).splitlines()
    rev6 = names.reverse_zone6(p, 1).splitlines()
    assert f"$ORIGIN {m.bridge_network6.network_address.reverse_pointer[32:]}." in rev6
    assert f"{vorke.ip.reverse_pointer[:31]}\tIN\tPTR\tvorke.vpn.example." in rev6


@pytest.mark.parametrize(
    ("bridge", "said"),
    [
        ("network6: fd00::/48", "mesh.bridge.network6: must be a /64, not a /48"),
        ("network6: 10.0.0.0/24", "mesh.bridge.network6: not an IPv6 network"),
    ],
)
def test_a_bad_ipv6_network_is_refused(tmp_path: Path, bridge: str, said: str) -> None:
    text = (ROOT / "inventory/lab.yaml").read_text()
    text = text.replace("network: 10.99.99.0/24}", "network: 10.99.99.0/24, " + bridge + "}")
    found = problems(tmp_path, text)
    assert any(said in p for p in found), found


def test_ipv6_ula_and_a_network6_are_one_or_the_other(tmp_path: Path) -> None:
    text = (ROOT / "inventory/lab.yaml").read_text().replace("mesh:\n", "mesh:\n  ipv6: ula\n", 1)
    text = text.replace("network: 10.99.99.0/24}", "network: 10.99.99.0/24, network6: fd00::/64}")
    found = problems(tmp_path, text)
    assert any("mesh.ipv6: mesh.bridge.network6 is set too" in p for p in found), found
