"""`down HOST...`'s edit of the inventory (inventory/remove.py): the hosts and their links
go, every other line stays, and what remains keeps its numbers and VNIs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.problems import UsageError
from mesh_push.inventory import remove
from mesh_push.inventory.edit import RewriteError

ROOT = Path(__file__).resolve().parents[3]

AUTO = """\
mesh: {name: t}
hosts:
  # the first
  a: {endpoint: static, address: 192.0.2.1}
  b:
    endpoint: static
    address: 192.0.2.2   # b's
  c: {endpoint: nat}
  d:
    endpoint: nat
links:
  - [a, b]
  - [b, c]
  - hosts: [a, d]
    latency_ms: 3
  - {hosts: [b, d]}
"""


def load(tmp_path: Path, text: str) -> inventory.Mesh:
    path = tmp_path / "mesh.yaml"
    path.write_text(text)
    return inventory.load(path)


def test_the_lab_without_pi0_loses_two_lines_only() -> None:
    path = ROOT / "inventory" / "lab.yaml"
    text = path.read_text()
    mesh = inventory.load(path)
    rest, new = remove.without(mesh, text, ["pi0"])
    gone = [line for line in text.splitlines() if line not in new.splitlines()]
    assert len(gone) == 2 and all("pi0" in line for line in gone)
    assert "pi0" not in new
    assert rest.hosts == tuple(h for h in mesh.hosts if h.name != "pi0")
    assert rest.links == tuple(lk for lk in mesh.links if "pi0" not in lk.hosts)


@pytest.mark.parametrize(
    ("gone", "numbers", "vnis"),
    [
        (["a"], {"b": 2, "c": 3, "d": 4}, {("b", "c"): 2, ("b", "d"): 4}),
        (["c"], {"d": 4}, {("a", "d"): 3, ("b", "d"): 4}),
        (["d"], {}, {}),
    ],
)
def test_numbers_and_vnis_that_would_move_are_written_down(
    tmp_path: Path, gone: list[str], numbers: dict[str, int], vnis: dict[tuple[str, str], int]
) -> None:
    mesh = load(tmp_path, AUTO)
    rest, new = remove.without(mesh, AUTO, gone)
    again = load(tmp_path, new)
    assert (
        again
        == rest
        == dataclasses.replace(
            mesh,
            hosts=tuple(h for h in mesh.hosts if h.name not in gone),
            links=tuple(lk for lk in mesh.links if not set(lk.hosts) & set(gone)),
        )
    )
    for name, number in numbers.items():
        assert again.host(name).number == number
    # Written down where they would have moved, and only there.
    assert new.count("number:") == len(numbers)
    assert new.count("vni:") == len(vnis)
    assert "# b's" in new or "b" in gone  # comments stay


@pytest.mark.parametrize(
    ("gone", "why"),
    [
        (["b"], "the links do not connect every host: c cannot reach a"),
        (["a", "b", "c"], "fewer than two hosts"),
        (["x"], "not hosts of"),
    ],
)
def test_a_mesh_that_would_not_be_one_is_refused(tmp_path: Path, gone: list[str], why: str) -> None:
    mesh = load(tmp_path, AUTO)
    with pytest.raises(UsageError, match=why):
        remove.without(mesh, AUTO, gone)


def test_the_root_and_a_jump_host_are_refused_with_what_to_do(tmp_path: Path) -> None:
    text = AUTO.replace("mesh: {name: t}", "mesh: {name: t, stp: {root: a}}").replace(
        "  d:\n", "  d:\n    ssh: {via: a}\n"
    )
    mesh = load(tmp_path, text)
    with pytest.raises(UsageError) as e:
        remove.without(mesh, text, ["a"])
    assert "mesh.stp.root is a: name another root first" in str(e.value)
    assert "d is reached via a: change its ssh.via first" in str(e.value)


def test_links_full_that_would_renumber_is_refused(tmp_path: Path) -> None:
    text = AUTO.split("links:")[0].replace(
        "c: {endpoint: nat}", "c: {endpoint: static, address: 192.0.2.3}"
    )
    text = (
        text.replace("endpoint: nat", "endpoint: static\n    address: 192.0.2.4") + "links: full\n"
    )
    mesh = load(tmp_path, text)
    with pytest.raises(RewriteError, match="links: full"):
        remove.without(mesh, text, ["a"])


def test_a_host_on_a_shared_line_is_left_to_the_user(tmp_path: Path) -> None:
    text = AUTO.replace("hosts:\n  # the first\n", "hosts: {").replace("\nlinks:", "}\nlinks:")
    with pytest.raises(RewriteError):
        remove.without(load(tmp_path, AUTO), text, ["d"])
