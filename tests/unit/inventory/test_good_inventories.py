"""The shipped inventories load, and the loader's defaults and allocations are the documented
ones (docs/inventory.md)."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Network, ip_address
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.model import Mesh
from tests.kit import ROOT

SEED = ROOT / "inventory" / "seed.yaml"
LAB = ROOT / "inventory" / "lab.yaml"


def _load(tmp_path: Path, text: str, name: str = "mesh.yaml") -> Mesh:
    path = tmp_path / name
    path.write_text(text)
    return inventory.load(path)


def _vnis(mesh: Mesh) -> dict[frozenset[str], int]:
    return {frozenset(lk.hosts): lk.vni for lk in mesh.links}


def test_seed_loads_with_the_write_ups_hosts_and_numbers() -> None:
    mesh = inventory.load(SEED)
    assert mesh.name == "seed"
    assert {h.name: h.number for h in mesh.hosts} == {
        "bob": 1,
        "rho": 2,
        "vorke": 3,
        "epsilon": 4,
        "pi0": 5,
    }
    kinds = {h.name: h.endpoint for h in mesh.hosts}
    assert kinds == {
        "bob": "static",
        "rho": "static",
        "vorke": "dynamic",
        "epsilon": "static",
        "pi0": "nat",
    }
    assert mesh.host("bob").address == ip_address("203.0.113.1")
    assert mesh.host("epsilon").address == ip_address("203.0.113.4")
    assert mesh.host("pi0").address is None
    assert mesh.host("pi0").ssh.via == "rho"
    assert mesh.wg_interface == "wg0" and mesh.wg_port == 56560
    assert mesh.wg_network == IPv4Network("10.88.88.0/24")
    assert mesh.bridge == "internet" and mesh.bridge_network == IPv4Network("10.99.99.0/24")
    assert mesh.vxlan_port == 4789
    assert (mesh.stp.hello, mesh.stp.forward_delay, mesh.stp.max_age) == (2, 15, 20)
    assert mesh.keys == "host"
    assert mesh.lab is None


def test_seed_has_seven_links_with_the_write_ups_vnis() -> None:
    mesh = inventory.load(SEED)
    assert len(mesh.links) == 7
    vnis = _vnis(mesh)
    for a, b, vni in [
        ("epsilon", "vorke", 1),
        ("epsilon", "bob", 2),
        ("vorke", "bob", 3),
        ("epsilon", "rho", 4),
        ("vorke", "rho", 5),
    ]:
        assert vnis[frozenset((a, b))] == vni, (a, b)
    assert vnis[frozenset(("bob", "rho"))] == 6
    assert vnis[frozenset(("rho", "pi0"))] == 7
    assert len(set(vnis.values())) == 7


def test_seed_state_file_sits_beside_it() -> None:
    mesh = inventory.load(SEED)
    assert mesh.state_file == SEED.parent / "seed.state.json"


def test_lab_loads_with_lab_defaults() -> None:
    mesh = inventory.load(LAB)
    assert mesh.lab is not None
    assert mesh.lab.name == "mplab"
    assert mesh.lab.network == IPv4Network("198.18.0.0/23")
    assert mesh.ssh.config == Path("/run/mesh-push/lab/mplab/ssh_config")
    assert mesh.ssh.known_hosts == Path("/run/mesh-push/lab/mplab/known_hosts")
    assert (mesh.stp.hello, mesh.stp.forward_delay, mesh.stp.max_age) == (1, 4, 6)
    assert [h.name for h in mesh.hosts] == ["bob", "rho", "vorke", "epsilon", "pi0"]
    assert _vnis(mesh) == _vnis(inventory.load(SEED))


def test_defaults(tmp_path: Path) -> None:
    mesh = _load(
        tmp_path,
        "hosts:\n  a: {endpoint: static, address: 192.0.2.1}\n"
        "  b: {endpoint: dynamic}\nlinks: [[a, b]]\n",
        name="small.yaml",
    )
    assert mesh.name == "small"  # the file's stem
    # Not wg0 nor internet, which people make by hand (engine/names.py keeps them for a mesh
    # made under them).
    assert mesh.wg_interface == "mpwg" and mesh.wg_port == 51820
    assert mesh.unnamed == {"wireguard.interface", "bridge.name"}
    assert mesh.wg_network == IPv4Network("10.88.88.0/24")
    assert mesh.bridge == "mpbr" and mesh.bridge_network == IPv4Network("10.99.99.0/24")
    assert mesh.vxlan_port == 4789
    assert (mesh.mtu.policy, mesh.mtu.wireguard, mesh.mtu.bridge) == ("fragment", 1550, 1500)
    assert (mesh.stp.hello, mesh.stp.forward_delay, mesh.stp.max_age, mesh.stp.root) == (
        2,
        15,
        20,
        None,
    )
    assert mesh.keys == "host"
    assert (mesh.ssh.user, mesh.ssh.port, mesh.ssh.connect_timeout) == ("root", 22, 10.0)
    assert mesh.ssh.config is None and mesh.ssh.known_hosts is None
    assert mesh.state_file == tmp_path / "small.state.json"
    # Per inventory file: its mesh name and a short hash of its absolute path.
    digest = hashlib.sha256(str((tmp_path / "small.yaml").resolve()).encode()).hexdigest()[:12]
    assert mesh.keystore.parts[-3:] == ("mesh-push", f"small-{digest}", "keys")


def test_links_full_joins_every_pair_that_can_meet(tmp_path: Path) -> None:
    mesh = _load(
        tmp_path,
        "hosts:\n"
        "  a: {endpoint: static, address: 192.0.2.1}\n"
        "  b: {endpoint: static, address: 192.0.2.2}\n"
        "  c: {endpoint: dynamic}\n"
        "  d: {endpoint: nat}\n"
        "links: full\n",
    )
    pairs = {frozenset(lk.hosts) for lk in mesh.links}
    # c–d is left out: neither has a static address, they could never find each other.
    assert pairs == {
        frozenset(p) for p in [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")]
    }
    assert sorted(lk.vni for lk in mesh.links) == [1, 2, 3, 4, 5]


def test_automatic_host_numbers_fill_the_lowest_free(tmp_path: Path) -> None:
    mesh = _load(
        tmp_path,
        "hosts:\n"
        "  a: {endpoint: static, address: 192.0.2.1, number: 2}\n"
        "  b: {endpoint: static, address: 192.0.2.2}\n"
        "  c: {endpoint: nat, number: 4}\n"
        "  d: {endpoint: nat}\n"
        "  e: {endpoint: nat}\n"
        "links: [[a, b], [a, c], [a, d], [b, e]]\n",
    )
    assert {h.name: h.number for h in mesh.hosts} == {"a": 2, "b": 1, "c": 4, "d": 3, "e": 5}


def test_automatic_vnis_fill_the_lowest_free(tmp_path: Path) -> None:
    mesh = _load(
        tmp_path,
        "hosts:\n"
        "  a: {endpoint: static, address: 192.0.2.1}\n"
        "  b: {endpoint: static, address: 192.0.2.2}\n"
        "  c: {endpoint: nat}\n"
        "  d: {endpoint: nat}\n"
        "links:\n"
        "  - [a, b]\n"
        "  - {hosts: [a, c], vni: 1}\n"
        "  - {hosts: [a, d]}\n"
        "  - {hosts: [b, c], vni: 3}\n"
        "  - [b, d]\n",
    )
    vnis = _vnis(mesh)
    assert vnis[frozenset("ab")] == 2
    assert vnis[frozenset("ac")] == 1
    assert vnis[frozenset("ad")] == 4
    assert vnis[frozenset("bc")] == 3
    assert vnis[frozenset("bd")] == 5


def test_link_latency_and_cost(tmp_path: Path) -> None:
    mesh = _load(
        tmp_path,
        "hosts:\n  a: {endpoint: static, address: 192.0.2.1}\n  b: {endpoint: nat}\n"
        "links: [{hosts: [a, b], latency_ms: 12, cost: 40}]\n",
    )
    (link,) = mesh.links
    assert (link.latency_ms, link.cost) == (12.0, 40)


@pytest.mark.parametrize(
    ("mtu", "policy", "wg", "bridge"),
    [
        ("fragment", "fragment", 1550, 1500),
        ("clamp", "clamp", 1420, 1370),
        ("{policy: clamp, underlay: 9000}", "clamp", 8920, 8870),
        ("{policy: clamp, bridge: 1300}", "clamp", 1420, 1300),
        ("{policy: fragment, bridge: 9000}", "fragment", 9050, 9000),
    ],
)
def test_mtu_policies(tmp_path: Path, mtu: str, policy: str, wg: int, bridge: int) -> None:
    mesh = _load(
        tmp_path,
        f"mesh: {{mtu: {mtu}}}\n"
        "hosts:\n  a: {endpoint: static, address: 192.0.2.1}\n  b: {endpoint: nat}\n"
        "links: [[a, b]]\n",
    )
    assert (mesh.mtu.policy, mesh.mtu.wireguard, mesh.mtu.bridge) == (policy, wg, bridge)


def test_controller_keys_and_explicit_paths(tmp_path: Path) -> None:
    key = "A" * 43 + "="
    mesh = _load(
        tmp_path,
        "mesh: {keys: controller, state: st/x.json, keystore: ks}\n"
        "ssh: {config: cfg, known_hosts: /tmp/kh, identity: id_ed25519}\n"
        f"hosts:\n  a: {{endpoint: static, address: '2001:db8::1', public_key: '{key}'}}\n"
        "  b: {endpoint: nat, ssh: {via: a, user: pi, port: 2222}}\n"
        "links: [[a, b]]\n",
    )
    assert mesh.keys == "controller"
    assert mesh.state_file == tmp_path / "st/x.json"
    assert mesh.keystore == tmp_path / "ks"
    assert mesh.ssh.config == tmp_path / "cfg"
    assert mesh.ssh.known_hosts == Path("/tmp/kh")
    assert mesh.ssh.identity == str(tmp_path / "id_ed25519")
    assert mesh.host("a").public_key == key
    assert mesh.host("a").address == ip_address("2001:db8::1")
    assert (mesh.host("b").ssh.via, mesh.host("b").ssh.user, mesh.host("b").ssh.port) == (
        "a",
        "pi",
        2222,
    )


def test_a_single_host_needs_no_links(tmp_path: Path) -> None:
    mesh = _load(tmp_path, "hosts:\n  a: {endpoint: static, address: 192.0.2.1}\nlinks: []\n")
    assert [h.number for h in mesh.hosts] == [1]
    assert mesh.links == ()


def test_the_home_example_has_names_ipv6_and_a_link_on_its_lan() -> None:
    mesh = inventory.load(ROOT / "inventory" / "home.yaml")
    assert mesh.names_domain == "vpn.example.net"
    assert mesh.bridge_network6 is not None and mesh.bridge_network6.prefixlen == 64
    lan = next(lk for lk in mesh.links if set(lk.hosts) == {"pi0", "nas"})
    assert {e.host: str(e.address) for e in lan.endpoints} == {
        "pi0": "192.168.1.5",
        "nas": "192.168.1.6",
    }
    assert {h.name: h.endpoint for h in mesh.hosts}["nas"] == "nat"
