"""Safe by construction, controller side (issue 14): a keystore per inventory, `plan` and
`render` that write nothing but what was asked for, and directories and files that are never
chmod'ed unless mesh-push made them, nor written through a planted symbolic link."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mesh_push import cli, inventory
from mesh_push.core.model import Mesh
from mesh_push.engine import keys, ssh, state_file
from mesh_push.files import fsutil
from tests.kit import GOLDEN, ROOT

SMALL = """
hosts:
  bob: {endpoint: static, address: 198.51.100.1}
  rho: {endpoint: nat}
links: [[bob, rho]]
"""


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


@pytest.fixture
def no_dialling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> ssh.Remote:
        raise AssertionError("nothing may be dialled here")

    monkeypatch.setattr(ssh, "connect", refuse)


def write_inventory(path: Path, keys_mode: str = "controller", extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"mesh:\n  keys: {keys_mode}\n{extra}{SMALL}")
    return path


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def mode(path: Path) -> int:
    return path.lstat().st_mode & 0o7777


# --------------------------------------------------------------------------- keystore


def test_default_keystore_is_per_inventory(tmp_path: Path, data_home: Path) -> None:
    prod = inventory.load(write_inventory(tmp_path / "prod" / "mesh.yaml"))
    staging = inventory.load(write_inventory(tmp_path / "staging" / "mesh.yaml"))
    assert prod.name == staging.name == "mesh"
    assert prod.keystore != staging.keystore
    for m in (prod, staging):
        assert m.keystore.parent.parent == data_home / "mesh-push"
        assert m.keystore.parent.name.startswith("mesh-") and m.keystore.name == "keys"
        assert m.legacy_keystore == data_home / "mesh-push" / "mesh" / "keys"
        keys.ensure_keystore(m)
    assert keys.read_private_key(prod, "bob") != keys.read_private_key(staging, "bob")
    assert keys.public_keys(prod) != keys.public_keys(staging)
    # The same file by another path is the same inventory.
    again = inventory.load(tmp_path / "prod" / ".." / "prod" / "mesh.yaml")
    assert again.keystore == prod.keystore
    # An explicit keystore stays as it is, beside the inventory when relative.
    explicit = inventory.load(
        write_inventory(tmp_path / "x" / "mesh.yaml", extra="  keystore: ks\n")
    )
    assert explicit.keystore == tmp_path / "x" / "ks" and explicit.legacy_keystore is None


def test_plan_in_controller_mode_creates_no_file(
    tmp_path: Path, data_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = write_inventory(tmp_path / "mesh.yaml")
    before = tree(tmp_path)
    assert cli.main(["plan", "-i", str(inv)]) == 0
    capsys.readouterr()
    assert cli.main(["plan", "-i", str(inv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hosts"]
    assert cli.main(["render", "-i", str(inv), "-o", str(tmp_path / "out")]) == 0
    assert "stand-in keys" in capsys.readouterr().err
    assert [p for p in tree(tmp_path) if p not in before and not p.startswith("out")] == []
    assert not data_home.exists()


def test_legacy_keystore_is_named_never_used(
    tmp_path: Path, data_home: Path, capsys: pytest.CaptureFixture[str], no_dialling: None
) -> None:
    legacy = data_home / "mesh-push" / "mesh" / "keys"
    legacy.mkdir(parents=True, mode=0o700)
    (legacy / "bob.key").write_text("old\n")
    inv = write_inventory(tmp_path / "mesh.yaml")
    m = inventory.load(inv)
    with pytest.raises(keys.KeystoreError, match="move that directory to"):
        keys.ensure_keystore(m)
    assert cli.main(["up", "-i", str(inv), "--yes", "--json"]) == 2
    assert str(legacy) in capsys.readouterr().err
    assert cli.main(["render", "-i", str(inv), "-o", str(tmp_path / "out")]) == 2
    assert f"mesh.keystore: {legacy}" in capsys.readouterr().err
    assert not m.keystore.exists() and tree(legacy) == ["bob.key"]


def test_unsafe_keystore_is_refused(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "mesh.yaml", extra=f"  keystore: {tmp_path}/ks\n")
    m = inventory.load(inv)
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "ks").symlink_to(real)
    with pytest.raises(fsutil.LocalFileError, match="is a symbolic link"):
        keys.ensure_keystore(m)
    with pytest.raises(fsutil.LocalFileError, match="is a symbolic link"):
        keys.public_keys(m)  # read-only commands refuse it too
    assert tree(real) == []
    (tmp_path / "ks").unlink()
    (tmp_path / "ks").mkdir()
    os.chmod(tmp_path / "ks", 0o777)
    with pytest.raises(fsutil.LocalFileError, match="writable by others"):
        keys.ensure_keystore(m)
    assert mode(tmp_path / "ks") == 0o777 and tree(tmp_path / "ks") == []


def test_existing_keystore_is_used_as_it_is(tmp_path: Path) -> None:
    m = inventory.load(write_inventory(tmp_path / "mesh.yaml", extra="  keystore: ks\n"))
    ks = tmp_path / "ks"
    ks.mkdir(mode=0o755)
    os.chmod(ks, 0o755)
    victim = tmp_path / "victim"
    victim.write_text("not a key\n")
    (ks / "bob.key").symlink_to(victim)  # planted where the new key goes
    keys.ensure_keystore(m)
    assert mode(ks) == 0o755  # not ours to chmod
    assert victim.read_text() == "not a key\n"
    assert not (ks / "bob.key").is_symlink() and mode(ks / "bob.key") == 0o600
    assert len(keys.read_private_key(m, "bob")) == 44


def test_private_key_files_are_checked_before_sending(tmp_path: Path) -> None:
    m = inventory.load(write_inventory(tmp_path / "mesh.yaml", extra="  keystore: ks\n"))
    keys.ensure_keystore(m)
    key = m.keystore / "bob.key"
    os.chmod(key, 0o644)
    with pytest.raises(keys.KeystoreError, match="may be read or written by others"):
        keys.read_private_key(m, "bob")
    os.chmod(key, 0o600)
    text = key.read_text()
    key.unlink()
    (tmp_path / "elsewhere").write_text(text)
    key.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(keys.KeystoreError, match="symbolic link"):
        keys.read_private_key(m, "bob")
    key.unlink()
    with pytest.raises(keys.KeystoreError, match="no private key"):
        keys.read_private_key(m, "bob")
    key.write_text("not base64\n")
    os.chmod(key, 0o600)
    with pytest.raises(keys.KeystoreError, match="not a WireGuard private key"):
        keys.read_private_key(m, "bob")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    os.chown(other, 4242, 4242)
    with pytest.raises(fsutil.LocalFileError, match="belongs to uid 4242, not to you"):
        fsutil.private_dir(other)


# --------------------------------------------------------------------------- render -o


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    inv = tmp_path / "seed.yaml"
    shutil.copy(ROOT / "inventory/seed.yaml", inv)
    known = json.loads((GOLDEN / "seed.keys.json").read_text())
    (tmp_path / "seed.state.json").write_text(json.dumps({"public_keys": known}))
    return inv


def render(inv: Path, out: Path) -> int:
    return cli.main(["render", "-i", str(inv), "-o", str(out)])


def test_render_makes_missing_directories_0700(seed: Path, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert render(seed, out) == 0
    assert mode(tmp_path / "a") == 0o700 and mode(out) == 0o700
    assert all(mode(p) == 0o600 for p in out.iterdir())
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no temp file left


def test_render_uses_an_existing_directory_as_it_is(seed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o755)
    assert render(seed, out) == 0
    assert mode(out) == 0o755 and len(list(out.iterdir())) == 5


@pytest.mark.parametrize(("bits", "who"), [(0o1777, "others"), (0o770, "its group")])
def test_render_refuses_a_directory_others_can_write(
    seed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], bits: int, who: str
) -> None:
    """`render -o /tmp` as root once made /tmp 0700."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, bits)
    assert render(seed, shared) == 2
    assert f"writable by {who}" in capsys.readouterr().err
    assert mode(shared) == bits and tree(shared) == []


def test_render_refuses_a_symlinked_directory(
    seed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    os.chmod(target, 0o755)
    (tmp_path / "out").symlink_to(target)
    assert render(seed, tmp_path / "out") == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert mode(target) == 0o755 and tree(target) == []
    (tmp_path / "file").write_text("x")
    assert render(seed, tmp_path / "file") == 2
    assert "is not a directory" in capsys.readouterr().err
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert render(seed, dangling) == 2
    assert not (tmp_path / "nowhere").exists()


def test_render_never_writes_through_a_planted_symlink(seed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    (out / "bob.sh").symlink_to(victim)
    assert render(seed, out) == 0
    assert victim.read_text() == "precious\n" and mode(victim) == 0o644
    bob = out / "bob.sh"
    assert not bob.is_symlink() and mode(bob) == 0o600
    assert bob.read_text() == (GOLDEN / "seed" / "bob.sh").read_text()


def test_state_file_replaces_a_planted_symlink(tmp_path: Path) -> None:
    m: Mesh = inventory.load(write_inventory(tmp_path / "mesh.yaml", keys_mode="host"))
    key = {"bob": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="}
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    m.state_file.symlink_to(victim)
    # A link to a file that is not a state file: neither read nor replaced.
    with pytest.raises(fsutil.LocalFileError, match="is not a mesh-push state file"):
        state_file.save_public_keys(m, key)
    assert victim.read_text() == "precious\n" and m.state_file.is_symlink()
    # A link to a state file: replaced by the new file, the old one left as it was.
    victim.write_text('{"public_keys": {}}')
    state_file.save_public_keys(m, key)
    assert victim.read_text() == '{"public_keys": {}}' and not m.state_file.is_symlink()
    assert mode(m.state_file) == 0o644 and "bob" in state_file.read_state(m)
