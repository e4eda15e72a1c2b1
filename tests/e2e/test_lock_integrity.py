"""Safe by construction (issue 14), on the lab: two controllers at once each tell the truth and
leave every host consistent (the host lock); a script damaged on the way is refused; a failed
script never becomes the boot script; `down` stops a rollback timer. Needs root; under
CI=true it must run."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesh_push import cli
from mesh_push.engine import ssh
from mesh_push.host import programs as hostcmd
from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import (
    HOSTS,
    ROOT,
    cli_argv,
    lab_cat,
    lab_exec,
    lab_inventory,
    lab_up,
    mesh_push,
    templates_with,
    whole_boot_script,
)
from tests.schemas import validate

LAB, NET = labs.lab("mpl")  # tests/labs.py: this module's own
STATE = "/var/lib/mesh-push/lab"  # the mesh of inventory/lab.yaml is named lab
# Each release's host script appends its name here when it runs (the state directory is
# private to each lab host).
RAN = f"{STATE}/releases-that-ran"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    inv = lab_inventory(tmp_path_factory.mktemp("lock") / "lab.yaml", LAB, NET)
    with lab_up(LAB, inv):
        res = mesh_push("up", "-i", str(inv), "--yes", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        yield inv


def hosts(stdout: str) -> dict[str, dict[str, Any]]:
    validate(stdout, "run")  # the new steps (lock, upload) are documented ones
    return {h["name"]: h for h in json.loads(stdout)["hosts"]}


def cat(host: str, path: str) -> str | None:
    return lab_cat(LAB, host, path)


def consistent(host: str) -> str:
    """The host's boot script is the one its record says was applied, and nothing is pending;
    returns its text."""
    script = whole_boot_script(LAB, host, STATE)
    assert cat(host, f"{STATE}/pending.sh") is None, host
    return script


def release(tmp: Path, name: str, extra: str = "") -> Path:
    """Templates whose host script, for every host, runs `extra` then records `name`."""
    inject = f"# release {name}\n{extra}echo {name} >> {RAN}\n"
    (tmp / name).mkdir()
    return templates_with(tmp / name, inject)


def final_up_is_healthy(inventory: Path) -> None:
    res = mesh_push("up", "-i", str(inventory), "--yes", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    status = mesh_push("status", "-i", str(inventory), "--json")
    assert status.returncode == 0, status.stdout


def test_two_ups_at_once_both_tell_the_truth(inventory: Path, tmp_path: Path) -> None:
    """Two controllers push different releases at the same moment. The slow one holds each
    host for 3 s (bob for 40 s, longer than the lock wait): the other waits on each host and
    applies after it, or, on bob, gives up saying who holds the lock. Each report must say
    what its script really did on each host, and each host must end in one state."""
    for h in HOSTS:
        lab_exec(LAB, h, "rm", "-f", RAN)
    slow = release(
        tmp_path, "slow", '{% if h.name == "bob" %}\nsleep 40\n{% else %}\nsleep 3\n{% endif %}\n'
    )
    quick = release(tmp_path, "quick")
    argv = ["up", "-i", str(inventory), "--yes", "--json", "--no-verify", "--templates"]

    def start(templates: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            cli_argv(*argv, str(templates)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT,
        )  # fmt: skip

    began = time.monotonic()
    runs = {"slow": start(slow)}
    time.sleep(1.5)
    runs["quick"] = start(quick)
    reports = {}
    for name, proc in runs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, 1), err
        reports[name] = hosts(out)
    print(f"two ups at once: {time.monotonic() - began:.1f} s")
    lock_failures = 0
    for h in HOSTS:
        ran = (cat(h, RAN) or "").split()
        assert sorted(set(ran)) == sorted(ran), (h, ran)  # no release ran twice
        for name, report in reports.items():
            r = report[h]
            if r["ok"]:
                # Applied (its changes are none but the release line: the mesh is the same).
                assert "apply" in r["seconds"], (h, name, r)
                assert name in ran, (h, name, r, ran)
            else:
                # The only way a run may fail here: it never got the host lock, and says so.
                assert r["step"] == "lock" and r["exit_code"] == hostcmd.EXIT_LOCKED, (h, r)
                assert r["message"].startswith(
                    "another mesh-push run holds the lock on this host since "
                ), r
                assert "apply); gave up after 30 s" in r["message"], r
                assert name not in ran, (h, name, ran)
                lock_failures += 1
        # One consistent state: the boot script is the last release that ran, recorded.
        script = consistent(h)
        assert ran and f"# release {ran[-1]}\n" in script, (h, ran)
    print(f"lock failures: {lock_failures}; releases per host: "
          f"{ {h: cat(h, RAN) for h in HOSTS} }")  # fmt: skip
    final_up_is_healthy(inventory)


def test_a_truncated_upload_is_refused(
    inventory: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """rho's script loses its second half on the way (a monkeypatched send): rho refuses it
    whole, runs nothing and records nothing; the other hosts apply theirs."""
    before = consistent("rho")
    templates = release(tmp_path, "cut")
    real_run = ssh.run

    def cutting(remote: Any, command: str, stdin: str | None = None, timeout: float = 300) -> Any:
        if remote.host == "rho" and stdin and "pending.sh" in command:
            stdin = stdin[: len(stdin) // 2]
        return real_run(remote, command, stdin, timeout)

    monkeypatch.setattr(ssh, "run", cutting)
    lab_exec(LAB, "rho", "rm", "-f", RAN)
    argv = ["up", "-i", str(inventory), "--yes", "--json", "--no-verify"]
    code = cli.main([*argv, "--templates", str(templates)])
    report = hosts(capsys.readouterr().out)
    assert code == 1
    rho = report["rho"]
    assert rho["status"] == "failed" and rho["step"] == "upload", rho
    assert rho["exit_code"] == hostcmd.EXIT_BAD_DIGEST
    assert rho["message"].startswith("the script did not arrive whole"), rho
    assert all(report[h]["ok"] for h in HOSTS if h != "rho")
    assert cat("rho", RAN) is None  # nothing ran
    assert consistent("rho") == before  # nothing recorded
    assert cat("rho", f"{STATE}/failed.sh") is None
    monkeypatch.undo()
    final_up_is_healthy(inventory)


def test_a_failed_apply_never_becomes_the_boot_script(inventory: Path, tmp_path: Path) -> None:
    before = consistent("vorke")
    templates = release(tmp_path, "broken", '{% if h.name == "vorke" %}\nexit 3\n{% endif %}\n')
    res = mesh_push(
        "up", "-i", str(inventory), "--yes", "--json", "--no-verify", "--templates", str(templates)
    )
    assert res.returncode == 1
    report = hosts(res.stdout)
    assert report["vorke"]["status"] == "failed" and report["vorke"]["exit_code"] == 3
    assert all(report[h]["ok"] for h in HOSTS if h != "vorke")
    assert consistent("vorke") == before  # the boot script is still the last good one
    failed = cat("vorke", f"{STATE}/failed.sh")
    assert failed is not None and "# release broken\n" in failed  # kept for inspection
    # A boot runs the boot script: the last good state, and the boot unit succeeds.
    reboot = mesh_push("lab", "reboot", "--name", LAB, "vorke")
    assert reboot.returncode == 0, reboot.stdout + reboot.stderr
    deadline = time.monotonic() + 60
    while mesh_push("status", "-i", str(inventory), "--json").returncode != 0:
        assert time.monotonic() < deadline, "vorke not healthy after its reboot"
        time.sleep(1)
    # The inventory's script is the one vorke last applied well: nothing to do there.
    res = mesh_push("up", "-i", str(inventory), "--yes", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert hosts(res.stdout)["vorke"]["status"] == "unchanged"


def test_down_stops_the_rollback_timers(inventory: Path, tmp_path: Path) -> None:
    """A `down` inside the confirmation window: every host's timer is stopped, so nothing can
    come back into the state directory after it (no rolled-back, no rollback.log). The window
    is long enough that no timer ends by itself before `down` (each host's starts when its
    apply ends, and under load `up` took longer than 10 s from the first to the last)."""
    res = mesh_push(
        "up", "-i", str(inventory), "--yes", "--json", "--no-verify", "--confirm-timeout", "600",
        "--templates", str(release(tmp_path, "confirmed")),
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    timers = {h: int(cat(h, f"{STATE}/armed.pid") or 0) for h in HOSTS}
    assert all(timers.values()), timers
    down = mesh_push("down", "-i", str(inventory), "--yes", "--json")
    assert down.returncode == 0, down.stdout + down.stderr
    for h, pid in timers.items():
        assert not Path(f"/proc/{pid}/cmdline").exists() or (
            f"{STATE}/armed.sh" not in Path(f"/proc/{pid}/cmdline").read_text()
        ), h
    for h in HOSTS:
        left = lab_exec(LAB, h, "ls", "-A", STATE)
        assert left.stdout == "", (h, left.stdout)
