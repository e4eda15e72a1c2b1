"""The programs mesh-push runs on hosts besides the host script (facts, apply, the rollback
timer, gather, pings, ...): rendered for the seed inventory with fixed inputs and pinned by
tests/golden/hostcmd/. UPDATE_GOLDEN=1 rewrites them (then read the diff)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mesh_push import inventory, modes
from mesh_push.core.model import Mesh
from mesh_push.engine import handover, measure, ssh
from mesh_push.host import boot
from mesh_push.host import programs as hostcmd
from mesh_push.host import state as observe
from mesh_push.host import templates as render
from mesh_push.lab import ops
from mesh_push.modes import scripts
from mesh_push.modes.base import Plan
from tests import kit
from tests.kit import GOLDEN, ROOT
from tests.unit.engine.test_ssh import fake_sudo

SEED_KEYS = GOLDEN / "seed.keys.json"
GOLDEN = GOLDEN / "hostcmd"
DIGEST = "0123456789abcdef" * 4
TOKEN = "fedcba9876543210"
SECONDS = 60.0


def seed_plan() -> Plan:
    keys = json.loads(SEED_KEYS.read_text())
    return kit.plan(inventory.load(ROOT / "inventory/seed.yaml"), keys)


def _down(purge: bool) -> str:
    return scripts.down_script(seed_plan().mesh, render.load_templates(), purge)


def _mode_gather(mesh: Mesh) -> str:
    """The mode's part of the gather, as the engine passes it (engine/gather.py)."""
    return modes.of(mesh).gather_template


def _wire_pings(host: str) -> list[tuple[str, str]]:
    """As verify._ping asks: each of the mode's ping peers (stp: each wire's far end), at its
    bridge address."""
    p = seed_plan()
    return [
        (other, str(p.host(other).bridge_address.ip))
        for other in modes.of(p.mesh).ping_peers(p, host)
    ]


def _tunnel_pings(host: str) -> list[tuple[str, str]]:
    """As measure.measure asks: each peer, at its WireGuard address."""
    return [(pe.name, str(pe.address)) for pe in seed_plan().host(host).peers if pe.address]


def _programs() -> dict[str, Callable[[], str]]:
    mesh = seed_plan().mesh
    return {
        "facts.sh": lambda: hostcmd.facts(mesh, _mode_gather(mesh), True),
        "facts-keys-controller.sh": lambda: hostcmd.facts(mesh, _mode_gather(mesh), False),
        "gather.sh": lambda: hostcmd.gather(mesh, _mode_gather(mesh)),
        "apply.sh": lambda: hostcmd.apply(mesh, DIGEST),
        "apply-controller-key.sh": lambda: hostcmd.apply(mesh, DIGEST, install_key=True),
        "apply-psks.sh": lambda: hostcmd.apply(
            mesh, DIGEST, install_key=True, psks=["epsilon", "rho"]
        ),
        "psk-keys.sh": lambda: hostcmd.psk_keys(mesh, ["epsilon"], ["rho"]),
        "apply-armed.sh": lambda: hostcmd.apply(
            mesh, DIGEST, hostcmd.arm(mesh, TOKEN, SECONDS, _down(False))
        ),
        **{
            f"boot-{b.name}": functools.partial(
                lambda b: "".join(f["text"] for f in hostcmd.boot_hook(mesh, b)["files"]), b
            )
            for b in boot.BOOTS
        },
        "apply-runit.sh": lambda: hostcmd.apply(mesh, DIGEST, boot=boot.RunitBoot),
        "arm.sh": lambda: hostcmd.arm(mesh, TOKEN, SECONDS, _down(False)),
        "armed.sh": lambda: hostcmd.armed(mesh, TOKEN, SECONDS),
        "armed-fraction.sh": lambda: hostcmd.armed(mesh, TOKEN, 2.5),
        "confirm.sh": lambda: hostcmd.confirm(mesh, TOKEN),
        "rolled-back.sh": lambda: hostcmd.rolled_back(mesh, TOKEN),
        "rotate-key.sh": lambda: hostcmd.rotate_key(mesh),
        "handover-switch.sh": lambda: hostcmd.handover_switch(mesh, ["wg0"]),
        # bob takes rho's new key (rho static: its endpoint); rho takes pi0's (behind NAT).
        "handover-take.sh": lambda: handover.takes(seed_plan(), ["rho"], ["bob"])["bob"],
        "handover-take-nat.sh": lambda: handover.takes(seed_plan(), ["pi0"], ["rho"])["rho"],
        "ping-rho.sh": lambda: hostcmd.ping(_wire_pings("rho")),
        "measure-rho.sh": lambda: measure.ping_command(_tunnel_pings("rho"), 10),
        "down-stdin.sh": lambda: hostcmd.down(mesh),
        "down.sh": lambda: _down(False),
        "down-purge.sh": lambda: _down(True),
    }


PROGRAMS = sorted(_programs())
SHELL = [n for n in PROGRAMS if n.endswith(".sh")]


@pytest.mark.parametrize("name", PROGRAMS)
def test_golden_host_commands(name: str) -> None:
    text = _programs()[name]()
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_no_stray_golden_files() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir()) == PROGRAMS


def _detached(apply: str) -> str:
    """The program the apply command runs in its own session (`setsid sh -c '...'`)."""
    m = re.search(r"^setsid sh -c ('.*?') </dev/null", apply, re.S | re.M)
    assert m, apply
    (word,) = shlex.split(m.group(1))
    return word


@pytest.mark.parametrize("shell", ["sh", "bash"])
@pytest.mark.parametrize("name", SHELL)
def test_programs_parse(name: str, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    text = _programs()[name]()
    texts = [text, _detached(text)] if name.startswith("apply") else [text]
    for t in texts:
        subprocess.run([shell, "-n"], input=t.encode(), check=True)


def test_arm_carries_the_timer_and_the_fallback() -> None:
    import base64

    mesh = seed_plan().mesh
    text = hostcmd.arm(mesh, TOKEN, SECONDS, _down(False))
    coded = re.findall(r"^ *printf '%s\\n' (\S+) \| base64 -d", text, re.M)
    assert [base64.b64decode(c).decode() for c in coded] == [
        _down(False),
        hostcmd.armed(mesh, TOKEN, SECONDS),
    ]


def test_the_systemd_unit_runs_the_last_applied_script() -> None:
    mesh = seed_plan().mesh
    assert (mesh.boot_unit, mesh.boot_wants) == (
        "/etc/systemd/system/mesh-push-seed.service",
        "/etc/systemd/system/multi-user.target.wants/mesh-push-seed.service",
    )
    # What the lab's boot (and systemd) runs: this mesh's last applied script.
    (unit,) = hostcmd.boot_hook(mesh, boot.SystemdBoot)["files"]
    assert ops.parse_unit(unit["text"]) == [
        (["/bin/sh", "/var/lib/mesh-push/seed/apply.sh"], False)
    ]


# The sections each mode's part of the gather adds (where the host has nothing of the mesh:
# evpn asks FRR only when the mesh's instance runs).
MODE_SECTIONS = {
    "stp": ["brctl", "bridge-root"],
    "evpn": ["vtep-route", "vtep-rules", "frr-daemons"],
}


@pytest.mark.parametrize("mode", modes.NAMES)
def test_gather_runs_as_one_command_string(tmp_path: Path, mode: str) -> None:
    """Multi-line, as the login shell (sh or bash -c) or `sudo sh -c` gets it: every section
    comes out, and a value is one word whatever it holds."""
    evil = f"x'$(touch {tmp_path}/pwned)\"`touch {tmp_path}/pwned`"
    mesh = dataclasses.replace(seed_plan().mesh, wg_interface=evil, bridge=evil)
    cmd = hostcmd.gather(mesh, modes.named(mode).gather_template)
    want = ["hostname", "now", "wg-all-public-key", "wg-all-listen-port",
            "wg-all-latest-handshakes", "wg-all-endpoints", "wg-all-transfer",
            "wg-all-allowed-ips", "wg-all-persistent-keepalive", "wg-all-preshared-keys",
            "psk-files", "key-time", "psk-times", "ip-link", "tx-checksum", "names", "boot",
            *MODE_SECTIONS[mode], "end"]  # fmt: skip
    target = ssh.Target("h", "h", 22, "debian", (), None, sudo=True)
    line, _ = ssh.as_root(cmd, target, None)
    env = fake_sudo(tmp_path, None)
    for argv in (["sh", "-c", cmd], ["bash", "-c", cmd], ["sh", "-c", line]):
        res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
        assert res.returncode == 0, res.stderr
        assert list(observe.sections(res.stdout)) == want
        assert res.stdout.splitlines()[1] == os.uname().nodename
    assert not (tmp_path / "pwned").exists()


def test_values_are_one_word_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evil = "a b'$(touch pwned)\"`touch pwned`"  # run in tmp_path
    key = tmp_path / evil / "wg0.key"
    key.parent.mkdir()
    if shutil.which("wg"):
        # The key staging takes the host lock in the state directory: never the machine's.
        m = seed_plan().mesh
        cmd = (
            hostcmd.rotate_key(m)
            .replace(shlex.quote(m.key_file), shlex.quote(str(key)))
            .replace(shlex.quote(m.state_dir), shlex.quote(str(tmp_path / evil / "state")))
        )
        res = subprocess.run(["sh", "-c", cmd], capture_output=True, cwd=tmp_path)
        assert res.returncode == 0 and len(res.stdout.strip()) == 44, res.stderr
        assert (key.parent / "wg0.key.next").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / evil / "state" / "lock").read_text().endswith(", rotate-keys)\n")
    cmd = hostcmd.ping([(evil, evil)])
    res = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, cwd=tmp_path)
    assert res.stdout == evil + "\n"  # no ping answered: the peer named back, as it is
    assert not (tmp_path / "pwned").exists()
    mesh = seed_plan().mesh
    for text in (
        hostcmd.confirm(mesh, evil),
        hostcmd.armed(mesh, evil, 1),
        _detached(hostcmd.apply(mesh, evil)),
    ):
        assert f"{shlex.quote(evil)}" in text and evil not in text.replace(shlex.quote(evil), "")


def test_docs_name_every_program() -> None:
    doc = (ROOT / "docs" / "host-files.md").read_text()
    builtin = render.builtin_templates()
    templates = sorted(builtin.rglob("*.j2"))
    assert len(templates) > 20  # every directory of templates/ is looked in
    for template in templates:
        name = template.relative_to(builtin).as_posix()  # as loaded: "programs/apply.sh.j2"
        assert f"| `{name}`" in doc, name


def test_apply_installs_the_key_from_stdin_and_never_stores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keys: controller: the apply program reads the key's line off stdin into the key file
    (0600), then stores and runs the script that follows, which does not hold it. Rendered
    with every host path moved into tmp_path."""
    state, etc = tmp_path / "state", tmp_path / "etc"
    key_file = etc / "wireguard" / "wg0.key"
    mesh = seed_plan().mesh
    real = render.host_paths

    def paths(m: object) -> dict[str, object]:
        out = real(mesh)
        out.update(
            state_dir=str(state),
            key_file=str(key_file),
        )
        out.update(render.boot_paths(mesh, boot.rooted(str(etc))))
        return out

    monkeypatch.setattr(render, "host_paths", paths)
    key = "kPbhC3SPqwpHTkW6vIrVTX4oVBHSGhhcLdEy4lAi9U8="
    digest = hashlib.sha256(f"{key}\n".encode()).hexdigest()
    script = (
        f'#!/bin/sh\n[ "$(sha256sum < {key_file} | cut -c1-64)" = {digest} ] '
        '&& echo "changed: ran"\n'
    )
    script_digest = hashlib.sha256(script.encode()).hexdigest()
    kind = boot.rooted(str(etc))[0]
    program = hostcmd.apply(mesh, script_digest, "", kind, True)
    # The second time: the same key, the same boot unit.
    for want in (["private key installed", "ran", "boot unit installed"], ["ran"]):
        res = subprocess.run(
            ["sh", "-c", program], input=f"{key}\n{script}", capture_output=True, text=True,
            timeout=30,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        assert [ln.removeprefix("changed: ") for ln in res.stdout.splitlines()] == want
        assert key_file.read_text() == key + "\n"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert key_file.parent.stat().st_mode & 0o777 == 0o700
        assert (state / "apply.sh").read_text() == script
        assert (state / "applied.sha256").read_text().strip() == script_digest
    for path in (state, etc):
        for f in path.rglob("*"):
            assert f == key_file or f.is_dir() or f.is_symlink() or key not in f.read_text(), f
    assert key not in res.stdout + res.stderr
