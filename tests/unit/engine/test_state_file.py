"""The state file (issue 28): it is read only if it is what mesh-push writes, and never
replaced otherwise (mesh.state names a .json file); a corrupt one is a clear error, never a
traceback; and its keys are not handed to peers on its word alone: a key for an unreached host
that none of that host's peers has is refused unless --trust-state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesh_push import cli, inventory
from mesh_push.core.problems import InventoryError
from mesh_push.engine import state_file
from mesh_push.host.facts import Facts, Gathered
from tests.unit.modes.test_judge import HOSTS, LAB, states
from tests.unit.modes.test_judge import keys as captured_keys

SEED = Path(__file__).parents[3] / "inventory/seed.yaml"


def seed(tmp_path: Path) -> Path:
    inv = tmp_path / "seed.yaml"
    inv.write_text(SEED.read_text())
    return inv


@pytest.mark.parametrize(
    "corrupt",
    [
        '{"public_keys": []}',
        "not json at all",
        '{"name": "my-node-package", "version": "1.0.0"}',
        '{"public_keys": {}, "scripts": {"x": "rm -rf ~"}}',
        "[]",
        "directory",
    ],
)
def test_a_corrupt_or_foreign_state_file_is_a_clear_error_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], corrupt: str
) -> None:
    inv = seed(tmp_path)
    state = tmp_path / "seed.state.json"
    if corrupt == "directory":
        state.mkdir()
    else:
        state.write_text(corrupt)
    # (Commands that contact hosts read it after connecting; seed.yaml's hosts are not ours.)
    for argv in (["plan"], ["render", "-o", str(tmp_path / "out")]):
        assert cli.main([argv[0], "-i", str(inv), *argv[1:]]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert str(state) in err, err
        assert (
            "cannot read the state file"
            if corrupt == "directory"
            else "is not a mesh-push state file"
        ) in err
    assert state.is_dir() if corrupt == "directory" else state.read_text() == corrupt
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("path", ["/home/me/.ssh/authorized_keys", "state", "x.json.bak"])
def test_mesh_state_must_name_a_json_file(tmp_path: Path, path: str) -> None:
    inv = tmp_path / "seed.yaml"
    inv.write_text(SEED.read_text().replace("mesh:\n", f"mesh:\n  state: {path}\n", 1))
    with pytest.raises(InventoryError) as e:
        inventory.load(inv)
    assert f"mesh.state: must name a .json file, not '{path}'" in str(e.value.problems[0])


def lab_gathered(reached: list[str]) -> Gathered:
    st = states()
    facts = {h: Facts(captured_keys()[h], "", True, False, True, True) for h in reached}
    return Gathered(facts, {h: st[h] for h in reached})


def test_a_state_key_no_peer_has_for_an_unreached_host_is_distrusted() -> None:
    mesh = inventory.load(LAB)
    real = captured_keys()
    reached = [h for h in HOSTS if h != "pi0"]
    swapped = {**real, "pi0": "A" * 43 + "="}
    assert state_file.distrusted(mesh, lab_gathered(reached), swapped) == ["pi0"]
    assert state_file.distrusted(mesh, lab_gathered(reached), real) == []
    # Reached, it says its own key; its peers' word is not needed.
    assert state_file.distrusted(mesh, lab_gathered(HOSTS), swapped) == []
    # Peers with no peers at all (a first up): nothing to compare with.
    empty = lab_gathered(reached)
    for st in empty.states.values():
        st.wg = {}
    assert state_file.distrusted(mesh, empty, swapped) == []


def test_up_refuses_a_swapped_state_key_unless_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mesh_push.engine.session import Access, Session

    inv = tmp_path / "lab.yaml"
    inv.write_text(LAB.read_text())
    mesh = inventory.load(inv)
    swapped = {**captured_keys(), "pi0": "A" * 43 + "="}
    mesh.state_file.write_text(json.dumps({"public_keys": swapped}))
    reached = [h for h in HOSTS if h != "pi0"]
    with pytest.raises(
        state_file.StateKeysError, match=r"gives pi0 \(AAAAAAAAAAAA…\) a public key"
    ):
        state_file.trust_state(Session(mesh, Access()), lab_gathered(reached))
    state_file.trust_state(Session(mesh, Access(trust_state=True)), lab_gathered(reached))
