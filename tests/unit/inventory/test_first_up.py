"""What an inventory gets at its first use. The mesh keeps its name: the first `up` of an
inventory without `mesh.name` writes the name (the file's stem) into it, every comment kept,
so that moving the file renames nothing. And `plan` warns of what is valid but most likely
a mistake on real hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.inventory import pin_name
from mesh_push.inventory.edit import RewriteError
from tests.kit import ROOT

HOSTS = """\
# my mesh
hosts:   # the hosts
  a: {endpoint: static, address: 192.0.2.1}
  b: {endpoint: static, address: 192.0.2.2}
links:
  - [a, b]
"""


def load(path: Path) -> inventory.Mesh:
    return inventory.load(path)


@pytest.mark.parametrize(
    "text",
    [
        HOSTS,
        "mesh:\n  # the tunnels\n  wireguard: {port: 51999}\n" + HOSTS,
        "mesh:\n    keys: host\n" + HOSTS,
    ],
)
def test_the_name_goes_in_and_nothing_else_changes(tmp_path: Path, text: str) -> None:
    path = tmp_path / "home.yaml"
    path.write_text(text)
    before = load(path)
    assert before.name == "home" and before.name_from_file
    pin_name.write(path, {("name",): "home"})
    after = load(path)
    assert after.name == "home" and not after.name_from_file
    assert after.hosts == before.hosts and after.wg_port == before.wg_port
    new = path.read_text()
    assert all(line in new.splitlines() for line in text.splitlines())  # comments and all
    # Moved: still that mesh.
    moved = tmp_path / "elsewhere" / "inventory.yaml"
    moved.parent.mkdir()
    path.rename(moved)
    assert load(moved).name == "home"


def test_a_name_yaml_would_read_as_a_number_is_quoted(tmp_path: Path) -> None:
    path = tmp_path / "1e3.yaml"
    path.write_text(HOSTS)
    pin_name.write(path, {("name",): "1e3"})
    assert load(path).name == "1e3"


def test_a_symlinked_inventory_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "repo" / "mesh.yaml"
    real.parent.mkdir()
    real.write_text(HOSTS)
    link = tmp_path / "mesh.yaml"
    link.symlink_to(real)
    pin_name.write(link, {("name",): "mesh"})
    assert link.is_symlink() and 'name: "mesh"' in real.read_text()


def test_flow_style_is_not_edited(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("mesh: {keys: host}\n" + HOSTS)
    with pytest.raises(RewriteError, match="block-style"):
        pin_name.write(path, {("name",): "m"})
    assert path.read_text() == "mesh: {keys: host}\n" + HOSTS


@pytest.mark.parametrize(
    "text",
    [
        HOSTS,
        "mesh:\n  # the tunnels\n  wireguard: {port: 51999}\n" + HOSTS,
        "mesh:\n  name: home\n  wireguard:\n    port: 51999\n  bridge: {}\n" + HOSTS,
    ],
)
def test_the_old_default_names_go_in_and_nothing_else_changes(tmp_path: Path, text: str) -> None:
    """A mesh made under wg0 and internet keeps them (engine/names.py): `up` writes them."""
    path = tmp_path / "home.yaml"
    path.write_text(text)
    before = load(path)
    assert (before.wg_interface, before.bridge) == ("mpwg", "mpbr")
    assert before.unnamed == {"wireguard.interface", "bridge.name"}
    fields = {("wireguard", "interface"): "wg0", ("bridge", "name"): "internet"}
    if before.name_from_file:
        fields[("name",)] = "home"
    pin_name.write(path, fields)
    after = load(path)
    assert (after.wg_interface, after.bridge, after.unnamed) == ("wg0", "internet", frozenset())
    assert after.name == "home" and after.hosts == before.hosts
    assert after.wg_port == before.wg_port
    new = path.read_text()
    kept = [x for x in text.splitlines() if "#" in x or "endpoint" in x or "  port:" in x]
    assert all(line in new.splitlines() for line in kept)  # comments and all


def test_the_examples_name_their_meshes() -> None:
    """Every inventory shipped names its mesh: none depends on its file name."""
    for path in sorted((ROOT / "inventory").glob("*.yaml")):
        assert not load(path).name_from_file, path


def test_plan_warns_of_a_static_host_on_a_private_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid, but only its own network can dial it: said on stderr, exit 0. Documentation
    addresses stand for public ones; the lab's are private by design (no warning)."""
    from mesh_push import cli

    path = tmp_path / "home.yaml"
    path.write_text(HOSTS.replace("192.0.2.1", "192.168.1.10"))
    assert cli.main(["plan", "-i", str(path)]) == 0
    err = capsys.readouterr().err
    assert "hosts.a.address 192.168.1.10 is not a public address" in err
    assert "hosts.b" not in err
    for example in ("seed.yaml", "lab.yaml"):
        assert cli.main(["plan", "-i", str(ROOT / "inventory" / example)]) == 0
        assert "warning" not in capsys.readouterr().err
