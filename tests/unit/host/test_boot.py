"""The boot hooks of every init (host/boot.py), run by a real shell in a temporary root: the
apply command installs the chosen one (once: a second apply changes nothing), the gather sees
it and the script it runs, `up --check` says what it would do, and `down` takes it away
whichever init it was for, leaving nothing of it."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.model import Host
from mesh_push.host import boot
from mesh_push.host import programs as hostcmd
from mesh_push.host import templates as render
from mesh_push.host.state import HostState, sections
from mesh_push.modes import checks, scripts
from mesh_push.modes.judgement import HostVerdict
from tests.kit import ROOT

SCRIPT = "#!/bin/sh\necho 'changed: ran'\n"
DIGEST = hashlib.sha256(SCRIPT.encode()).hexdigest()


def sh(program: str, stdin: str = "") -> str:
    res = subprocess.run(
        ["sh", "-c", program], input=stdin, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.mark.parametrize("name", boot.KINDS)
def test_each_init_s_hook_is_installed_seen_and_removed(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = inventory.load(ROOT / "inventory/seed.yaml")
    root = tmp_path / "root"
    kinds = boot.rooted(str(root))
    kind = next(k for k in kinds if k.name == name)
    real = render.host_paths

    def paths(m: object) -> dict[str, object]:
        out = real(mesh)
        out.update(state_dir=str(tmp_path / "state"), **render.boot_paths(mesh, kinds))
        return out

    monkeypatch.setattr(render, "host_paths", paths)
    monkeypatch.setattr(scripts, "host_paths", paths)

    apply = hostcmd.apply(mesh, DIGEST, "", kind)
    assert sh(apply, SCRIPT).splitlines() == ["changed: ran", "changed: boot unit installed"]
    assert sh(apply, SCRIPT).splitlines() == ["changed: ran"]
    for f in kind.files(mesh):
        assert Path(f.path).stat().st_mode & 0o777 == int(f.chmod, 8), f
    seen = boot.parse(sections(sh(hostcmd.gather(mesh, "stp/gather.sh.j2")))["boot"])
    assert (seen.hooks, seen.script) == ((name,), True)
    # up --check: nothing to do now; with the hook disabled by hand, it says so and does not
    # enable it.
    check = hostcmd.check(mesh, False, boot=kind)
    assert sh(check, SCRIPT).splitlines() == ["changed: ran"]
    sh(kind.disable(mesh))
    assert sh(check, SCRIPT).splitlines() == ["changed: ran", "changed: boot unit installed"]
    assert boot.parse(sections(sh(hostcmd.gather(mesh, "stp/gather.sh.j2")))["boot"]).hooks == ()
    sh(apply, SCRIPT)

    down = scripts.down_script(mesh, render.load_templates(), purge=False)
    said = sh(down)
    assert f"changed: boot hook {name} disabled" in said
    left = [p for p in root.rglob("*") if not p.is_dir()]
    assert left == [], left


def test_the_init_a_host_runs_is_read_literally() -> None:
    assert boot.parse("init=openrc\nhook=openrc\nhook=systemd\nscript=yes\n") == boot.Seen(
        "openrc", ("systemd", "openrc"), True
    )
    # Anything else a host says is no init mesh-push knows, and no hook.
    odd = boot.parse("init=../../x\nhook=$(reboot)\nscript=maybe\n")
    assert odd == boot.Seen("none", (), False)


@pytest.mark.parametrize(
    ("setting", "seen", "finding"),
    [
        ("auto", boot.Seen("runit", ("runit",), True), None),
        ("auto", boot.Seen("runit", ("systemd",), True), "boot unit missing (runit)"),
        ("auto", boot.Seen("none", (), True), "nothing brings the mesh back at boot"),
        ("systemd", boot.Seen("none", ("systemd",), True), None),
        ("auto", boot.Seen("openrc", ("openrc",), False), "the script the boot unit runs"),
    ],
)
def test_the_judge_names_a_mesh_that_would_not_come_back(
    setting: str, seen: boot.Seen, finding: str | None
) -> None:
    host = Host("pi0", "nat", None, 1, boot=setting)
    v = HostVerdict("pi0", reachable=True, healthy=True)
    checks.boot(host, HostState("pi0", 0, {}, {}, boot=seen), v)
    if finding is None:
        assert v.reasons == []
    else:
        assert len(v.reasons) == 1 and finding in v.reasons[0], v.reasons
