"""Rendering as data: the seed inventory in, five scripts out, pinned by golden files.
UPDATE_GOLDEN=1 rewrites them (then read the diff)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from mesh_push import cli, inventory
from mesh_push.engine import keys
from mesh_push.host.templates import load_templates
from mesh_push.modes import scripts
from mesh_push.modes.base import Plan
from mesh_push.modes.evpn.plan import EvpnPlan, own
from tests.kit import GOLDEN, ROOT, plan, script


def seed_plan() -> Plan:
    keys = json.loads((GOLDEN / "seed.keys.json").read_text())
    return plan(inventory.load(ROOT / "inventory/seed.yaml"), keys)


@pytest.mark.parametrize("host", ["bob", "rho", "vorke", "epsilon", "pi0"])
def test_golden_scripts(host: str) -> None:
    text = script(seed_plan(), host)
    golden = GOLDEN / "seed" / f"{host}.sh"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("host", ["bob", "rho", "vorke", "epsilon", "pi0"])
def test_scripts_parse(host: str) -> None:
    shell = shutil.which("bash") or "sh"
    subprocess.run([shell, "-n", str(GOLDEN / "seed" / f"{host}.sh")], check=True)


def test_down_script_parses() -> None:
    p = seed_plan()
    for purge in (False, True):
        text = scripts.down_script(p.mesh, load_templates(), purge)
        subprocess.run(["bash", "-n"], input=text.encode(), check=True)


def test_script_never_holds_a_private_key_in_host_mode() -> None:
    p = seed_plan()
    for hp in p.hosts:
        text = script(p, hp.name)
        assert "PrivateKey" not in text and "MESH_PUSH_KEY" not in text
        assert "wg genkey >" in text  # made on the host, into a file


def test_render_command_writes_private_files(tmp_path: Path) -> None:
    inv = tmp_path / "seed.yaml"
    shutil.copy(ROOT / "inventory/seed.yaml", inv)
    keys = json.loads((GOLDEN / "seed.keys.json").read_text())
    (tmp_path / "seed.state.json").write_text(json.dumps({"public_keys": keys}))
    out = tmp_path / "out"
    assert cli.main(["render", "-i", str(inv), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        f"{h}.sh" for h in sorted(["bob", "rho", "vorke", "epsilon", "pi0"])
    ]
    assert out.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in out.iterdir())
    assert (out / "rho.sh").read_text() == (GOLDEN / "seed" / "rho.sh").read_text()


def test_render_without_keys_uses_stand_ins_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's `render` line on a fresh checkout: no key known yet, as `up --check`."""
    inv = tmp_path / "seed.yaml"
    shutil.copy(ROOT / "inventory/seed.yaml", inv)
    assert cli.main(["render", "-i", str(inv), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "public keys not known yet for bob, rho, vorke, epsilon, pi0" in err
    assert "stand-in keys that no host has" in err
    rho = (tmp_path / "out" / "rho.sh").read_text()
    assert keys.stand_in_key("bob") in rho and keys.stand_in_key("rho") not in rho


def _controller_inventory(tmp_path: Path) -> Path:
    text = (ROOT / "inventory/seed.yaml").read_text().replace("keys: host", "keys: controller")
    text = text.replace("mesh:\n", f"mesh:\n  keystore: {tmp_path}/keys\n", 1)
    inv = tmp_path / "seed.yaml"
    inv.write_text(text)
    return inv


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_plan_and_render_make_no_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """keys: controller: only `up` makes keys. `plan` writes nothing at all; `render` without
    keys writes its scripts with stand-in keys, and nothing else."""
    inv = _controller_inventory(tmp_path)
    before = _tree(tmp_path)
    assert cli.main(["plan", "-i", str(inv)]) == 0
    assert cli.main(["plan", "-i", str(inv), "--json"]) == 0
    assert cli.main(["render", "-i", str(inv), "-o", str(tmp_path / "out")]) == 0
    assert "stand-in keys" in capsys.readouterr().err
    seed = ["bob", "rho", "vorke", "epsilon", "pi0"]
    assert _tree(tmp_path) == sorted([*before, "out", *(f"out/{h}.sh" for h in seed)])


def test_render_in_controller_mode_holds_no_private_key(tmp_path: Path) -> None:
    inv = _controller_inventory(tmp_path)
    mesh = inventory.load(inv)
    keys.ensure_keystore(mesh)  # what `up` does first
    private = {h.name: keys.read_private_key(mesh, h.name) for h in mesh.hosts}
    public = keys.public_keys(mesh)
    out = tmp_path / "out"
    assert cli.main(["render", "-i", str(inv), "-o", str(out)]) == 0
    for h in mesh.hosts:
        text = (out / f"{h.name}.sh").read_text()
        assert all(secret not in text for secret in private.values())
        assert public[h.name] in text  # so that a new key is a new script (and digest)
        assert "MESH_PUSH_KEY" not in text and "wg genkey" not in text
    first = (out / "bob.sh").read_text()
    assert cli.main(["render", "-i", str(inv), "-o", str(out)]) == 0
    assert (out / "bob.sh").read_text() == first  # keys stay the same across runs
    keys.rotate_controller_keys(mesh, ["bob"])
    assert cli.main(["render", "-i", str(inv), "-o", str(out)]) == 0
    assert (out / "bob.sh").read_text() != first


def psk_plan() -> Plan:
    """The seed with pre-shared keys on every link but bob–epsilon; the fingerprint of
    bob–rho's key is not known (as for `mesh-push render`)."""
    import dataclasses

    p = seed_plan()
    no_psk = {"bob", "epsilon"}
    links = tuple(dataclasses.replace(lk, psk=set(lk.hosts) != no_psk) for lk in p.mesh.links)
    mesh = dataclasses.replace(p.mesh, links=links, psk=True)
    fps: dict[object, str | None] = {
        lk: keys.psk_fingerprint(f"key of {'+'.join(lk.hosts)}") for lk in links if lk.psk
    }
    fps.update({lk: None for lk in links if set(lk.hosts) == {"bob", "rho"}})
    known = {hp.name: hp.public_key for hp in p.hosts if hp.public_key}
    return plan(mesh, known, fps)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["bob", "epsilon"])
def test_golden_scripts_with_psks(host: str) -> None:
    text = script(psk_plan(), host)
    golden = GOLDEN / "seed-psk" / f"{host}.sh"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()
    subprocess.run(["bash", "-n"], input=text.encode(), check=True)


def test_scripts_name_psk_files_never_keys() -> None:
    p = psk_plan()
    for hp in p.hosts:
        text = script(p, hp.name)
        for lk in p.mesh.links:
            assert f"key of {'+'.join(lk.hosts)}" not in text
        for peer in hp.peers:
            if peer.psk:
                assert 'preshared-key "$F"' in text and f"F={p.mesh.psk_file(peer.name)}" in text


def evpn_plan() -> EvpnPlan:
    keys = json.loads((GOLDEN / "seed.keys.json").read_text())
    return own(plan(inventory.load(ROOT / "inventory/lab-evpn.yaml"), keys))


def frr_conf(host_script: str) -> str:
    """The FRR configuration an evpn host script carries (one shell word, FRR_CONF=...)."""
    start = host_script.index("\nFRR_CONF=") + len("\nFRR_CONF=")
    end = host_script.index("\nFRR_DAEMONS=", start)
    (conf,) = shlex.split(host_script[start:end])
    return conf


@pytest.mark.parametrize("host", ["bob", "rho", "vorke", "epsilon", "pi0"])
def test_golden_evpn_scripts_and_frr_configs(host: str) -> None:
    """Mode evpn: the host script and the FRR configuration it carries, pinned."""
    text = script(evpn_plan(), host)
    out = {f"{host}.sh": text, f"{host}.frr.conf": frr_conf(text)}
    for name, text in out.items():
        golden = GOLDEN / "evpn" / name
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(exist_ok=True)
            golden.write_text(text)
        assert text == golden.read_text()


def test_evpn_frr_config_follows_the_plan() -> None:
    """Route reflectors peer with everyone, clients with the two reflectors; each link
    interface has its planned OSPF cost and BFD; the VTEP is OSPF's and BGP's router id."""
    p = evpn_plan()
    u = p.underlay
    assert set(u.reflectors) == {"rho", "bob"}
    for h in p.hosts:
        hp = p.evpn_host(h.name)
        conf = frr_conf(script(p, hp.name))
        assert f"ospf router-id {hp.vtep}" in conf and f"bgp router-id {hp.vtep}" in conf
        peers = re.findall(r"^ neighbor (\S+) remote-as", conf, re.M)
        want = [str(p.evpn_host(o).vtep) for o in u.hosts if o != hp.name]
        if hp.name not in u.reflectors:
            want = [str(p.evpn_host(o).vtep) for o in u.hosts if o in u.reflectors]
        assert sorted(peers) == sorted(want), hp.name
        assert ("route-reflector-client" in conf) == (hp.name in u.reflectors)
        for end in hp.links:
            block = conf.split(f"interface {end.name}\n", 1)[1].split("exit", 1)[0]
            assert f"ip ospf cost {end.cost}" in block and "ip ospf bfd" in block
            assert f"network {end.address.network} area 0" in conf


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "line 2: access to attribute"),
        ("{{ cycler.__init__.__globals__.os.system('id') }}", "line 2: access to attribute"),
        ("{% set d = {} %}{{ d.update(a=1) }}", "line 2: access to attribute 'update'"),
        ("{{ nope", "line 2: unexpected end of template"),
        ('{% include "nothere.j2" %}', "line 2: 'nothere.j2' not found"),
    ],
)
def test_templates_of_a_directory_are_sandboxed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str, said: str
) -> None:
    """`--templates DIR` from a shared repository: its shell runs on the hosts, as meant, but
    it reaches nothing of the controller's Python; its mistakes are exit 2 with file and line,
    and nothing is written."""
    (tmp_path / "t" / "stp").mkdir(parents=True)
    (tmp_path / "t" / "stp" / "host.sh.j2").write_text(f"#!/bin/sh\n{template}\n")
    argv = ["render", "-i", str(ROOT / "inventory/lab.yaml"), "-o", str(tmp_path / "out")]
    assert cli.main([*argv, "--templates", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert f"mesh-push: template {tmp_path}/t/stp/host.sh.j2, {said}" in err, err
    assert not (tmp_path / "out").exists()
