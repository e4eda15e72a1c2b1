"""`mesh-push import`'s pure parts (issue 29): a host's output read (host/found.py) and the
inventory written from it (inventory/imported.py), with what it cannot map said."""

from __future__ import annotations

import json
from pathlib import Path

from mesh_push.core.model import Mesh
from mesh_push.host import found, programs
from mesh_push.inventory import imported, parse

KEYS = {
    "a": "viaUl2XIUfYCVVyDoXQRCp+66SzzPrCqa6fTeDqXaCk=",
    "b": "NcLe902M9CosLcd/7j2xYJX0wTtcYDkuR1itrlTnCX4=",
    "c": "2syhuql7hu+mjvqwTNZ2Qe2Vh2iGj3fJ7IFcp1dN+Tw=",
}
NUM = {"a": 1, "b": 2, "c": 3}


def output(host: str, wires: dict[str, int], endpoints: dict[str, str], extra: str = "") -> str:
    links = [
        {"ifname": "eth0", "mtu": 1500, "addr_info": [
            {"family": "inet", "local": f"192.0.2.{NUM[host]}", "prefixlen": 24}]},
        {"ifname": "wg0", "mtu": 1420, "linkinfo": {"info_kind": "wireguard"}, "addr_info": [
            {"family": "inet", "local": f"10.88.88.{NUM[host]}", "prefixlen": 24}]},
        {"ifname": "internet", "mtu": 1500, "linkinfo": {"info_kind": "bridge", "info_data": {
            "stp_state": 1, "priority": 32768, "hello_time": 200, "forward_delay": 1500,
            "max_age": 2000, "ageing_time": 30000}}, "addr_info": [
            {"family": "inet", "local": f"10.99.99.{NUM[host]}", "prefixlen": 24}]},
    ] + [
        {"ifname": p, "mtu": 1500, "master": "internet", "linkinfo": {"info_kind": "vxlan",
         "info_data": {"id": vni, "remote": f"10.88.88.{NUM.get(p, 9)}", "port": 4789}}}
        for p, vni in wires.items()
    ]  # fmt: skip
    peers = [p for p in KEYS if p != host and p in wires]
    lines = ["=== import", "systemd=yes", "=== ip", json.dumps(links)]
    lines += ["=== wg-public-key", f"wg0\t{KEYS[host]}", "=== wg-listen-port", "wg0\t56560"]
    lines.append("=== wg-allowed-ips")
    lines += [f"wg0\t{KEYS[p]}\t10.88.88.{NUM[p]}/32" for p in peers]
    lines.append("=== wg-endpoints")
    # wg names the interface on the first line only, as some versions do.
    lines += [
        ("wg0\t" if i == 0 else "") + f"{KEYS[p]}\t{endpoints.get(p, '(none)')}"
        for i, p in enumerate(peers)
    ]
    lines.append("=== conf")
    for p in peers:
        lines += ["/etc/wireguard/config:[Peer]", f"/etc/wireguard/config:PublicKey = {KEYS[p]}"]
        if p == "a":
            lines.append("/etc/wireguard/config:Endpoint = 192.0.2.1:56560")
    lines += ["=== units", "wg-quick@wg0.service", extra]
    return "\n".join(lines) + "\n"


def hosts_mesh(tmp_path: Path) -> Mesh:
    text = "hosts:\n  a: {}\n  b: {}\n  c: {}\n"
    return parse(text, tmp_path / "hosts.yaml", hosts_only=True)


def test_a_hand_built_mesh_is_read_whole(tmp_path: Path) -> None:
    # a is static (the others' files dial it); c is seen from an address it does not have.
    got = {
        "a": found.parse(output("a", {"b": 1, "c": 2}, {"b": "192.0.2.2:56560",
                                                       "c": "198.51.100.7:4000"})),
        "b": found.parse(output("b", {"a": 1}, {"a": "192.0.2.1:56560"})),
        "c": found.parse(output("c", {"a": 2}, {"a": "192.0.2.1:56560"})),
    }  # fmt: skip
    out = imported.build(hosts_mesh(tmp_path), {"hosts": {}}, got, "mine")
    assert out.complete, out.notes
    inv = tmp_path / "mine.yaml"
    inv.write_text(out.text)
    mesh = parse(out.text, inv)
    kinds = {h.name: (h.endpoint, str(h.address), h.number) for h in mesh.hosts}
    assert kinds == {"a": ("static", "192.0.2.1", 1), "b": ("dynamic", "None", 2),
                     "c": ("nat", "None", 3)}  # fmt: skip
    # Each host's public key goes to the state file, not into the inventory (where it would
    # pin the key against the next rotation); the file names it in a comment.
    assert out.public_keys == KEYS and all(h.public_key is None for h in mesh.hosts)
    assert all(f"public key {k} (kept in the state file)" in out.text for k in KEYS.values())
    assert {(lk.hosts, lk.vni) for lk in mesh.links} == {(("a", "b"), 1), (("a", "c"), 2)}
    assert (mesh.wg_interface, mesh.wg_port, mesh.bridge) == ("wg0", 56560, "internet")
    assert "wg-quick@wg0: up --adopt disables that unit" in out.text


def test_what_cannot_be_mapped_is_said(tmp_path: Path) -> None:
    got = {
        # A wire to no known host, and one whose other end is missing.
        "a": found.parse(output("a", {"b": 1, "zed": 5, "c": 2}, {})),
        "b": found.parse(output("b", {"a": 1}, {})),
        "c": found.parse(output("c", {}, {})),
    }
    out = imported.build(hosts_mesh(tmp_path), {"hosts": {}}, got, "mine")
    assert not out.complete
    said = "\n".join(out.notes)
    assert "VXLAN zed goes to 10.88.88.9, which is no host's" in said
    assert "whose end there is missing" in said
    assert all(f"#   - {n}" in out.text for n in out.notes)


def test_the_import_program_never_prints_a_private_key(tmp_path: Path) -> None:
    program = programs.import_read(hosts_mesh(tmp_path))
    for never in ("showconf", "dump", "private-key", "cat /etc/wireguard"):
        assert never not in program
    assert "PrivateKey" not in program.replace("never [Interface]'s PrivateKey", "")


def test_tx_checksum_off_on_every_wire_becomes_the_mesh_s(tmp_path: Path) -> None:
    """The write-up's `ethtool -K WIRE tx off` on every wire: `tx_checksum: false`, mesh-wide;
    on some hosts only: on those."""

    A = {"a": "192.0.2.1:56560"}  # b and c dial a: a is static

    def off(*wires: str) -> str:
        return "=== tx-checksum\n" + "".join(f"{w}\toff\n" for w in wires)

    every = {
        "a": found.parse(output("a", {"b": 1, "c": 2}, {}, off("b", "c"))),
        "b": found.parse(output("b", {"a": 1}, A, off("a"))),
        "c": found.parse(output("c", {"a": 2}, A, off("a"))),
    }
    out = imported.build(hosts_mesh(tmp_path), {"hosts": {}}, every, "mine")
    inv = tmp_path / "mine.yaml"
    inv.write_text(out.text)
    assert {h.tx_checksum for h in parse(out.text, inv).hosts} == {False}
    some = {**every, "c": found.parse(output("c", {"a": 2}, A))}
    out = imported.build(hosts_mesh(tmp_path), {"hosts": {}}, some, "mine")
    inv.write_text(out.text)
    assert {h.name: h.tx_checksum for h in parse(out.text, inv).hosts} == {
        "a": False, "b": False, "c": None,
    }  # fmt: skip


def test_what_a_host_says_is_checked_before_it_is_written() -> None:
    """A hostile host: an endpoint that is no address, an interface name no kernel gives, a
    key that is not one. Each is dropped and said, quoted; none reaches the inventory."""
    text = output("a", {"b": 1}, {"b": "\x1b[31m#evil\n:1"})
    text = text.replace('"ifname": "eth0"', '"ifname": "e\\nvil"')
    f = found.parse(text.replace(KEYS["b"] + "\t10.88", "not-a-key\t10.88"))
    assert "e\nvil" not in f.interfaces
    said = "\n".join(f.dropped)
    assert "\x1b" not in said and "not a usable name" in said, said
    assert all(p.endpoint is None for p in f.interfaces["wg0"].peers)
