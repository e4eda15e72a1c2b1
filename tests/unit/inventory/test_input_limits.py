"""Hostile and careless inventories (issue 14): the safe name set, fields checked to their
type, address rules, jump chain depth, and the reader's limits (size, file kinds, nesting,
values). The bad/ corpus covers one file per mistake; these test the rules themselves."""

from __future__ import annotations

import os
import time
from ipaddress import IPv4Address, ip_address
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.problems import InventoryError, format_path, printable
from mesh_push.core.values import (
    endpoint_address,
    ifname_problem,
    name_problem,
    path_problem,
    ssh_address_problem,
    text_problem,
    user_problem,
)
from mesh_push.inventory.files import MAX_BYTES
from mesh_push.inventory.hosts import MAX_JUMPS
from mesh_push.inventory.schema import MESH_NAME_MAX
from mesh_push.inventory.yamldoc import MAX_NODES

TWO = "hosts:\n  bob: {endpoint: static, address: 192.0.2.1}\n  rho: {endpoint: nat}\n"


def _problems(text: str, tmp_path: Path, name: str = "mesh.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InventoryError) as info:
        inventory.load(path)
    return [f"{format_path(p.path)}: {p.message}" for p in info.value.problems]


@pytest.mark.parametrize("name", ["bob", "pi0", "h-1_x", "A1", "0day", "x" * 15])
def test_safe_interface_names(name: str) -> None:
    assert ifname_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("$(reboot)", "holds '$()'"),
        ("a;b", "holds ';'"),
        ("a b", "holds ' '"),
        ("a\nb", "holds '\\n'"),
        ("a\x00b", "holds '\\x00'"),
        ("\x1b[31m", "holds '\\x1b['"),
        ("[red]a", "holds '[]'"),
        ("web.1", "holds '.'"),
        ("bøb", "holds 'ø'"),
        ("-rf", "starts with '-'"),
        ("_x", "starts with '_'"),
        ("", "1 to 15 bytes"),
        ("x" * 16, "1 to 15 bytes"),
        (".", "holds '.'"),
        ("..", "holds '.'"),
    ],
)
def test_unsafe_interface_names(name: str, why: str) -> None:
    problem = ifname_problem(name)
    assert problem is not None and why in problem


def test_mesh_names_may_be_longer_but_not_unsafe() -> None:
    assert name_problem("m" * 64, MESH_NAME_MAX) is None
    assert "1 to 64 bytes" in (name_problem("m" * 65, MESH_NAME_MAX) or "")
    assert "holds '\\n'" in (name_problem("a\nb", MESH_NAME_MAX) or "")


@pytest.mark.parametrize("user", ["root", "debian", "_svc", "ci-bot", "host$", "u" * 32])
def test_user_names(user: str) -> None:
    assert user_problem(user) is None


@pytest.mark.parametrize("user", ["Root", "-oProxyCommand=x", "1abc", "a b", "a$b", "u" * 33, ""])
def test_not_user_names(user: str) -> None:
    assert user_problem(user) is not None


def test_paths_and_text() -> None:
    assert path_problem("~/.ssh/id_ed25519") is None
    assert path_problem("keys dir/with spaces") is None  # odd, but harmless in a path
    assert "control character" in (path_problem("a\nb") or "")
    assert "control character" in (path_problem("a\x00b") or "")
    assert "empty" in (path_problem("") or "")
    assert "4096" in (path_problem("/" + "x" * 4096) or "")
    assert text_problem("Stafford, UK — the shed", 200) is None
    assert "control character" in (text_problem("Paris\x1b]0;x\x07", 200) or "")
    assert "control character" in (text_problem("Paris\u202e", 200) or "")
    assert "more than 200" in (text_problem("x" * 201, 200) or "")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0.0.0.0", "this host"),
        ("0.9.9.9", "this host"),
        ("::", "this host"),
        ("127.0.0.1", "loopback"),
        ("127.1.2.3", "loopback"),
        ("::1", "loopback"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("2001:db8::1%eth0", "zone"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:0.0.0.0", "this host"),
    ],
)
def test_endpoint_addresses_that_cannot_be_dialled(text: str, why: str) -> None:
    addr, problem = endpoint_address(text)
    assert addr is None and problem is not None and why in problem


def test_a_mapped_ipv4_address_is_that_ipv4_address() -> None:
    assert endpoint_address("::ffff:192.0.2.1") == (IPv4Address("192.0.2.1"), None)
    assert endpoint_address("2001:db8::1") == (ip_address("2001:db8::1"), None)


def test_ssh_addresses_may_be_loopback_or_link_local() -> None:
    # A port forward to localhost, a host on the local link: both make sense for SSH.
    for ok in ("127.0.0.1", "::1", "fe80::1%eth0", "pi0.lan", "192.0.2.1"):
        assert ssh_address_problem(ok) is None, ok
    for bad, why in (
        ("0.0.0.0", "this host"),
        ("239.1.1.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("-oProxyCommand=id", "neither an IP address nor a DNS name"),
        ("pi 0", "neither"),
    ):
        assert why in (ssh_address_problem(bad) or ""), bad


def test_mapped_addresses_count_as_their_ipv4_for_duplicates_and_networks(
    tmp_path: Path,
) -> None:
    texts = _problems(
        "hosts:\n"
        "  bob: {endpoint: static, address: 192.0.2.1}\n"
        '  rho: {endpoint: static, address: "::ffff:192.0.2.1"}\n'
        '  pi0: {endpoint: static, address: "::FFFF:10.99.99.9"}\n'
        "links: [[bob, rho], [rho, pi0]]\n",
        tmp_path,
    )
    assert "hosts.rho.address: same address as bob" in texts
    assert "hosts.pi0.address: 10.99.99.9 lies inside the mesh's 10.99.99.0/24" in texts


def test_a_mapped_address_is_kept_as_ipv4(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        'hosts:\n  bob: {endpoint: static, address: "::ffff:192.0.2.1"}\n'
        "  rho: {endpoint: nat}\nlinks: [[bob, rho]]\n"
    )
    assert inventory.load(path).host("bob").address == IPv4Address("192.0.2.1")


def _chain(jumps: int) -> str:
    lines = ["hosts:", "  h0: {endpoint: static, address: 192.0.2.1}"]
    lines += [f"  h{i}: {{endpoint: nat, ssh: {{via: h{i - 1}}}}}" for i in range(1, jumps + 1)]
    lines.append("links: [" + ", ".join(f"[h0, h{i}]" for i in range(1, jumps + 1)) + "]")
    return "\n".join(lines) + "\n"


def test_jump_chains_up_to_8_deep(tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(_chain(MAX_JUMPS))
    mesh = inventory.load(path)
    assert mesh.host(f"h{MAX_JUMPS}").ssh.via == f"h{MAX_JUMPS - 1}"
    texts = _problems(_chain(MAX_JUMPS + 2), tmp_path)
    deep = [t for t in texts if "jump hosts away" in t]
    assert [t.partition(":")[0] for t in deep] == ["hosts.h9.ssh.via", "hosts.h10.ssh.via"]


def test_mesh_name_defaults_to_a_safe_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "home-lab_2.yaml"
    path.write_text(TWO + "links: [[bob, rho]]\n")
    assert inventory.load(path).name == "home-lab_2"
    texts = _problems(TWO + "links: [[bob, rho]]\n", tmp_path, "home lab.yaml")
    assert any(t.startswith("mesh.name: not set, and the file's name 'home lab'") for t in texts)
    # A name given wins over a stem that would not do.
    path = tmp_path / "home lab.yaml"
    path.write_text("mesh: {name: home}\n" + TWO + "links: [[bob, rho]]\n")
    assert inventory.load(path).name == "home"


def test_problem_lines_never_carry_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        'hosts:\n  "\\e[2J\\e]0;x\\a": {endpoint: static, address: 192.0.2.1}\n'
        '  rho: {endpoint: nat, colour: "\\e[31m"}\n'
        'links: [["\\e[2J\\e]0;x\\a", rho], [rho, "\\u202eevil"]]\n'
    )
    with pytest.raises(InventoryError) as info:
        inventory.load(path)
    text = str(info.value)
    assert text == printable(text, "\n")
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "hosts.\\x1b[2J\\x1b]0;x\\x07: host name cannot be an interface name" in text


# --------------------------------------------------------------------------- reading limits


def _one(path: Path) -> str:
    with pytest.raises(InventoryError) as info:
        inventory.load(path)
    (problem,) = info.value.problems
    return problem.message


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: what it holds is never read
    assert _one(path).startswith("is more than 8 MiB (8388608 bytes)")
    with path.open("wb") as f:
        f.truncate(10 * 1024 * 1024)
    assert f"it has {10 * 1024 * 1024} bytes" in _one(path)


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "padded.yaml"
    body = TWO + "links: [[bob, rho]]\n"
    path.write_text(body + "#" * (MAX_BYTES - len(body) - 1) + "\n")
    assert path.stat().st_size == MAX_BYTES
    assert inventory.load(path).name == "padded"


def test_parse_refuses_text_over_the_limit() -> None:
    with pytest.raises(InventoryError, match="more than"):
        inventory.parse("#" * (MAX_BYTES + 1), Path("x.yaml"))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_is_refused_unread() -> None:
    assert _one(Path("/dev/zero")) == "is a character device, not a regular file"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # nobody writes: reading it would wait for ever
    assert _one(fifo) == "is a FIFO (named pipe), not a regular file"
    link = tmp_path / "link.yaml"
    link.symlink_to(fifo)
    assert _one(link) == "is a FIFO (named pipe), not a regular file"


def test_many_values_without_aliases_say_so(tmp_path: Path) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text("hosts: [" + "1," * MAX_NODES + "1]\nlinks: []\n")
    start = time.monotonic()
    message = _one(path)
    assert message == f"more than {MAX_NODES} values"  # no "(aliases expanding?)"
    assert time.monotonic() - start < 30  # generous: it takes well under a second


@pytest.mark.parametrize("depth", [33, 10_000])
def test_deep_nesting_is_refused(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("hosts: " + "[" * depth + "]" * depth + "\nlinks: []\n")
    assert "nested more than 32 levels deep" in _one(path)


def test_nesting_an_inventory_needs_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "hosts:\n  bob: {endpoint: static, address: 192.0.2.1, ssh: {address: bob.example}}\n"
        "  rho: {endpoint: nat}\nlinks:\n  - {hosts: [bob, rho], latency_ms: 3}\n"
    )
    assert inventory.load(path).host("bob").ssh.address == "bob.example"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("9" * 5000, "a number of 5000 digits: far too long"),
        ("2024-02-30", "YAML cannot read this timestamp"),
    ],
)
def test_values_yaml_cannot_make_are_problems(tmp_path: Path, value: str, why: str) -> None:
    texts = _problems(
        f"hosts:\n  bob: {{endpoint: static, address: {value}}}\n  rho: {{endpoint: nat}}\n"
        "links: [[bob, rho]]\n",
        tmp_path,
    )
    # One problem: no "a static host needs its address" for the value that could not be read.
    assert len(texts) == 1 and texts[0].startswith(f"hosts.bob.address: {why}"), texts
