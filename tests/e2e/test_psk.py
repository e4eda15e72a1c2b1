"""Pre-shared keys per link (issue 19) on a three-host lab (`keys: host`), in both modes (issue
26), each on a lab of its own: every link gets its own key, made on the link's first end and
carried to the other only through the controller's memory, and installed on the link's
interface (stp: the one wg0; evpn: the link's own, WG-VNI); a peer given a wrong key by hand
fails its handshake and `status` says so at once; `rotate-keys --psk` replaces the keys of
one host's links; `psk: false` takes a link's key off both ends. No key ever shows on a
command line, in output, in `--json`, in a file the controller writes or in a script kept on
a host (evpn: nor in its FRR files). Needs root; under CI=true it must run."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import (
    MODES,
    End,
    Pings,
    in_mode,
    lab_exec,
    lab_up,
    link_ends,
    mesh_push,
    sample_cmdlines,
)

# Each mode's lab and network (/23s checked unused on this machine before they were chosen).
LABS = {"stp": labs.lab("mpp"), "evpn": labs.lab("mppev")}
assert set(LABS) == set(MODES)
PSK_DIR = "/etc/wireguard/mesh-push-psk.psk"
STATE = "/var/lib/mesh-push/psk"
HOSTS = ("bob", "rho", "vorke")
LINKS = (("bob", "rho"), ("bob", "vorke"), ("rho", "vorke"))

INVENTORY = """\
mesh:
  name: psk
  wireguard: {{interface: wg0, port: 56560, network: 10.88.88.0/24}}
  bridge: {{name: internet, network: 10.99.99.0/24}}
  stp: {{hello: 1, forward_delay: 4, max_age: 6, ageing: 2}}
  psk: true
lab:
  name: {lab}
  network: {net}.0/23
hosts:
  bob:   {{number: 1, endpoint: static, address: {net}.11}}
  rho:   {{number: 2, endpoint: static, address: {net}.12}}
  vorke: {{number: 3, endpoint: dynamic}}
links:
  - {{hosts: [bob, rho], vni: 1}}
  - {{hosts: [bob, vorke], vni: 2}}
  - {{hosts: [rho, vorke], vni: 3}}
"""

pytestmark = pytest.mark.lab


@dataclass
class Lab:
    mode: str
    name: str
    net: str
    inventory: Path
    tmp: Path
    ends: dict[tuple[str, str], End]  # (host, peer) → its end of their link, as planned
    frr: list[str]  # evpn: the directory of the mesh's FRR instance on each host
    outputs: list[str]  # every output of mesh-push on this lab: no key may be in one

    def exec(self, host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return lab_exec(self.name, host, *cmd)


@pytest.fixture(scope="module", params=MODES)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_root()
    mode = request.param
    name, net = LABS[mode]
    tmp = tmp_path_factory.mktemp(f"psk-{mode}")
    inv = tmp / "psk.yaml"
    inv.write_text(in_mode(INVENTORY.format(lab=name, net=net), mode))
    evpn = json.loads(mesh_push("plan", "-i", str(inv), "--json", check=True).stdout)["evpn"]
    frr = [] if evpn is None else [f"/etc/frr/{evpn['frr_pathspace']}"]
    with lab_up(name, inv):
        yield Lab(mode, name, net, inv, tmp, link_ends(inv), frr, [])


def run(lab: Lab, *args: str, inv: Path | None = None) -> tuple[int, str]:
    res = mesh_push(*args, "-i", str(inv or lab.inventory))
    assert "Traceback" not in res.stderr, res.stderr
    lab.outputs.append(res.stdout + res.stderr)
    return res.returncode, res.stdout


def up_watched(lab: Lab, inv: Path) -> tuple[int, str, set[str]]:
    """`up --yes --json`, with every process's command line sampled meanwhile."""
    seen: set[str] = set()
    stop = threading.Event()
    sampler = threading.Thread(target=sample_cmdlines, args=(stop, seen), daemon=True)
    sampler.start()
    try:
        code, out = run(lab, "up", "--yes", "--json", inv=inv)
    finally:
        stop.set()
        sampler.join()
    return code, out, seen


def pubkeys(lab: Lab) -> dict[str, str]:
    """Each host's public key: the same on each of its WireGuard interfaces (evpn: one a link)."""
    out = {}
    for h in HOSTS:
        lines = lab.exec(h, "wg", "show", "all", "public-key").stdout.splitlines()
        ifaces = {line.split("\t")[0] for line in lines}
        assert ifaces == {e.interface for (a, _), e in lab.ends.items() if a == h}, (h, lines)
        (out[h],) = {line.split("\t")[1] for line in lines}
    return out


def psks(lab: Lab) -> dict[tuple[str, str], str]:
    """What `wg` uses on each host with each peer: (host, peer) → key or `(none)`, each on
    the interface of their link."""
    names = {v: k for k, v in pubkeys(lab).items()}
    out = {}
    for h in HOSTS:
        for line in lab.exec(h, "wg", "show", "all", "preshared-keys").stdout.splitlines():
            iface, pub, key = line.split("\t")
            peer = names[pub]
            assert (h, peer) not in out and iface == lab.ends[(h, peer)].interface, (h, line)
            out[(h, peer)] = key
    assert set(out) == set(lab.ends)
    return out


def status(lab: Lab, inv: Path | None = None) -> tuple[int, dict[str, Any]]:
    code, out = run(lab, "status", "--json", inv=inv)
    st = json.loads(out)
    assert st.get("mode", "stp") == lab.mode
    return code, st


def sick(st: dict[str, Any]) -> dict[str, Any]:
    """What an unhealthy status says, for an assertion's message: each host's reasons and
    each link's problems (the whole document is cut short in pytest's report)."""
    return {
        "mesh": st.get("reasons"),
        **{h["name"]: h["reasons"] for h in st.get("hosts", []) if h.get("reasons")},
        **{"–".join(w["hosts"]): w["problems"] for w in st.get("wires", st.get("links", []))
           if w.get("problems")},
    }  # fmt: skip


def judged_links(lab: Lab, st: dict[str, Any]) -> list[dict[str, Any]]:
    """The status's links as the judge saw them: stp `wires`, evpn `links` (the same fields:
    `hosts`, `ends` with `preshared_key` and `handshake_age_s`, `problems`)."""
    key, other = ("wires", "links") if lab.mode == "stp" else ("links", "wires")
    assert other not in st, st.keys()
    links: list[dict[str, Any]] = st[key]
    assert {tuple(sorted(w["hosts"])) for w in links} == set(LINKS)
    return links


def no_key_anywhere(lab: Lab, keys: set[str], cmdlines: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    keys = {k for k in keys if k != "(none)"}
    assert keys
    for key in keys:
        assert not any(key in text for text in lab.outputs), "a key in mesh-push's output"
        assert not any(key in line for line in cmdlines), "a key on a command line"
        # (keys: controller: the keystore is where they belong; nowhere else on the controller.)
        for path in lab.tmp.rglob("*"):
            if path.is_file() and "keystore" not in path.parts:
                assert key not in path.read_text(errors="replace"), path
    kept = [STATE, "/etc/systemd/system", *lab.frr]
    for h in HOSTS:
        for key in keys:
            found = lab.exec(h, "grep", "-rlF", "--", key, *kept)
            assert found.returncode == 1 and found.stdout == "", (h, found.stdout)


def test_every_link_handshakes_with_its_own_key(lab: Lab) -> None:
    code, out, seen = up_watched(lab, lab.inventory)
    assert code == 0, out
    keys = psks(lab)
    for a, b in LINKS:
        assert keys[(a, b)] == keys[(b, a)] != "(none)", (a, b)
    assert len({keys[link] for link in LINKS}) == 3, "one key per link"
    for h in HOSTS:
        listing = lab.exec(h, "sh", "-c", f"stat -c '%a %n' {PSK_DIR} {PSK_DIR}/*").stdout
        peers = sorted(p for p in HOSTS if p != h)
        assert listing.split("\n")[0] == f"700 {PSK_DIR}"
        assert sorted(listing.split()[3::2]) == [f"{PSK_DIR}/{p}" for p in peers]
        assert set(listing.split()[2::2]) == {"600"}
    code, st = status(lab)
    assert code == 0, sick(st)
    for w in judged_links(lab, st):
        assert set(w["ends"]) == set(w["hosts"]), w
        for end in w["ends"].values():
            assert end["preshared_key"] is True and end["handshake_age_s"] is not None, w
    no_key_anywhere(lab, set(keys.values()), seen)
    # The links' keys were made on their first ends; nothing to make or send a second time.
    code, out = run(lab, "up", "--yes", "--json")
    assert code == 0 and psks(lab) == keys
    assert all(h["status"] == "unchanged" for h in json.loads(out)["hosts"]), out


def test_a_wrong_key_fails_the_handshake_and_status_says_so(lab: Lab) -> None:
    pub = pubkeys(lab)
    # Behind mesh-push's back: vorke forgets bob and takes it back with another key, so that
    # it has no session with bob and must make a new handshake, which fails. Everything else
    # as planned (stp: wg0, allowed-ips 10.88.88.1/32, endpoint bob:56560; evpn: wg0-2,
    # allowed-ips 0.0.0.0/0, endpoint bob:56562).
    end = lab.ends[("vorke", "bob")]
    assert end.endpoint == f"{lab.net}.11:{end.port}" and end.keepalive == 25, end
    wrong = (
        "umask 077; wg genpsk > /tmp/wrong.psk; wg set {wg} peer {bob} remove; "
        "wg set {wg} peer {bob} allowed-ips {allowed} endpoint {endpoint} "
        "persistent-keepalive {keepalive} preshared-key /tmp/wrong.psk; rm /tmp/wrong.psk"
    ).format(
        wg=end.interface,
        bob=pub["bob"],
        allowed=end.allowed_ips,
        endpoint=end.endpoint,
        keepalive=end.keepalive,
    )
    assert lab.exec("vorke", "sh", "-c", wrong).returncode == 0
    lab.exec("vorke", "ping", "-c", "6", "-i", "0.5", "-W", "1", end.peer_address)
    shakes = lab.exec("vorke", "wg", "show", end.interface, "latest-handshakes").stdout
    assert f"{pub['bob']}\t0" in shakes, shakes
    code, st = status(lab)
    assert code == 1
    wire = next(w for w in judged_links(lab, st) if set(w["hosts"]) == {"bob", "vorke"})
    assert "the ends have different pre-shared keys" in " ".join(wire["problems"]), wire
    assert wire["ends"]["vorke"]["preshared_key"] is True
    # up sees vorke's key is not the planned one and puts it right.
    code, out = run(lab, "up", "--yes", "--json")
    assert code == 0, out
    vorke = next(h for h in json.loads(out)["hosts"] if h["name"] == "vorke")
    assert f"{end.interface} peer bob preshared-key" in vorke["changes"], vorke
    keys = psks(lab)
    assert keys[("vorke", "bob")] == keys[("bob", "vorke")]
    no_key_anywhere(lab, set(keys.values()))


def test_rotation_replaces_the_keys_of_one_hosts_links(lab: Lab) -> None:
    before = psks(lab)
    code, _ = run(lab, "rotate-keys", "--psk", "vorke", "--check", "--json")
    assert code == 3 and psks(lab) == before, "--check changes nothing"
    # Under a 20 ms ping from vorke to each host's bridge: the sessions in use outlive a
    # pre-shared key's change (it takes part only in the next handshake).
    others = {h: f"10.99.99.{n}" for n, h in enumerate(HOSTS, 1) if h != "vorke"}
    pings = Pings(lab.name, {("vorke", h): ip for h, ip in others.items()})
    code, out = run(lab, "rotate-keys", "--psk", "vorke", "--yes", "--json")
    lost = pings.stop()
    assert code == 0, out
    print(f"\n{lab.name}: lost echoes per pair during rotate-keys --psk vorke: {lost}")
    assert all(n <= 1 for n in lost.values()), lost
    after = psks(lab)
    for a, b in LINKS:
        assert after[(a, b)] == after[(b, a)] != "(none)"
        changed = after[(a, b)] != before[(a, b)]
        assert changed == ("vorke" in (a, b)), (a, b)
    code, st = status(lab)
    assert code == 0, sick(st)
    # Across the bridge after the rotation: the wires over the new keys carry traffic.
    assert lab.exec("vorke", "ping", "-c", "1", "-W", "3", "10.99.99.1").returncode == 0
    no_key_anywhere(lab, set(before.values()) | set(after.values()))


def test_keys_past_an_age_are_rotated_exactly(lab: Lab) -> None:
    """Key age (issue 33): `status` tells each key pair's and pre-shared key's age, and
    `rotate-keys --older-than` rotates exactly those past it: here rho's key pair and the
    bob–vorke link's key, made 100 days old by their files' times."""
    code, st = status(lab)
    assert code == 0, sick(st)
    ages = {h["name"]: h["key_age_s"] for h in st["hosts"]}
    assert all(a is not None and a < 86400 for a in ages.values()), ages
    code, out = run(lab, "rotate-keys", "--older-than", "90d", "--yes", "--json")
    assert code == 0 and json.loads(out) == {"ok": True, "rotated": []}, out
    keys, links = pubkeys(lab), psks(lab)
    lab.exec("rho", "touch", "-d", "100 days ago", "/etc/wireguard/mesh-push-psk.key")
    lab.exec("vorke", "touch", "-d", "100 days ago", "/etc/wireguard/mesh-push-psk.psk/bob")
    code, st = status(lab)
    rho = next(h for h in st["hosts"] if h["name"] == "rho")
    assert rho["key_age_s"] > 99 * 86400, rho
    code, out = run(lab, "rotate-keys", "--older-than", "90d", "--yes", "--json")
    assert code == 0, out
    now = pubkeys(lab)
    assert [h for h in HOSTS if now[h] != keys[h]] == ["rho"], (keys, now)
    code, out = run(lab, "rotate-keys", "--older-than", "90d", "--psk", "--yes", "--json")
    assert code == 0, out
    after = psks(lab)
    changed = {tuple(sorted(k)) for k in after if after[k] != links[k]}
    assert changed == {("bob", "vorke")}, changed
    code, st = status(lab)
    assert code == 0, sick(st)


def test_psk_false_removes_the_key_on_both_ends(lab: Lab) -> None:
    inv = lab.tmp / "no-psk.yaml"
    inv.write_text(
        lab.inventory.read_text().replace(
            "{hosts: [bob, vorke], vni: 2}", "{hosts: [bob, vorke], vni: 2, psk: false}"
        )
    )
    wg = lab.ends[("bob", "vorke")].interface
    before = psks(lab)
    code, out = run(lab, "up", "--check", "--json", inv=inv)
    assert code == 3 and psks(lab) == before, "--check changes nothing"
    bob = next(h for h in json.loads(out)["hosts"] if h["name"] == "bob")
    assert f"{wg} peer vorke preshared-key removed" in bob["changes"], bob
    code, out = run(lab, "up", "--yes", "--json", inv=inv)
    assert code == 0, out
    bob = next(h for h in json.loads(out)["hosts"] if h["name"] == "bob")
    assert f"{wg} peer vorke preshared-key removed" in bob["changes"], bob
    keys = psks(lab)
    assert keys[("bob", "vorke")] == keys[("vorke", "bob")] == "(none)"
    assert keys[("bob", "rho")] != "(none)" and keys[("rho", "vorke")] != "(none)"
    for host, peer in (("bob", "vorke"), ("vorke", "bob")):
        gone = lab.exec(host, "test", "-e", f"{PSK_DIR}/{peer}")
        assert gone.returncode == 1, f"{host} still keeps its key for {peer}"
    deadline = time.monotonic() + 20
    while (result := status(lab, inv))[0] != 0 and time.monotonic() < deadline:
        time.sleep(1)
    code, st = result
    assert code == 0, sick(st)
    wire = next(w for w in judged_links(lab, st) if set(w["hosts"]) == {"bob", "vorke"})
    assert [e["preshared_key"] for e in wire["ends"].values()] == [False, False]


def test_controller_keys_come_from_the_keystore(lab: Lab) -> None:
    keystore = lab.tmp / "keystore"
    inv = lab.tmp / "controller.yaml"
    inv.write_text(
        lab.inventory.read_text().replace(
            "  psk: true\n", f"  psk: true\n  keys: controller\n  keystore: {keystore}\n"
        )
    )
    code, out, seen = up_watched(lab, inv)
    assert code == 0, out
    stored = {
        tuple(p.name.removesuffix(".psk").split("+")): p.read_text().strip()
        for p in keystore.glob("*.psk")
    }
    assert set(stored) == set(LINKS)
    assert {oct(p.stat().st_mode & 0o777) for p in keystore.glob("*.psk")} == {"0o600"}
    keys = psks(lab)
    for (a, b), key in stored.items():
        assert keys[(a, b)] == keys[(b, a)] == key
    code, st = status(lab, inv)
    assert code == 0, sick(st)
    no_key_anywhere(lab, set(stored.values()), seen)
