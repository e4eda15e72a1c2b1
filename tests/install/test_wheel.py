"""The controller alone (issue 35): the wheel, installed into a clean virtual environment with
nothing but its declared dependencies (from the package index, as `pipx install .` does),
gives a `mesh-push` that answers `--help` and plans an example inventory with the templates it
carries. Needs the package index, so it is not part of `scripts/test --fast`."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert done.returncode == 0, f"{argv}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def test_the_wheel_alone_is_the_controller(tmp_path: Path) -> None:
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", ROOT,
        cwd=tmp_path)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("mesh_push-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel,
        cwd=tmp_path)  # fmt: skip
    # Away from the checkout: nothing of it on the path, the templates from the package.
    assert "usage: mesh-push" in run(bin_dir / "mesh-push", "--help", cwd=tmp_path).stdout
    plan = run(bin_dir / "mesh-push", "plan", "-i", ROOT / "inventory" / "seed.yaml", "--json",
               cwd=tmp_path)  # fmt: skip
    assert len(json.loads(plan.stdout)["hosts"]) == 5
    render = run(bin_dir / "mesh-push", "render", "-i", ROOT / "inventory" / "seed.yaml",
                 "-o", tmp_path / "out", cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "out" / "bob.sh").exists(), render.stdout
    # Only the controller's libraries: no test tool, nothing of the lab.
    listed = run(bin_dir / "python", "-m", "pip", "list", "--format", "json", cwd=tmp_path)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not names & {"pytest", "mypy", "ruff", "hypothesis"}, names
    assert {"fabric", "paramiko", "pyyaml", "rich"} <= names
