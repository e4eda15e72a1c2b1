"""The CI examples (examples/ci/mesh-rollout.yml, then mesh-drift-check.yml) run for real: their
`mesh-push` steps, parsed out of the workflow, in the workflow's order, with bash -eo pipefail
and the workflow's env, against a lab. Only the checkout, install and secret-restoring steps
are skipped; the substitution is explicit: the workflow's path variables (INVENTORY,
MESH_SSH_CONFIG, MESH_KNOWN_HOSTS, MESH_SSH_KEY, MESH_SSH_DIR, REPORT_DIR) are overridden with
the lab's files. The lab test needs root; under CI=true it must run. The other tests check the
examples' shape without a lab."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import HOSTS, ROOT, lab_exec, lab_inventory, lab_up, mesh_push

EXAMPLE = ROOT / "examples/ci"
WORKFLOW = EXAMPLE / "mesh-rollout.yml"
DRIFT_WORKFLOW = EXAMPLE / "mesh-drift-check.yml"
LAB, NET = labs.lab("mpw")  # tests/labs.py: this module's own
# The workflow's variables that the test replaces with the lab's files; nothing else is changed.
PATH_VARS = (
    "INVENTORY",
    "MESH_SSH_CONFIG",
    "MESH_SSH_DIR",
    "MESH_KNOWN_HOSTS",
    "MESH_SSH_KEY",
    "REPORT_DIR",
)
MESH_PUSH_LINE = re.compile(r"^\s*mesh-push\s", re.M)


def workflow(path: Path = WORKFLOW) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def job(wf: dict[str, Any]) -> dict[str, Any]:
    jobs = wf["jobs"]
    assert len(jobs) == 1, "the example has one job"
    return next(iter(jobs.values()))


def mesh_push_steps(wf: dict[str, Any]) -> list[dict[str, Any]]:
    """The `run:` steps with a line that starts with `mesh-push`, in the workflow's order."""
    return [s for s in job(wf)["steps"] if "run" in s and MESH_PUSH_LINE.search(s["run"])]


def step_env(wf: dict[str, Any], step: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    env = {**os.environ}
    for layer in (wf.get("env") or {}, job(wf).get("env") or {}, step.get("env") or {}):
        env.update({k: str(v) for k, v in layer.items()})
    env.update(overrides)
    return env


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # What `shell: bash` runs on GitHub's runners; no terminal on stdin, as there.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_workflow_shape() -> None:
    wf = workflow()
    on = wf["on"] if "on" in wf else wf[True]  # type: ignore[index]  # PyYAML: `on:` is True
    assert on["push"]["branches"] == ["main"]
    assert wf["defaults"]["run"]["shell"] == "bash"
    assert set(PATH_VARS) <= set(wf["env"]), "the variables the test substitutes are declared"
    assert wf["env"]["NO_COLOR"]
    steps = mesh_push_steps(wf)
    commands = [MESH_PUSH_LINE.search(s["run"]).group(0) for s in steps]  # type: ignore[union-attr]
    assert [s["run"].split("mesh-push ", 1)[1].split()[0] for s in steps] == [
        "plan",
        "up",
        "status",
    ], commands
    plan, up, status = (s["run"] for s in steps)
    assert '-i "$INVENTORY"' in plan and "--json" in plan
    for flag in ("--yes", "--serial 2", "--max-fail 0", "--confirm-timeout 60", "--json"):
        assert flag in up
    assert '-i "$INVENTORY"' in status and "--json" in status
    text = WORKFLOW.read_text()
    assert "--accept-new" not in text.replace("Never `--accept-new`", "")
    for s in steps:
        assert "${{" not in s["run"], "the mesh-push steps use only plain env variables"
        assert not s.get("continue-on-error") and "if" not in s, "a failure must fail the job"
    for s in job(wf)["steps"]:
        # Secrets reach a step only through its env, never a command line or a shell expansion.
        assert "secrets." not in s.get("run", "")
        for value in (s.get("env") or {}).values():
            if "secrets." in str(value):
                assert "umask 077" in s["run"] and "printf '%s\\n'" in s["run"]
                assert "set -x" not in s["run"]


def test_drift_workflow_shape() -> None:
    """Scheduled, never beside a rollout, the rollout's variables and secret handling, one
    mesh-push step that changes nothing."""
    wf, rollout = workflow(DRIFT_WORKFLOW), workflow()
    on = wf["on"] if "on" in wf else wf[True]  # type: ignore[index]
    assert on["schedule"][0]["cron"] and "push" not in on
    assert wf["concurrency"] == rollout["concurrency"]
    assert {k: v for k, v in wf["env"].items() if k != "REPORT_DIR"} == {
        k: v for k, v in rollout["env"].items() if k != "REPORT_DIR"
    }
    restore = [s for s in job(wf)["steps"] if "secrets" in str(s.get("env"))]
    assert restore == [s for s in job(rollout)["steps"] if "secrets" in str(s.get("env"))]
    (step,) = mesh_push_steps(wf)
    assert '--check --diff --json | tee "$REPORT_DIR/check.json"' in step["run"]
    assert "--yes" not in step["run"] and "--accept-new" not in DRIFT_WORKFLOW.read_text()
    assert not step.get("continue-on-error") and "if" not in step


def test_example_inventory_names_the_files_the_workflow_writes() -> None:
    env = workflow()["env"]
    inventory = yaml.safe_load((EXAMPLE / "inventory.yaml").read_text())
    base = Path(env["INVENTORY"]).parent
    ssh = inventory["ssh"]
    for key, var in (
        ("config", "MESH_SSH_CONFIG"),
        ("known_hosts", "MESH_KNOWN_HOSTS"),
        ("identity", "MESH_SSH_KEY"),
    ):
        assert os.path.normpath(base / ssh[key]) == os.path.normpath(env[var]), key
    for var in ("MESH_KNOWN_HOSTS", "MESH_SSH_KEY"):
        assert Path(env[var]).parent == Path(env["MESH_SSH_DIR"])
    assert inventory["mesh"]["keys"] == "host"
    res = mesh_push("plan", "-i", str(EXAMPLE / "inventory.yaml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_secret_restoring_step_writes_private_files(tmp_path: Path) -> None:
    """The restore step itself, with a throwaway key as the secret: 0700 directory, 0600 files,
    the key never printed. (The lab test below skips this step, as it skips the checkout.)"""
    wf = workflow()
    step = next(
        s
        for s in job(wf)["steps"]
        if any("secrets." in str(v) for v in (s.get("env") or {}).values())
    )
    key = tmp_path / "throwaway"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)], check=True
    )
    secret = key.read_text().strip()
    known = f"192.0.2.1 {key.with_suffix('.pub').read_text().strip()}"
    work = tmp_path / "checkout"
    (work / "mesh").mkdir(parents=True)
    (work / "mesh/ssh_config").write_text("")
    env = step_env(wf, step, {"SSH_KEY": secret, "KNOWN_HOSTS": known})
    res = bash(step["run"], env, work)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PRIVATE KEY" not in res.stdout + res.stderr
    ssh_dir = work / wf["env"]["MESH_SSH_DIR"]
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700
    for var, content in (("MESH_SSH_KEY", secret), ("MESH_KNOWN_HOSTS", known)):
        path = work / wf["env"][var]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, var
        assert path.read_text() == content + "\n"
    # Without the secrets the step stops, and says why.
    res = bash(step["run"], step_env(wf, step, {"SSH_KEY": "", "KNOWN_HOSTS": ""}), work)
    assert res.returncode != 0 and "MESH_SSH_KEY" in res.stdout


def test_workflow_steps_run_against_the_lab(tmp_path: Path) -> None:
    require_root()
    wf = workflow()
    steps = mesh_push_steps(wf)
    lab_dir = Path(f"/run/mesh-push/lab/{LAB}")
    checkout = tmp_path / "checkout"  # the steps' working directory, as the checkout is
    (checkout / "mesh").mkdir(parents=True)
    overrides = {
        "INVENTORY": str(checkout / "mesh/inventory.yaml"),
        "MESH_SSH_CONFIG": str(lab_dir / "ssh_config"),
        "MESH_SSH_DIR": str(lab_dir),
        "MESH_KNOWN_HOSTS": str(lab_dir / "known_hosts"),
        "MESH_SSH_KEY": str(lab_dir / "id_ed25519"),
        "REPORT_DIR": str(tmp_path / "reports"),
    }
    assert set(overrides) == set(PATH_VARS)
    # The lab's copy of inventory/lab.yaml, renamed, renumbered, and with an `ssh:` section that
    # names the overridden files, as examples/ci/inventory.yaml names the workflow's.
    inv = lab_inventory(Path(overrides["INVENTORY"]), LAB, NET)
    text = inv.read_text().replace(
        "\nhosts:\n",
        "\nssh:\n"
        f"  config: {overrides['MESH_SSH_CONFIG']}\n"
        f"  known_hosts: {overrides['MESH_KNOWN_HOSTS']}\n"
        f"  identity: {overrides['MESH_SSH_KEY']}\n"
        "\nhosts:\n",
        1,
    )
    assert f"name: {LAB}" in text and "198.18.0." not in text
    inv.write_text(text)
    # `mesh-push` on PATH is this tree's, whatever else is installed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "mesh-push"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m mesh_push.cli "$@"\n')
    wrapper.chmod(0o755)
    overrides["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    overrides["PYTHONPATH"] = str(ROOT)

    with lab_up(LAB, inv):
        outputs = []
        for step in steps:
            res = bash(step["run"], step_env(wf, step, overrides), checkout)
            outputs.append(res)
            # Every step must exit 0 for the job to go on (none has continue-on-error).
            assert res.returncode == 0, (
                f"step {step.get('name')!r} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
            )
        reports = Path(overrides["REPORT_DIR"])
        assert sorted(p.name for p in reports.iterdir()) == ["plan.json", "status.json", "up.json"]
        plan = json.loads((reports / "plan.json").read_text())
        up = json.loads((reports / "up.json").read_text())
        status = json.loads((reports / "status.json").read_text())
        # What the up and status steps print (tee) is the same JSON as their artifacts.
        assert json.loads(outputs[1].stdout) == up
        assert json.loads(outputs[2].stdout) == status
        assert {h["name"] for h in plan["hosts"]} == set(HOSTS)
        assert up["ok"] is True
        # A fresh lab: every host changed, and was confirmed (not rolled back) in time.
        assert {h["name"]: h["status"] for h in up["hosts"]} == dict.fromkeys(HOSTS, "changed")
        assert status["healthy"] is True and status["tree_matches_plan"] is True
        # Non-interactive and uncoloured: no ANSI escape anywhere.
        assert not any("\x1b[" in r.stdout + r.stderr for r in outputs)

        # The nightly drift check: nothing to say on the mesh just rolled out; then a wire
        # deleted behind mesh-push's back fails the step (exit 3) and is in the report.
        wf = workflow(DRIFT_WORKFLOW)
        (check,) = mesh_push_steps(wf)
        quiet = bash(check["run"], step_env(wf, check, overrides), checkout)
        assert quiet.returncode == 0, quiet.stdout + quiet.stderr
        assert json.loads((reports / "check.json").read_text())["pending"] is False
        gone = lab_exec(LAB, "bob", "ip", "link", "del", "dev", "rho")
        assert gone.returncode == 0, gone.stderr
        drifted = bash(check["run"], step_env(wf, check, overrides), checkout)
        assert drifted.returncode == 3, drifted.stdout + drifted.stderr
        found = {h["name"]: h for h in json.loads((reports / "check.json").read_text())["hosts"]}
        assert found["bob"]["changes"] == ["wire rho created (vni 6)"], found["bob"]
        assert found["bob"]["diff"] == "" and found["rho"]["changes"] == []
    assert not [
        n
        for n in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True
        ).stdout.split()
        if n.startswith(f"{LAB}-")
    ]
