"""Mode evpn on the lab, for real (issue 20): the write-up's five hosts and a 20-host ring
with chords, each lab host with its own FRR instance (zebra, bgpd, ospfd, bfdd) in its own
namespaces. After `up`: healthy; every ordered pair pings across the bridge at the MTU
policy's size with DF; each pair's underlay path, followed hop by hop with `ip route get`,
is a shortest one of the plan; a cut link stops traffic for under 3 s; a no-op `up` loses
no packet; `up --check` finds nothing; rotate-keys stays healthy; `down` leaves each host's
links, FRR files and processes as they were before `up`. Needs root; fails under CI=true."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.lab import failover
from mesh_push.modes.evpn.plan import EvpnPlan, own, vxlan_name
from tests import kit, labs
from tests.conftest import require_root
from tests.e2e.labkit import ROOT, Pings, cli_argv, lab_exec, mesh_push
from tests.schemas import validate

# Each lab's own name and network (tests/labs.py), its inventory and that inventory's prefix.
LABS = {
    "five": (*labs.lab("mpe5"), ROOT / "inventory/lab-evpn.yaml", "198.18.4"),
    "twenty": (*labs.lab("mpe20"), ROOT / "inventory/lab-evpn20.yaml", "198.18.6"),
}
FAILOVER_BOUND_S = 3.0
# What must be as it was before `up` once `down` ran: the links, the routes (the VTEPs'
# unreachable route is the mesh's), FRR's files and every process in the host's network
# namespace (wireguard-go, FRR's daemons, the re-resolver).
BEFORE_AFTER = r"""
ip -o link show | sed 's/^[0-9]*: //; s/ .*//' | sort
echo '=== routes'
ip -4 -o route show table main | sort
echo '=== frr'
find /etc/frr /var/run/frr -mindepth 1 ! -name ospfd-gr.json | sort
echo '=== processes'
me=$(readlink /proc/self/ns/net)
# Not this listing itself: this shell and what it started (the loop, the grep) would show
# their own command lines, the grep only when it has started in time.
for p in /proc/[0-9]*; do
  [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$me" ] || continue
  [ "${p#/proc/}" != "$$" ] || continue
  [ "$(awk '/^PPid:/ {print $2}' "$p/status" 2>/dev/null)" != "$$" ] || continue
  tr '\0' ' ' < "$p/cmdline" 2>/dev/null; echo
done | grep -E 'wireguard-go|/usr/lib/frr|reresolve' | sort
"""


@dataclass
class Lab:
    name: str
    inventory: Path
    plan: EvpnPlan
    # Each host as BEFORE_AFTER saw it before `up`.
    before: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return mesh_push(*args, "-i", str(self.inventory), check=check)

    def exec(self, host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return lab_exec(self.name, host, *cmd)

    @property
    def hosts(self) -> list[str]:
        return [h.name for h in self.plan.mesh.hosts]

    def bridge_ip(self, host: str) -> str:
        return str(self.plan.host(host).bridge_address.ip)


def _lab_copy(dest: Path, name: str, prefix: str, source: Path, old_prefix: str) -> Path:
    text = source.read_text()
    text, n = re.subn(
        r"lab:\n  name: \w+\n  network: \S+",
        f"lab:\n  name: {name}\n  network: {prefix}.0/23",
        text,
    )
    assert n == 1
    text = text.replace(f"{old_prefix}.", f"{prefix}.")
    if "lab-evpn.yaml" in source.name:
        # IPv6 on the bridges and the links too (issue 31): the five hosts' pings and routes
        # check it.
        text = text.replace("mesh:\n", "mesh:\n  ipv6: ula\n", 1)
        six = "network: 10.88.88.0/24, network6: fd88::/64}"
        text = text.replace("network: 10.88.88.0/24}", six)
    dest.write_text(text)
    return dest


@pytest.fixture(scope="module", params=list(LABS))
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_root()
    name, prefix, source, old = LABS[request.param]
    inv = _lab_copy(tmp_path_factory.mktemp(name) / f"{name}.yaml", name, prefix, source, old)
    mesh_push("lab", "down", "--name", name)
    try:
        mesh_push("lab", "up", "-i", str(inv), check=True)
        mesh = inventory.load(inv)
        lab = Lab(name, inv, own(kit.plan(mesh)))
        lab.before = {h: lab.exec(h, "sh", "-c", BEFORE_AFTER).stdout for h in lab.hosts}
        t0 = time.monotonic()
        up = lab.run("up", "--yes", check=True)
        print(f"\n{name}: up from nothing {time.monotonic() - t0:.1f} s\n{up.stdout[-300:]}")
        keys = json.loads(lab.run("plan", "--json", check=True).stdout)
        lab.plan = own(kit.plan(mesh, {h["name"]: h["public_key"] for h in keys["hosts"]}))
        yield lab
    finally:
        mesh_push("lab", "down", "--name", name)


def test_healthy_with_bgp_bfd_and_evpn(lab: Lab) -> None:
    text = lab.run("status", "--json").stdout
    validate(text, "status")
    status = json.loads(text)
    assert status["healthy"], status
    assert status["mode"] == "evpn"
    others = len(lab.hosts) - 1
    for h in status["hosts"]:
        frr = h["frr"]
        assert set(frr["daemons"]) >= {"zebra", "bgpd", "ospfd", "bfdd", "watchfrr"}, h["name"]
        assert all(s["state"] == "Established" for s in frr["bgp"]), (h["name"], frr["bgp"])
        assert all(b["state"] == "up" for b in frr["bfd"]), (h["name"], frr["bfd"])
        assert len(frr["remote_vteps"]) == others, (h["name"], frr["remote_vteps"])
    reflectors = set(status["route_reflectors"])
    assert reflectors == set(lab.plan.underlay.reflectors)
    for h in status["hosts"]:
        assert len(h["frr"]["bgp"]) == (others if h["name"] in reflectors else 2)


def test_each_host_runs_its_own_frr(lab: Lab) -> None:
    zebras = {}
    for h in lab.hosts:
        ps = lab.exec(
            h,
            "sh",
            "-c",
            f"cat /var/run/frr/{lab.plan.mesh.frr_pathspace}/zebra.pid; "
            "readlink /proc/$(cat /var/run/frr/*/zebra.pid)/ns/net; "
            "readlink /proc/self/ns/net",
        )
        pid, zebra_net, own_net = ps.stdout.split()
        assert zebra_net == own_net, h
        zebras[h] = pid
    assert len(set(zebras.values())) == len(lab.hosts), zebras


def test_names_resolve_on_every_host(lab: Lab) -> None:
    """mesh.names (inventory/lab-evpn.yaml, issue 31): every host resolves every host's name
    to its bridge address from its /etc/hosts, and a ping by name crosses the mesh."""
    domain = lab.plan.mesh.names_domain
    if domain is None:
        return  # the twenty hosts have none: the five cover it

    def addresses(src: str, db: str) -> dict[str, str]:
        """Each host's name → the address `getent DB` gives first (ahostsv4 or ahostsv6)."""
        names = " ".join(f"{h}.{domain}" for h in lab.hosts)
        script = f"for n in {names}; do printf '%s ' $n; getent {db} $n | sed -n '1s/ .*//p'; done"
        res = lab.exec(src, "sh", "-c", script)
        return dict(line.split() for line in res.stdout.splitlines())

    for src in lab.hosts:
        got = addresses(src, "ahostsv4")
        assert got == {f"{h}.{domain}": lab.bridge_ip(h) for h in lab.hosts}, (src, got)
        v6 = {f"{h}.{domain}": str(lab.plan.host(h).bridge_address6.ip) for h in lab.hosts}  # type: ignore[union-attr]
        assert addresses(src, "ahostsv6") == v6, src
    far = lab.hosts[-1]
    assert lab.exec(lab.hosts[0], "ping", "-c", "1", "-W", "2", far).returncode == 0


def test_every_pair_pings_at_the_mtu(lab: Lab) -> None:
    """Every ordered pair passes a DF frame of the bridge's MTU. A pair whose path cannot
    carry that size loses every probe; one of three probes answered is the property. (One
    probe each, 380 at once on the twenty hosts' wireguard-go with the CPU saturated, lost
    one once: a lost packet, not a size the path refuses.)"""
    size = lab.plan.mesh.mtu.bridge - 28  # IPv4 and ICMP headers
    failed: list[str] = []

    def from_host(src: str) -> None:
        targets = " ".join(lab.bridge_ip(h) for h in lab.hosts if h != src)
        res = lab.exec(
            src,
            "sh",
            "-c",
            f"for t in {targets}; do ping -c 3 -i 0.2 -W 2 -M do -s {size} "
            '"$t" >/dev/null 2>&1 || echo "$t"; done',
        )
        failed.extend(f"{src} → {t}" for t in res.stdout.split())

    def from_host6(src: str) -> None:
        """The same over IPv6 (mesh.ipv6), 1452 bytes: 1500 less the IPv6 and ICMPv6 headers."""
        six = [lab.plan.host(h).bridge_address6 for h in lab.hosts if h != src]
        # And across each of its links, to the far end's IPv6 address (wireguard.network6).
        ends = [n.network_address for pe in lab.plan.host(src).peers for n in pe.allowed_ips
                if n.version == 6]  # fmt: skip
        targets = " ".join([*(str(a.ip) for a in six if a), *map(str, ends)])
        res = lab.exec(
            src,
            "sh",
            "-c",
            f"for t in {targets}; do ping -6 -c 3 -i 0.2 -W 2 -M do -s {size - 20} "
            '"$t" >/dev/null 2>&1 || echo "$t"; done',
        )
        failed.extend(f"{src} → {t} (IPv6)" for t in res.stdout.split())

    six = lab.plan.mesh.bridge_network6 is not None
    threads = [threading.Thread(target=from_host, args=(h,)) for h in lab.hosts]
    threads += [threading.Thread(target=from_host6, args=(h,)) for h in lab.hosts if six]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failed, failed
    if six:
        # Each host's IPv6 address went to the others as an EVPN type-2 (MAC/IP) route, and
        # no host got a route from a router advertisement.
        ps = lab.plan.mesh.frr_pathspace
        for h in lab.hosts:
            routes = lab.exec(h, "vtysh", "-N", ps, "-c", "show bgp l2vpn evpn route type macip")
            for other in lab.hosts:
                a6 = lab.plan.host(other).bridge_address6
                assert a6 and str(a6.ip) in routes.stdout, (h, other, routes.stdout[-2000:])
            assert lab.exec(h, "ip", "-6", "route", "show", "proto", "ra").stdout == "", h


def test_underlay_paths_are_the_planned_shortest(lab: Lab) -> None:
    """In the steady state: a host that takes another path for a moment (a link's BFD
    session flapped on a loaded machine, OSPF rerouting) is asked again once healthy."""
    wrong = _wrong_hops(lab)
    for _ in range(3):
        if not wrong:
            break
        _wait_healthy(lab, 30)
        time.sleep(3)
        wrong = _wrong_hops(lab)
    assert not wrong, wrong


def _wait_healthy(lab: Lab, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not json.loads(lab.run("status", "--json").stdout)["healthy"]:
        assert time.monotonic() < deadline, "not healthy"
        time.sleep(1)


def _wrong_hops(lab: Lab) -> list[str]:
    """Each pair's path, followed hop by hop with each host's `ip route get` of the
    destination's VTEP: every hop must start one of the plan's shortest paths."""
    u = lab.plan.underlay
    vtep = {h: str(lab.plan.evpn_host(h).vtep) for h in lab.hosts}
    by_vtep = {v: h for h, v in vtep.items()}
    # Each host's next hop towards every VTEP, as its kernel routes it: dev → the link's peer.
    hop: dict[tuple[str, str], str] = {}
    for h in lab.hosts:
        peer_of = {e.name: e.peer for e in lab.plan.evpn_host(h).links}
        targets = " ".join(v for o, v in vtep.items() if o != h)
        out = lab.exec(h, "sh", "-c", f"for v in {targets}; do ip -o route get $v; done").stdout
        for line in out.splitlines():
            m = re.match(r"(\S+) .*\bdev (\S+)", line)
            assert m, line
            hop[(h, by_vtep[m.group(1)])] = peer_of.get(m.group(2), m.group(2))
    wrong = []
    for a in lab.hosts:
        for b in lab.hosts:
            if a == b:
                continue
            here, path = a, [a]
            while here != b and len(path) <= len(lab.hosts):
                nxt = hop[(here, b)]
                if nxt not in u.next_hops[(here, b)]:
                    wrong.append(
                        f"{a}→{b}: at {here} via {nxt}, planned {sorted(u.next_hops[(here, b)])}"
                    )
                    break
                path.append(nxt)
                here = nxt
            if here == b:
                assert u.latency_of(path) == u.latency_of(u.path(a, b)), (path, u.path(a, b))
    return wrong


def _cuts(lab: Lab) -> list[tuple[str, str]]:
    """Two links whose own ends' planned path is the link itself (traffic between them must
    move when it is cut): the write-up's two short ones, or the 20-host lab's first two."""
    u = lab.plan.underlay
    direct = [(lk.a, lk.b) for lk in lab.plan.mesh.links if u.path(lk.a, lk.b) == [lk.a, lk.b]]
    wanted = [("bob", "rho"), ("epsilon", "vorke")]
    return wanted if all(w in direct for w in wanted) else direct[:2]


def test_a_cut_link_fails_over_within_3_s(lab: Lab) -> None:
    figures = []
    for cut in _cuts(lab):
        src, dst = cut
        o = failover.measure(lab.name, src, lab.bridge_ip(dst), cut)
        assert o is not None, f"{src} → {dst}: no reply after cutting {cut}"
        figures.append(f"{cut[0]}–{cut[1]} {o.seconds:.2f} s")
        assert o.seconds < FAILOVER_BOUND_S, figures
        _wait_healthy(lab, 30)  # healed: the link back in use
    print(f"\n{lab.name}: evpn failover (longest silence of a 20 ms ping): {', '.join(figures)}")


def test_noop_up_loses_no_packet(lab: Lab) -> None:
    a, b = lab.hosts[0], lab.hosts[-1]
    ping = subprocess.Popen(
        cli_argv(
            "lab",
            "exec",
            "--name",
            lab.name,
            a,
            "--",
            "ping",
            "-n",
            "-q",
            "-i",
            "0.05",
            "-W",
            "1",
            "-c",
            "200",
            lab.bridge_ip(b),
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1)
        res = lab.run("up", "--yes", check=True)
        assert "changed" not in res.stdout.replace("unchanged", ""), res.stdout
        out, _ = ping.communicate(timeout=60)
    finally:
        if ping.poll() is None:
            ping.kill()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m and m.group(1) == m.group(2), out


def test_handed_back_and_adopted_again_loses_no_packet(lab: Lab) -> None:
    """`down --keep` then `up --adopt` (docs/adopt.md): the link interfaces, the bridge and
    the VXLAN device stay, unmarked in between, and FRR keeps routing throughout."""
    if len(lab.hosts) > 5:
        return  # the five-host lab covers it
    a, b = lab.hosts[0], lab.hosts[-1]
    ping = subprocess.Popen(
        cli_argv("lab", "exec", "--name", lab.name, a, "--",
                 "ping", "-n", "-q", "-i", "0.05", "-W", "1", "-c", "300", lab.bridge_ip(b)),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(1)
        lab.run("down", "--keep", "--yes", check=True)
        link = lab.plan.host(b).wg[0].name
        assert lab.exec(b, "cat", f"/sys/class/net/{link}/ifalias").stdout.strip() == ""
        again = lab.run("up", "--adopt", "--yes", "--json", check=True)
        said = {h["name"]: h["changes"] for h in json.loads(again.stdout)["hosts"]}
        assert f"{link} adopted" in " ".join(said[b]), said[b]
        assert not any("created" in c for cs in said.values() for c in cs), said
        out, _ = ping.communicate(timeout=60)
    finally:
        if ping.poll() is None:
            ping.kill()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m and m.group(1) == m.group(2), out
    status = json.loads(lab.run("status", "--json").stdout)
    assert status["healthy"], status["hosts"]


def test_tx_checksum_off_is_set_and_its_drift_repaired(lab: Lab) -> None:
    """`tx_checksum: false` (issue 30) on the VXLAN device; a host that turns it back on is
    told apart and put right."""
    if len(lab.hosts) > 5:
        return  # the five-host lab covers it
    text = lab.inventory.read_text()
    vx, host = vxlan_name(lab.plan.mesh), lab.hosts[0]
    try:
        lab.inventory.write_text(text.replace("mesh:\n", "mesh:\n  tx_checksum: false\n", 1))
        lab.run("up", "--yes", check=True)
        assert "tx-checksumming: off" in lab.exec(host, "ethtool", "-k", vx).stdout
        lab.exec(host, "ethtool", "-K", vx, "tx", "on")
        drift = json.loads(lab.run("status", "--json").stdout)
        found = next(h for h in drift["hosts"] if h["name"] == host)
        assert f"vxlan {vx} tx checksumming on, planned off" in found["reasons"], found
        lab.run("up", "--yes", check=True)
        assert "tx-checksumming: off" in lab.exec(host, "ethtool", "-k", vx).stdout
    finally:
        lab.inventory.write_text(text)  # unset: the device is left as it is


def test_check_finds_nothing_and_rotate_keys_stays_healthy(lab: Lab) -> None:
    res = lab.run("up", "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    if len(lab.hosts) > 5:
        return  # the five-host lab covers the rotation
    # Every key pair at once (issue 33, engine/handover.py), under a 20 ms ping between every
    # pair of bridges: at most one echo lost per pair.
    pairs = [(a, b) for i, a in enumerate(lab.hosts) for b in lab.hosts[i + 1 :]]
    pings = Pings(lab.name, {(a, b): lab.bridge_ip(b) for a, b in pairs})
    time.sleep(1)
    rotated = lab.run("rotate-keys", "--yes")
    lost = pings.stop()
    assert rotated.returncode == 0, rotated.stdout[-3000:] + rotated.stderr
    print(f"\n{lab.name}: lost echoes per pair during rotate-keys of every host: {lost}")
    assert all(n <= 1 for n in lost.values()), lost
    status = json.loads(lab.run("status", "--json").stdout)
    assert status["healthy"], status["hosts"]


def test_drift_is_repaired_and_a_foreign_interface_refused(lab: Lab) -> None:
    """On bob (five hosts): a deleted link interface is drift that `up --check` names and
    `up` repairs; an interface of a planned name that the mesh did not make (a bridge called
    wg0-vx) stops bob's script before any change, and stays as it was."""
    if len(lab.hosts) > 5:
        return
    link = next(e.name for e in lab.plan.evpn_host("bob").links if e.peer == "rho")
    lab.exec("bob", "ip", "link", "del", "dev", link)
    res = lab.run("up", "--check")
    assert res.returncode == 3 and link in res.stdout, res.stdout[-3000:]
    lab.run("up", "--yes", check=True)
    _wait_healthy(lab, 30)
    vx = vxlan_name(lab.plan.mesh)
    lab.exec("bob", "ip", "link", "del", "dev", vx)
    lab.exec("bob", "ip", "link", "add", "name", vx, "type", "bridge")
    try:
        res = lab.run("up", "--yes")
        assert res.returncode == 1, res.stdout[-3000:]
        assert f"{vx} exists and was not made by mesh" in res.stdout + res.stderr, res.stdout
        kind = lab.exec("bob", "ip", "-d", "-o", "link", "show", "dev", vx).stdout
        assert " bridge " in kind and "mesh-push" not in kind, kind
    finally:
        lab.exec("bob", "ip", "link", "del", "dev", vx)
    lab.run("up", "--yes", check=True)
    _wait_healthy(lab, 30)


def _kernel_routes(lab: Lab, host: str) -> list[str]:
    """The host's IPv4 routes as its kernel has them (what traffic follows)."""
    return sorted(lab.exec(host, "ip", "-4", "-o", "route", "show", "table", "main").stdout
                  .splitlines())  # fmt: skip


def test_a_hostile_host_changes_no_other_hosts_routes(lab: Lab) -> None:
    """vorke (five hosts) turns hostile: its own FRR redistributes into OSPF 0.0.0.0/1,
    128.0.0.0/1, the controller's /32 and bob's VTEP (through next hops that leave vorke's
    own routes to the controller and to bob as they were, so vorke itself still answers).
    The routes reach every other host's OSPF, and no other host's kernel routes change
    (frr.conf's `ip protocol ospf route-map`); the others stay healthy, and status names
    vorke for what it announces. A VTEP with no route is unreachable, not sent out the
    default route. Then bob's VTEP as a stub of vorke's own (which no filter stops): named
    too."""
    if len(lab.hosts) > 5:
        return
    ps = lab.plan.mesh.frr_pathspace
    others = [h for h in lab.hosts if h != "vorke"]
    before = {h: _kernel_routes(lab, h) for h in others}
    controller = lab.inventory.read_text().split("network: ")[-1].split(".0/23")[0] + ".1"
    to_ctl = lab.exec("vorke", "ip", "-4", "-o", "route", "get", controller).stdout.split()
    to_bob = next(e.name for e in lab.plan.evpn_host("vorke").links if e.peer == "bob")
    bob_vtep = str(lab.plan.evpn_host("bob").vtep)
    hostile = [
        f"ip route 0.0.0.0/1 {controller}",  # the lab's hosts have no default route
        f"ip route 128.0.0.0/1 {controller}",
        f"ip route {controller}/32 {to_ctl[to_ctl.index('dev') + 1]}",
        f"ip route {bob_vtep}/32 {to_bob}",
    ]
    vty = ["vtysh", "-N", ps, "-c", "conf t"]
    args = [a for line in [*hostile, "router ospf", "redistribute static"] for a in ("-c", line)]
    assert lab.exec("vorke", *vty, *args).returncode == 0
    try:
        # Delivered: rho's OSPF holds vorke's routes (in its RIB, not installed).
        deadline = time.monotonic() + 20
        while True:
            rib = lab.exec("rho", "vtysh", "-N", ps, "-c", "show ip route 0.0.0.0/1 json").stdout
            if "0.0.0.0/1" in rib:
                break
            assert time.monotonic() < deadline, "vorke's routes never reached rho's OSPF"
            time.sleep(1)
        time.sleep(3)  # OSPF's SPF throttle, and zebra's decision, at every host
        for h in others:
            assert _kernel_routes(lab, h) == before[h], h
        status = json.loads(lab.run("status", "--json").stdout)
        sick = {x["name"]: x["reasons"] for x in status["hosts"] if not x["healthy"]}
        assert set(sick) <= {"vorke"}, sick
        # The lie is named, and by its author.
        lies = f"0.0.0.0/1, {bob_vtep}/32 (bob's VTEP), 128.0.0.0/1, {controller}/32"
        said = f"announces in OSPF what is not its own: {lies}"
        assert said in sick.get("vorke", []), sick
        # An address of the VTEPs' network that no host has: unreachable, not the default.
        nobody = str(lab.plan.mesh.wg_network.network_address + 250)
        res = lab.exec("rho", "ip", "-4", "route", "get", nobody)
        assert res.returncode != 0 and "no route to host" in res.stderr.lower(), res
        # VXLAN from a VTEP to an address outside the mesh (an EVPN next hop lied about):
        # no route, not the way to the controller.
        rho_vtep = str(lab.plan.evpn_host("rho").vtep)
        res = lab.exec("rho", "ip", "-4", "route", "get", controller, "from", rho_vtep)
        assert res.returncode != 0 and "unreachable" in res.stderr.lower(), res
        # What no filter stops (docs/security.md#evpn-routes): bob's VTEP as a stub of
        # vorke's own, which draws bob's VXLAN traffic from whoever is closer to vorke.
        # status names vorke for it.
        assert lab.exec("vorke", *vty, *undo_args(hostile)).returncode == 0
        hostile = []
        lab.exec("vorke", "ip", "addr", "add", f"{bob_vtep}/32", "dev", "lo")
        stub = ["-c", "router ospf", "-c", f"network {bob_vtep}/32 area 0"]
        assert lab.exec("vorke", *vty, *stub).returncode == 0
        stub_said = f"announces in OSPF what is not its own: {bob_vtep}/32 (bob's VTEP)"
        deadline = time.monotonic() + 20
        while True:
            status = json.loads(lab.run("status", "--json").stdout)
            vorke = next(x["reasons"] for x in status["hosts"] if x["name"] == "vorke")
            if stub_said in vorke:
                break
            assert time.monotonic() < deadline, vorke
            time.sleep(1)
    finally:
        lab.exec("vorke", *vty, "-c", "router ospf", "-c", f"no network {bob_vtep}/32 area 0")
        lab.exec("vorke", "ip", "addr", "del", f"{bob_vtep}/32", "dev", "lo")
        if hostile:
            assert lab.exec("vorke", *vty, *undo_args(hostile)).returncode == 0
    _wait_healthy(lab, 30)


def undo_args(hostile: list[str]) -> list[str]:
    """vtysh's arguments that take back the hostile static routes and their redistribution."""
    lines = ["router ospf", "no redistribute static", "exit",
             *(f"no {x}" for x in hostile)]  # fmt: skip
    return [a for line in lines for a in ("-c", line)]


def test_a_link_peer_cannot_send_from_outside_the_mesh(lab: Lab) -> None:
    """Each link's allowed-ips is what may cross it: vorke pinging rho over their link from an
    address outside the mesh never reaches rho's stack (WireGuard drops it: rho counts no
    echo request), while the same ping from vorke's own link address does."""
    if len(lab.hosts) > 5:
        return
    here = next(e for e in lab.plan.evpn_host("vorke").links if e.peer == "rho")

    def echoes() -> int:
        # rho's network namespace's own count of ICMP echo requests received.
        snmp = lab.exec("rho", "cat", "/proc/net/snmp").stdout.splitlines()
        names, values = (line.split() for line in snmp if line.startswith("Icmp:"))
        return int(values[names.index("InEchos")])

    before = echoes()
    ok = lab.exec("vorke", "ping", "-c", "1", "-W", "2", str(here.peer_address))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert echoes() > before
    assert lab.exec("vorke", "ip", "addr", "add", "192.0.2.77/32", "dev", "lo").returncode == 0
    try:
        before = echoes()
        lab.exec("vorke", "ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", "192.0.2.77",
                 str(here.peer_address))  # fmt: skip
        assert echoes() == before
    finally:
        lab.exec("vorke", "ip", "addr", "del", "192.0.2.77/32", "dev", "lo")


def test_frr_killed_on_one_host(lab: Lab) -> None:
    """A fault (docs/security.md): every FRR daemon of rho killed (SIGKILL, by the pids in
    its pid files). status names rho's FRR as not running; one `up` starts it again, and
    the mesh is healthy."""
    if len(lab.hosts) > 5:
        return
    ps = lab.plan.mesh.frr_pathspace
    kill = f'for f in /var/run/frr/{ps}/*.pid; do read -r p < "$f" && kill -9 "$p"; done; true'
    assert lab.exec("rho", "sh", "-c", kill).returncode == 0
    deadline = time.monotonic() + 20
    while True:
        status = json.loads(lab.run("status", "--json").stdout)
        rho = next(h for h in status["hosts"] if h["name"] == "rho")
        if any(f"FRR {ps} not running" in r for r in rho["reasons"]):
            break
        assert time.monotonic() < deadline, rho
        time.sleep(1)
    assert not status["healthy"]
    res = lab.run("up", "--yes", "--json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    rho = next(h for h in json.loads(res.stdout)["hosts"] if h["name"] == "rho")
    assert f"FRR instance {ps} started" in rho["changes"], rho
    _wait_healthy(lab, 30)


def test_an_frr_daemon_that_lost_its_configuration_gets_it_again(lab: Lab) -> None:
    """As a daemon that missed its part of frr.conf at start (seen on a slow guest): bob's
    bgpd and ospfd running with no configuration is drift that `up --check` names and `up`
    repairs, giving the instance its file again."""
    if len(lab.hosts) > 5:
        return
    ps = lab.plan.mesh.frr_pathspace
    asn = lab.plan.mesh.evpn.asn
    lab.exec("bob", "vtysh", "-N", ps, "-c", "conf t", "-c", f"no router bgp {asn}", "-c",
             "no router ospf")  # fmt: skip
    status = json.loads(lab.run("status", "--json").stdout)
    bob = next(h for h in status["hosts"] if h["name"] == "bob")
    assert any("BGP session with" in r and "not configured" in r for r in bob["reasons"]), bob
    res = lab.run("up", "--check")
    assert res.returncode == 3 and "given its configuration again" in res.stdout, res.stdout
    res = lab.run("up", "--yes", "--json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    bob = next(h for h in json.loads(res.stdout)["hosts"] if h["name"] == "bob")
    assert f"FRR instance {ps} given its configuration again" in bob["changes"], bob
    _wait_healthy(lab, 30)


def test_switching_modes_both_ways(lab: Lab, tmp_path: Path) -> None:
    """The same mesh to stp mode and back (five hosts): each `up` converges from the other
    mode's state, the FRR instance goes with evpn mode and comes back with it."""
    if len(lab.hosts) > 5:
        return
    text = lab.inventory.read_text().replace("  mode: evpn\n", "  mode: stp\n")
    text = text.replace(
        "mesh:\n", "mesh:\n  stp: {hello: 1, forward_delay: 4, max_age: 6, ageing: 2}\n"
    )
    stp_inv = tmp_path / "stp.yaml"
    stp_inv.write_text(text)
    res = mesh_push("up", "--yes", "-i", str(stp_inv))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    frr = lab.exec(lab.hosts[0], "sh", "-c", "ls /etc/frr /var/run/frr").stdout
    assert lab.plan.mesh.frr_pathspace not in frr, frr
    res = lab.run("up", "--yes")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    assert json.loads(lab.run("status", "--json").stdout)["healthy"]


def test_down_leaves_nothing(lab: Lab) -> None:
    lab.run("down", "--yes", check=True)
    after = {h: lab.exec(h, "sh", "-c", BEFORE_AFTER).stdout for h in lab.hosts}
    assert after == lab.before
    # Nothing is left for a second `down` either.
    res = lab.run("down", "--check")
    assert res.returncode == 0, res.stdout
