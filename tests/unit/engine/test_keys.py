"""Pre-shared keys per link (issue 19), without a network: the inventory's fields, the
keystore (keys: controller), which key each link gets and who is given it (engine/keys.py,
with a session whose hosts are stand-ins), the judge's findings, and that the hosts'
fingerprint is the controller's."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace

import pytest

from mesh_push import inventory
from mesh_push.core.model import Link, Mesh
from mesh_push.engine import keys, ssh
from mesh_push.engine.outcome import HostReport, Outcome
from mesh_push.engine.session import Access, Progress, Session
from mesh_push.host import state as observe
from mesh_push.host.facts import Gathered
from mesh_push.modes.base import Plan
from tests import kit

INVENTORY = """\
mesh:
  name: t
  psk: true
  keys: {keys}
  keystore: {keystore}
hosts:
  bob: {{endpoint: static, address: 192.0.2.1}}
  rho: {{endpoint: static, address: 192.0.2.2}}
  vorke: {{endpoint: dynamic}}
links:
  - [bob, rho]
  - {{hosts: [bob, vorke], psk: false}}
  - [rho, vorke]
"""
KEY_A, KEY_B, KEY_NEW = (keys.generate_psk() for _ in range(3))


def load(tmp_path: Path, mode: str = "host", text: str = INVENTORY) -> Mesh:
    path = tmp_path / "t.yaml"
    path.write_text(text.format(keys=mode, keystore=tmp_path / "store"))
    return inventory.load(path)


def link(mesh: Mesh, a: str, b: str) -> Link:
    return next(lk for lk in mesh.links if set(lk.hosts) == {a, b})


def test_mesh_psk_is_every_links_default_and_a_link_opts_out(tmp_path: Path) -> None:
    mesh = load(tmp_path)
    assert mesh.psk
    assert {lk.hosts: lk.psk for lk in mesh.links} == {
        ("bob", "rho"): True,
        ("bob", "vorke"): False,
        ("rho", "vorke"): True,
    }
    off = load(tmp_path, text=INVENTORY.replace("  psk: true\n", ""))
    assert not off.psk and not any(lk.psk for lk in off.links)
    assert mesh.psk_file("rho") == "/etc/wireguard/mesh-push-t.psk/rho"
    for bad in ("", ".", "..", "a/b"):
        with pytest.raises(ValueError, match="cannot name a file"):
            mesh.psk_file(bad)


def test_the_hosts_fingerprint_is_the_controllers() -> None:
    """gather.sh.j2 and host.sh.j2 reduce a key to `fp_of`'s output: the same function."""
    fp_of = "printf 'mesh-push psk %s' \"$1\" | sha256sum | cut -c1-16"
    for key in (KEY_A, keys.generate_psk()):
        out = subprocess.run(["sh", "-c", fp_of, "sh", key], capture_output=True, text=True)
        assert out.stdout.strip() == keys.psk_fingerprint(key)
    assert len(keys.generate_psk()) == 44 and keys.generate_psk() != keys.generate_psk()


def test_keystore_holds_one_key_per_link_0600(tmp_path: Path) -> None:
    mesh = load(tmp_path, "controller")
    assert keys.controller_psks(mesh, create=False) == {}, "reading makes nothing"
    made = keys.controller_psks(mesh, create=True)
    assert set(made) == {link(mesh, "bob", "rho"), link(mesh, "rho", "vorke")}
    store = tmp_path / "store"
    assert sorted(p.name for p in store.iterdir()) == ["bob+rho.psk", "rho+vorke.psk"]
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    for p in store.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert keys.controller_psks(mesh, create=False) == made
    assert keys.controller_psks(mesh, create=True) == made, "kept, not made again"
    rotated = keys.controller_psks(mesh, create=True, rotate=[link(mesh, "bob", "rho")])
    assert rotated[link(mesh, "bob", "rho")] != made[link(mesh, "bob", "rho")]
    assert rotated[link(mesh, "rho", "vorke")] == made[link(mesh, "rho", "vorke")]
    (store / "bob+rho.psk").write_text("not a key\n")
    os.chmod(store / "bob+rho.psk", 0o600)
    with pytest.raises(keys.KeystoreError, match="not a WireGuard pre-shared key"):
        keys.controller_psks(mesh, create=False)


def gathered(files: dict[str, dict[str, str]]) -> Gathered:
    states = {h: observe.parse("") for h in ("bob", "rho", "vorke")}
    for h, f in files.items():
        states[h].psk_files = f
    return Gathered({}, states)


def test_check_plans_stand_ins_for_keys_not_made(tmp_path: Path) -> None:
    mesh = load(tmp_path)
    br, rv = link(mesh, "bob", "rho"), link(mesh, "rho", "vorke")
    fa = keys.psk_fingerprint(KEY_A)
    g = gathered({"bob": {"rho": fa}})
    everyone = session(mesh, {})
    # bob (bob–rho's first end) has its key; rho (rho–vorke's) has none yet.
    assert keys.for_check(everyone, g, (), ()).psk_fps == {br: fa, rv: keys.stand_in(rv)}
    # rotate-keys --psk bob: bob's keyed link (bob–rho) gets a new key.
    assert keys.for_check(everyone, g, (), ["bob"]).psk_fps[br] == keys.stand_in(br)
    assert keys._psks_for_check(mesh, g, ("bob", "rho", "vorke"), [br])[br] == keys.stand_in(br)
    # A first end out of reach: the other end keeps what it has, or the link waits.
    some = session(mesh, {}, ("bob", "vorke"))
    g = gathered({"vorke": {"rho": fa}})
    assert keys.for_check(some, g, (), ()).psk_fps == {br: keys.stand_in(br), rv: fa}
    assert keys.for_check(some, gathered({}), (), ()).psk_fps == {br: keys.stand_in(br)}
    assert everyone.asked == [] and some.asked == [], "--check asks no host"


@dataclasses.dataclass
class FakeSession(Session):
    """A Session whose hosts are stand-ins: each host's program answers with `answers[host]`
    (or fails, as a lost connection), and every command asked is recorded."""

    answers: dict[str, str] = dataclasses.field(default_factory=dict)
    asked: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def run(
        self, name: str, command: str, stdin: str | None = None, timeout: float = 300
    ) -> ssh.Result:
        self.asked.append((name, command))
        if name not in self.answers:
            raise ssh.SshError(f"{name}: connection lost")
        return ssh.Result(command, 0, self.answers[name], "", 0.0)


def session(mesh: Mesh, answers: dict[str, str], hosts: tuple[str, ...] = ()) -> FakeSession:
    names = hosts or tuple(h.name for h in mesh.hosts)
    return FakeSession(
        mesh,
        Access(),
        conns={n: object() for n in names},  # type: ignore[arg-type]
        reports={h.name: HostReport(h.name) for h in mesh.hosts},
        answers=answers,
    )


def nothing(_host: str, _message: str) -> None:
    pass


def for_up(
    s: FakeSession, g: Gathered, rotate_psk: Collection[str] = (), progress: Progress = nothing
) -> keys.Keys:
    """Stage Keys of `up` (`rotate_psk`: rotate-keys --psk of those hosts)."""
    return keys.for_up(s, g, (), rotate_psk, progress)


def test_first_ends_make_keys_and_each_end_that_lacks_one_is_given_it(tmp_path: Path) -> None:
    mesh = load(tmp_path)
    br, rv = link(mesh, "bob", "rho"), link(mesh, "rho", "vorke")
    fa = keys.psk_fingerprint(KEY_A)
    # bob–rho: bob has its key, rho another; rho–vorke: rho has none yet (it makes one).
    g = gathered({"bob": {"rho": fa}, "rho": {"bob": "0" * 16}})
    s = session(mesh, {"bob": f"rho {KEY_A}\n", "rho": f"vorke {KEY_NEW}\nnoise {KEY_B}\n"})
    got = for_up(s, g)
    assert got.psk_fps == {br: fa, rv: keys.psk_fingerprint(KEY_NEW)}
    assert got.deliveries == {"rho": {"bob": KEY_A, "vorke": KEY_NEW}, "vorke": {"rho": KEY_NEW}}
    assert KEY_A not in repr(got) and KEY_NEW not in repr(got)
    commands = dict(s.asked)
    assert "wg genpsk" in commands["rho"] and "wg genpsk" not in commands["bob"]
    assert all(k not in cmd for cmd in commands.values() for k in (KEY_A, KEY_NEW))
    # Everything in place: nothing asked, nothing given.
    fn = keys.psk_fingerprint(KEY_NEW)
    g = gathered({"bob": {"rho": fa}, "rho": {"bob": fa, "vorke": fn}, "vorke": {"rho": fn}})
    s = session(mesh, {})
    got = for_up(s, g)
    assert got.deliveries == {} and s.asked == [] and got.psk_fps == {br: fa, rv: fn}
    # A rotation (rotate-keys --psk bob: bob–rho) makes new keys even where they are in place.
    s = session(mesh, {"bob": f"rho {KEY_B}\n"})
    got = for_up(s, g, ["bob"])
    assert got.deliveries == {"bob": {"rho": KEY_B}, "rho": {"bob": KEY_B}}


def test_a_first_end_that_cannot_answer_fails_alone(tmp_path: Path) -> None:
    mesh = load(tmp_path)
    g = gathered({})
    said: list[str] = []
    s = session(mesh, {"rho": f"vorke {KEY_NEW}\n"})
    got = for_up(s, g, progress=lambda _n, why: said.append(why))
    assert s.reports["bob"].outcome is Outcome.FAILED
    assert s.reports["bob"].failure is not None
    assert s.reports["bob"].failure.step == "pre-shared keys"
    assert "bob" not in s.conns and said == ["failed: bob: connection lost"]
    assert set(got.deliveries) == {"rho", "vorke"}
    # A line that is not a key is never taken for one (and never repeated).
    s = session(mesh, {"bob": "rho not-a-key\n", "rho": f"vorke {KEY_NEW}\n"})
    for_up(s, g)
    assert s.reports["bob"].outcome is Outcome.FAILED
    assert "not-a-key" not in str(s.reports["bob"].failure)


def test_controller_keys_come_from_the_keystore(tmp_path: Path) -> None:
    mesh = load(tmp_path, "controller")
    s = session(mesh, {})
    got = for_up(s, gathered({}))
    stored = keys.controller_psks(mesh, create=False)
    assert s.asked == [], "no host is asked for a key"
    br = link(mesh, "bob", "rho")
    assert got.psk_fps[br] == keys.psk_fingerprint(stored[br])
    assert got.deliveries["bob"] == {"rho": stored[br]}


def state(p: Plan, host: str, psks: dict[str, str]) -> observe.HostState:
    """A host with its peers configured as planned, and `wg`'s keys as `psks` says."""
    st = kit.state("", p.mesh)
    hp = p.host(host)
    for iface in hp.wg:
        # The interface is there as planned: its peers are judged only then.
        st.links[iface.name] = observe.Link(
            iface.name, True, p.mesh.mtu.wireguard, "wireguard", addresses=[str(iface.address)]
        )
        planned = {str(pe.public_key): pe.allowed_ips_text for pe in iface.peers}
        st.wg[iface.name] = observe.WgIf(
            public_key=hp.public_key or "",
            allowed_ips=planned,
            psks={k: v for k, v in psks.items() if k in planned},
        )
    assert {k for w in st.wg.values() for k in w.psks} == set(psks)
    return st


def test_judge_says_which_peer_lacks_its_key_and_when_the_ends_differ(tmp_path: Path) -> None:
    mesh = load(tmp_path)
    pub = {"bob": KEY_A, "rho": KEY_B, "vorke": KEY_NEW}
    br = link(mesh, "bob", "rho")
    fa = keys.psk_fingerprint(KEY_A)
    p = kit.plan(mesh, pub, {br: fa, link(mesh, "rho", "vorke"): None})
    states = {
        "bob": state(p, "bob", {KEY_B: fa, KEY_NEW: "none"}),
        "rho": state(p, "rho", {KEY_A: "1" * 16, KEY_NEW: "none"}),
        "vorke": state(p, "vorke", {KEY_A: fa, KEY_B: "none"}),
    }
    j = kit.judge(p, states)
    assert "peer bob has another pre-shared key than the planned one" in j.hosts["rho"].drift
    assert "peer vorke has no pre-shared key" in j.hosts["rho"].drift
    assert "peer bob has a pre-shared key, none planned" in j.hosts["vorke"].drift
    assert not any("pre-shared" in d for d in j.hosts["bob"].drift)
    wires = {tuple(w["hosts"]): w for w in j.wires}
    assert "the ends have different pre-shared keys" in " ".join(wires[("bob", "rho")]["problems"])
    assert "pre-shared key at vorke only" in " ".join(wires[("bob", "vorke")]["problems"])
    assert wires[("bob", "rho")]["ends"]["bob"]["preshared_key"] is True
    assert wires[("rho", "vorke")]["ends"]["rho"]["preshared_key"] is False
    # Without fingerprints (status), only whether a key is set, and the two ends, count.
    j = kit.judge(kit.plan(mesh, pub), states)
    assert not any("another pre-shared key" in d for d in j.hosts["rho"].drift)


def test_metrics_say_whether_a_key_is_set_never_which(tmp_path: Path) -> None:
    from mesh_push.monitoring import metrics

    mesh = load(tmp_path)
    pub = {"bob": KEY_A, "rho": KEY_B, "vorke": KEY_NEW}
    p = kit.plan(mesh, pub)
    fa = keys.psk_fingerprint(KEY_A)
    states = {"bob": state(p, "bob", {KEY_B: fa, KEY_NEW: "none"})}
    snap = metrics.Snapshot(p, kit.judge(p, states), 0.1, 1.0)
    fam = next(f for f in metrics.families(snap) if f.name == "mesh_push_peer_preshared_key")
    got = {(x.labels["host"], x.labels["peer"]): x.value for x in fam.samples}
    assert got == {("bob", "rho"): 1.0, ("bob", "vorke"): 0.0}
    assert fa not in str(metrics.families(snap))


def test_gather_sections_parse_to_fingerprints() -> None:
    text = (
        "=== wg-all-preshared-keys\nwg0\tPUB1\tnone\nwg0\tPUB2\t0123456789abcdef\n"
        "wg0-7\tPUB3\tfedcba9876543210\n"
        "=== psk-files\nrho\t0123456789abcdef\n=== end\n"
    )
    st = observe.parse(text)
    assert st.wg["wg0"].psks == {"PUB1": "none", "PUB2": "0123456789abcdef"}
    assert st.wg["wg0-7"].psks == {"PUB3": "fedcba9876543210"}
    assert st.psk_files == {"rho": "0123456789abcdef"}


def test_rotate_keys_psk_refuses_hosts_without_keyed_links(tmp_path: Path) -> None:
    from mesh_push.cli import handlers
    from mesh_push.core.problems import UsageError

    path = tmp_path / "t.yaml"
    path.write_text(INVENTORY.format(keys="host", keystore=tmp_path / "s").replace("psk: true", ""))
    with pytest.raises(UsageError, match="no link of bob has a pre-shared key"):
        handlers.rotate_keys(SimpleNamespace(inventory=str(path), hosts=["bob"], psk=True))
