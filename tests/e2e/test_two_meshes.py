"""Each mesh owns only what it made (issue 14), on the lab: two meshes on the same hosts, each
with its own name, WireGuard interface, port and networks, bridge and VXLAN port. Both come
up and stay healthy through a reboot (each has its own boot unit); `rotate-keys` and `down`
of one leave the other's interfaces (same ifindex), peers, key file and boot unit as they
were, and it stays healthy. Then a WireGuard interface someone else made, named like a third
mesh's, makes that mesh's `up` fail on its host with an error that names it, and the
interface is left exactly as it was (ifindex, key, port), by `up` and by `down`.

Wires are named after the host at their other end, so two meshes can both have a wire to the
same peer on one host only if one of them prefixes its wires (mesh.stp.wire_prefix; without,
the second is refused, as any interface another mesh made). `alpha` has bob–rho and rho–pi0,
`beta` (wires `b-PEER`) bob–rho too, and pi0–bob, which `gamma` also has, unprefixed.

Needs root; under CI=true it must run."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mesh_push.lab.ops import exec_argv
from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import lab_exec, lab_up, mesh_push

LAB, NET = labs.lab("mpm")  # tests/labs.py: this module's own
HOSTS = ["bob", "rho", "pi0"]
FOREIGN = "wg9"  # made by "someone else" on bob, and the name gamma wants


@dataclass(frozen=True)
class Mesh:
    name: str
    wg: str
    port: int
    wg_net: str
    bridge: str
    br_net: str
    vxlan_port: int
    links: tuple[tuple[str, str], ...]
    prefix: str = ""
    domain: str = ""  # mesh.names

    @property
    def hosts(self) -> list[str]:
        return [h for h in HOSTS if any(h in lk for lk in self.links)]

    def wires(self, host: str) -> list[str]:
        return sorted(
            self.prefix + (b if a == host else a) for a, b in self.links if host in (a, b)
        )

    def interfaces(self, host: str) -> list[str]:
        return [self.wg, self.bridge, *self.wires(host)]

    @property
    def key(self) -> str:
        return f"/etc/wireguard/mesh-push-{self.name}.key"

    @property
    def unit(self) -> str:
        return f"/etc/systemd/system/mesh-push-{self.name}.service"

    @property
    def wants(self) -> str:
        return f"/etc/systemd/system/multi-user.target.wants/mesh-push-{self.name}.service"

    @property
    def state(self) -> str:
        return f"/var/lib/mesh-push/{self.name}"

    def write(self, directory: Path) -> Path:
        hosts = {
            "bob": f"{{endpoint: static, address: {NET}.11}}",
            "rho": f"{{endpoint: static, address: {NET}.12}}",
            "pi0": "{endpoint: nat}",
        }
        path = directory / f"{self.name}.yaml"
        path.write_text(
            f"""
mesh:
  name: {self.name}
  wireguard: {{interface: {self.wg}, port: {self.port}, network: {self.wg_net}}}
  bridge: {{name: {self.bridge}, network: {self.br_net}}}
  vxlan_port: {self.vxlan_port}
  {f"names: {{domain: {self.domain}}}" if self.domain else ""}
  stp: {{hello: 1, forward_delay: 4, max_age: 6, ageing: 2, wire_prefix: "{self.prefix}"}}
lab: {{name: {LAB}, network: {NET}.0/23}}
hosts:
"""
            + "".join(f"  {h}: {hosts[h]}\n" for h in self.hosts)
            + "links:\n"
            + "".join(f"  - [{a}, {b}]\n" for a, b in self.links)
        )
        return path


ALPHA = Mesh("alpha", "wg0", 56560, "10.88.88.0/24", "internet", "10.99.99.0/24", 4789,
             (("bob", "rho"), ("rho", "pi0")), domain="alpha.test")  # fmt: skip
BETA = Mesh("beta", "wg1", 56561, "10.77.77.0/24", "br-beta", "10.66.66.0/24", 4790,
            (("pi0", "bob"), ("bob", "rho")), "b-", "beta.test")  # fmt: skip
GAMMA = Mesh("gamma", FOREIGN, 56569, "10.55.55.0/24", "br-gamma", "10.44.44.0/24", 4791,
             (("pi0", "bob"),))  # fmt: skip


def run(mesh: Mesh, inv: Path, *args: str) -> tuple[int, dict[str, Any]]:
    res = mesh_push(*args, "-i", str(inv), "--json")
    assert "Traceback" not in res.stderr, res.stderr
    try:
        data: dict[str, Any] = json.loads(res.stdout)
    except ValueError:
        raise AssertionError(f"{mesh.name} {args}: {res.stdout}\n{res.stderr}") from None
    return res.returncode, data


def ok(mesh: Mesh, inv: Path, *args: str) -> dict[str, Any]:
    code, data = run(mesh, inv, *args)
    assert code == 0 and data.get("ok", data.get("healthy")), (mesh.name, args, data)
    return data


def sh(host: str, script: str) -> str:
    res = lab_exec(LAB, host, "sh", "-c", script)
    assert res.returncode == 0, (host, script, res.stdout, res.stderr)
    return res.stdout


def healthy(mesh: Mesh, inv: Path, within: float = 60) -> None:
    """status says healthy (STP and handshakes may need a moment after a reboot)."""
    deadline = time.monotonic() + within
    while True:
        code, data = run(mesh, inv, "status")
        if code == 0 and data["healthy"]:
            return
        if time.monotonic() > deadline:
            reasons = {h["name"]: h["reasons"] for h in data["hosts"]}
            raise AssertionError(f"{mesh.name} not healthy: {data['reasons']} {reasons}")
        time.sleep(2)


def links(host: str) -> dict[str, tuple[int, str]]:
    """name → (ifindex, ifalias) on a host."""
    out = json.loads(sh(host, "ip -j link show"))
    return {x["ifname"]: (x["ifindex"], x.get("ifalias", "")) for x in out}


def snapshot(mesh: Mesh) -> dict[str, Any]:
    """Everything of `mesh` on its hosts that another mesh must never touch."""
    out: dict[str, Any] = {}
    for h in mesh.hosts:
        have = links(h)
        wg = mesh.wg
        out[h] = {
            "links": {n: have.get(n) for n in mesh.interfaces(h)},
            # (wireguard-go lists peers in no fixed order)
            "wg": sh(
                h, f"wg show {wg} public-key; wg show {wg} listen-port; wg show {wg} peers | sort"
            ),
            "key": sh(h, f"sha256sum {mesh.key}"),
            "boot": sh(h, f"cat {mesh.unit}; readlink {mesh.wants}"),
        }
        assert {alias for _, alias in out[h]["links"].values()} == {f"mesh-push:{mesh.name}"}, (
            h,
            out[h]["links"],
        )
    return out


@dataclass
class Lab:
    dir: Path
    inv: dict[str, Path]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    require_root()
    start = time.monotonic()
    d = tmp_path_factory.mktemp("two-meshes")
    inv = {m.name: m.write(d) for m in (ALPHA, BETA, GAMMA)}
    try:
        with lab_up(LAB, inv["alpha"]):
            yield Lab(d, inv)
    finally:
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\ntests/e2e/test_two_meshes.py: {time.monotonic() - start:.1f} s in all")


def block(mesh: Mesh, host: str) -> str:
    """`mesh`'s names in `host`'s /etc/hosts (modes/names.py), its first and last lines too."""
    mark = f"mesh-push:{mesh.name} names"
    return sh(host, f"sed -n '/^# BEGIN {mark}/,/^# END {mark}$/p' /etc/hosts")


NSD_CONF = """\
server:
  ip-address: 127.0.0.1
  port: 53
  username: ""
  chroot: ""
  zonesdir: "{d}"
  pidfile: "{d}/nsd.pid"
  database: ""
  zonelistfile: "{d}/zone.list"
  xfrdfile: "{d}/xfrd.state"
  xfrdir: "{d}"
  logfile: "{d}/nsd.log"
remote-control:
  control-enable: no
zone:
  name: {forward}
  zonefile: forward.zone
zone:
  name: {reverse}
  zonefile: reverse.zone
"""


def served_by_nsd(lab: Lab, inv: Path) -> None:
    """`plan --zone` and `--zone reverse` loaded into Debian's nsd, run on bob's loopback with
    a configuration of its own: every name and every address of alpha resolves through it."""
    d = lab.dir / "nsd"
    d.mkdir()
    zones = {}
    for kind in ("forward", "reverse"):
        text = mesh_push("plan", "-i", str(inv), "--zone", kind, check=True).stdout
        (d / f"{kind}.zone").write_text(text)
        zones[kind] = next(ln.split()[1] for ln in text.splitlines() if ln.startswith("$ORIGIN"))
    conf = d / "nsd.conf"
    conf.write_text(NSD_CONF.format(d=d, **zones))
    nsd = subprocess.Popen(exec_argv(LAB, "bob", ["nsd", "-d", "-c", str(conf)]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        want = {h: sh("bob", f"getent hosts {h}.{ALPHA.domain}").split()[0] for h in ALPHA.hosts}

        def dig(*q: str) -> str:
            return sh("bob", "dig +short +time=1 +tries=1 @127.0.0.1 " + " ".join(q)).strip()

        deadline = time.monotonic() + 20
        while (
            lab_exec(LAB, "bob", "dig", "+short", "@127.0.0.1", "SOA", zones["forward"]).stdout
            == ""
        ):
            log = (d / "nsd.log").read_text() if (d / "nsd.log").exists() else ""
            assert nsd.poll() is None and time.monotonic() < deadline, log
            time.sleep(0.5)
        for h, address in want.items():
            assert dig(f"{h}.{ALPHA.domain}", "A") == address, h
            assert dig("-x", address) == f"{h}.{ALPHA.domain}.", h
    finally:
        nsd.terminate()  # by its pid: the server this test started
        nsd.wait(10)


def test_two_meshes_on_the_same_hosts(lab: Lab) -> None:
    alpha, beta, gamma = lab.inv["alpha"], lab.inv["beta"], lab.inv["gamma"]
    etc_hosts = {h: sh(h, "cat /etc/hosts") for h in HOSTS}
    up_alpha = ok(ALPHA, alpha, "up", "--yes")
    up_beta = ok(BETA, beta, "up", "--yes")
    assert {h["name"] for h in up_alpha["hosts"]} == set(ALPHA.hosts)
    statuses = {h["name"]: h["status"] for h in up_beta["hosts"]}
    assert statuses == dict.fromkeys(BETA.hosts, "changed")
    healthy(ALPHA, alpha, 0)
    healthy(BETA, beta, 0)
    for m in (ALPHA, BETA):
        snapshot(m)  # each one's interfaces carry its own mark
    # The same link in both meshes: a wire to rho on bob in each.
    assert {"rho", "b-rho"} <= set(links("bob")) and {"bob", "b-bob"} <= set(links("rho"))
    for h in ("bob", "rho", "pi0"):
        units = sh(h, "ls /etc/systemd/system/multi-user.target.wants").split()
        assert units == ["mesh-push-alpha.service", "mesh-push-beta.service"], (h, units)

    # Names (mesh.names, issue 31): each mesh its own block in every host's /etc/hosts, the
    # rest of the file as it was; every name resolves, and a ping by name crosses the mesh.
    for h in HOSTS:
        blocks = block(ALPHA, h) + block(BETA, h)
        assert sh(h, "cat /etc/hosts") == etc_hosts[h] + blocks, h
        for m in (ALPHA, BETA):
            for other in m.hosts:
                got = sh(h, f"getent hosts {other}.{m.domain}").split()
                assert got[1:] == [f"{other}.{m.domain}", other], (h, got)
                assert got[0].startswith(m.br_net.rsplit(".", 2)[0] + "."), (h, got)
    sh("pi0", "ping -c 1 -W 2 bob.alpha.test && ping -c 1 -W 2 rho.beta.test")
    served_by_nsd(lab, alpha)
    # A block that is gone is drift: said, predicted, repaired.
    # (In place: the lab's /etc/hosts is a bind mount, which `sed -i` cannot rename over.)
    gone = block(ALPHA, "bob")
    sh(
        "bob",
        "t=$(grep -vxF -f /dev/stdin /etc/hosts <<'E'\n"
        + gone
        + "E\n) && printf '%s\\n' \"$t\" > /etc/hosts",
    )
    code, st = run(ALPHA, alpha, "status")
    bob = next(h for h in st["hosts"] if h["name"] == "bob")
    assert code == 1 and "/etc/hosts lacks the mesh's names" in bob["reasons"], bob
    code, checked = run(ALPHA, alpha, "up", "--check")
    assert code == 3 and "/etc/hosts: the names of mesh alpha written" in str(checked), checked
    ok(ALPHA, alpha, "up", "--yes")
    assert block(ALPHA, "bob") == block(ALPHA, "rho") and block(BETA, "bob")

    # A reboot runs both boot units: both meshes come back.
    mesh_push("lab", "reboot", "--name", LAB, "bob", check=True)
    healthy(ALPHA, alpha)
    healthy(BETA, beta)
    before = snapshot(ALPHA)

    # rotate-keys of beta: beta's key on bob changes, nothing of alpha's does.
    old = sh("bob", "wg show wg1 public-key")
    ok(BETA, beta, "rotate-keys", "bob", "--yes")
    assert sh("bob", "wg show wg1 public-key") != old
    assert snapshot(ALPHA) == before
    healthy(ALPHA, alpha, 0)
    healthy(BETA, beta)

    # down of beta: its interfaces, state and unit go; alpha's stay as they were.
    ok(BETA, beta, "down", "--yes")
    for h in BETA.hosts:
        have = links(h)
        assert not [n for n in BETA.interfaces(h) if n in have], (h, have)
        gone = f"test ! -e {BETA.state} && test ! -e {BETA.unit} && test ! -L {BETA.wants}"
        sh(h, gone + f" && test -s {BETA.key}")  # the key is kept (down without --purge)
        assert block(BETA, h) == "" and block(ALPHA, h), h  # its names go, alpha's stay
    assert snapshot(ALPHA) == before
    healthy(ALPHA, alpha, 0)

    # Someone's own WireGuard interface, named like gamma's.
    made = lab_exec(LAB, "bob", "ip", "link", "add", "dev", FOREIGN, "type", "wireguard")
    if made.returncode != 0:  # no WireGuard in this kernel: as wg-quick does
        sh("bob", f"wireguard-go {FOREIGN} </dev/null >/dev/null 2>&1")
    sh("bob", f"umask 077; wg genkey > /etc/wireguard/theirs.key && wg set {FOREIGN} "
              "listen-port 40009 private-key /etc/wireguard/theirs.key")  # fmt: skip

    def theirs() -> tuple[Any, str]:
        listing = links("bob")[FOREIGN]
        shown = sh("bob", f"wg show {FOREIGN} public-key; wg show {FOREIGN} listen-port; "
                          f"wg show {FOREIGN} peers")  # fmt: skip
        return listing, shown

    foreign = theirs()
    assert foreign[0][1] == "" and foreign[1].split()[1] == "40009"

    code, report = run(GAMMA, gamma, "up", "--yes")
    assert code == 1, report
    bob = next(h for h in report["hosts"] if h["name"] == "bob")
    assert bob["status"] == "failed" and bob["step"] == "ownership", bob
    assert bob["message"] == (
        f"{FOREIGN} exists and was not made by mesh gamma: refusing to touch it; "
        "choose another mesh.wireguard.interface; "
        "or take it over as it is, where it matches the plan: up --adopt (docs/adopt.md)"
    ), bob
    assert theirs() == foreign
    assert not [n for n in ("br-gamma", "pi0") if n in links("bob")]
    sh("bob", f"test ! -e {GAMMA.key}.new && test ! -e {GAMMA.state}/applied.sha256")
    assert snapshot(ALPHA) == before

    # gamma's down leaves it alone too (and whatever gamma made on pi0 goes).
    ok(GAMMA, gamma, "down", "--yes")
    assert theirs() == foreign
    assert not [n for n in GAMMA.interfaces("pi0") if n in links("pi0")]
    assert snapshot(ALPHA) == before
    healthy(ALPHA, alpha, 0)
