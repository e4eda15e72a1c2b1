"""A mesh keeps its interface names (engine/names.py): an inventory that names neither gets
the new defaults, unless its hosts have this mesh's interfaces under the old ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.model import MARK_PREFIX
from mesh_push.engine import names
from mesh_push.host.state import HostState, Link, WgIf

TEXT = """\
mesh: {name: home}
hosts:
  a: {endpoint: static, address: 192.0.2.1}
  b: {endpoint: static, address: 192.0.2.2}
links:
  - [a, b]
"""


def host(*links: tuple[str, str, str]) -> HostState:
    wg = {n: WgIf() for n, kind, _ in links if kind == "tun"}  # wireguard-go's
    return HostState(
        "a", 0, {n: Link(n, True, 1500, kind, alias=alias) for n, kind, alias in links}, wg
    )


@pytest.fixture
def mesh(tmp_path: Path) -> inventory.Mesh:
    (tmp_path / "m.yaml").write_text(TEXT)
    return inventory.load(tmp_path / "m.yaml")


def test_a_new_mesh_gets_the_new_defaults(mesh: inventory.Mesh) -> None:
    assert (mesh.wg_interface, mesh.bridge) == ("mpwg", "mpbr")
    # Someone's own wg0 and bridge (no mark, or another mesh's) change nothing.
    other = host(("wg0", "wireguard", ""), ("internet", "bridge", f"{MARK_PREFIX}:work"))
    assert names.kept(mesh, {"a": other}) is mesh


@pytest.mark.parametrize(
    ("links", "wg", "bridge"),
    [
        ((("wg0", "wireguard", "MARK"), ("internet", "bridge", "MARK")), "wg0", "internet"),
        ((("wg0-3", "wireguard", "MARK"), ("wg0-vx", "vxlan", "MARK")), "wg0", "mpbr"),
        ((("internet", "bridge", MARK_PREFIX),), "mpwg", "internet"),  # the pre-names mark
        ((("wg0", "bridge", "MARK"),), "mpwg", "mpbr"),  # not a WireGuard interface
        ((("wg0", "tun", "MARK"),), "wg0", "mpbr"),  # wireguard-go's (wg show lists it)
    ],
)
def test_a_mesh_made_under_the_old_names_keeps_them(
    mesh: inventory.Mesh, links: tuple[tuple[str, str, str], ...], wg: str, bridge: str
) -> None:
    st = host(*((n, k, mesh.mark if a == "MARK" else a) for n, k, a in links))
    kept = names.kept(mesh, {"a": host(), "b": st})
    assert (kept.wg_interface, kept.bridge) == (wg, bridge)
    assert kept.unnamed == {k for k, v in (("wireguard.interface", wg), ("bridge.name", bridge))
                            if v.startswith("mp")}  # fmt: skip


def test_names_the_inventory_gives_are_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        TEXT.replace("{name: home}", "{name: home, bridge: {name: br0}}")
    )
    mesh = inventory.load(tmp_path / "m.yaml")
    st = host(("wg0", "wireguard", mesh.mark), ("internet", "bridge", mesh.mark))
    kept = names.kept(mesh, {"a": st})
    assert (kept.wg_interface, kept.bridge) == ("wg0", "br0")
