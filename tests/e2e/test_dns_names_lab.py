"""DNS names as WireGuard endpoints (issue 12) on the lab, in both modes (issue 26), each on a
lab of its own: a static host known only by name, a peer behind NAT that can find it again
only by re-resolving that name (its router drops whatever the moved host sends it first), and
a move of the named host to a new address with no `up` after it. Each peer re-resolves on the
interface and port of its link with the named host (stp: wg0 and wireguard.port; evpn: the
link's own interface, on wireguard.port + VNI). Needs root; under CI=true it must run."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import MODES, End, in_mode, lab_exec, lab_up, link_ends, mesh_push

# Each mode's lab and network (/23s checked unused on this machine before they were chosen).
LABS = {"stp": labs.lab("mpn"), "evpn": labs.lab("mpnev")}
assert set(LABS) == set(MODES)
NAME = "hub.mesh.test"
RERESOLVE_S = 2
PORT = 51820  # wireguard.port: stp's one port; evpn's links listen on PORT + VNI
STATE = "/var/lib/mesh-push/names"  # mesh `names`
PEERS = ("bob", "pi")  # hub's peers: they know it by name only
INVENTORY = """\
mesh:
  name: names
  wireguard: {{reresolve: {reresolve}}}
  stp: {{hello: 1, forward_delay: 4, max_age: 6, ageing: 2}}
lab:
  name: {lab}
  network: {net}.0/23
hosts:
  hub: {{endpoint: static, address: {name}}}
  bob: {{endpoint: static, address: {net}.11}}
  pi: {{endpoint: nat}}
links:
  - [hub, bob]
  - [hub, pi]
"""


@dataclass
class Lab:
    mode: str
    name: str
    net: str
    inventory: Path
    ends: dict[tuple[str, str], End]  # (host, peer) → its end of their link, as planned

    def exec(self, host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return lab_exec(self.name, host, *cmd)

    def port(self, peer: str) -> int:
        """The port hub listens on for its link with `peer`."""
        return self.ends[("hub", peer)].port

    def hub_tunnel(self, peer: str) -> str:
        """hub's address on its link with `peer` (stp: hub's WireGuard address, 10.88.88.1)."""
        return self.ends[(peer, "hub")].peer_address


@pytest.fixture(scope="module", params=MODES)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_root()
    mode = request.param
    name, net = LABS[mode]
    inv = tmp_path_factory.mktemp(f"names-{mode}") / "names.yaml"
    text = INVENTORY.format(lab=name, net=net, reresolve=RERESOLVE_S, name=NAME)
    inv.write_text(in_mode(text, mode))
    lab = Lab(mode, name, net, inv, link_ends(inv))
    if mode == "stp":
        assert {lab.port(p) for p in PEERS} == {PORT}
        assert {lab.hub_tunnel(p) for p in PEERS} == {"10.88.88.1"}  # hub is host 1
    else:
        assert sorted(lab.port(p) for p in PEERS) == [PORT + 1, PORT + 2]
        assert len({lab.ends[(p, "hub")].interface for p in PEERS}) == 2
    with lab_up(name, inv):
        res = mesh_push("up", "-i", str(inv), "--yes", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        yield lab


def lab_address(lab: Lab, host: str) -> str:
    res = mesh_push("lab", "status", "--name", lab.name, "--json", check=True)
    (labs,) = json.loads(res.stdout)
    node = next(n for n in labs["nodes"] if n["alias"] == host)
    return str(node["address"]).split("/")[0]


def endpoints(lab: Lab, host: str) -> str:
    """The endpoints of `host`'s peers on the interface of its link with hub."""
    return lab.exec(host, "wg", "show", lab.ends[(host, "hub")].interface, "endpoints").stdout


def reresolver_running(lab: Lab, host: str) -> bool:
    """Whether the loop named in the host's pid file runs, as the host scripts check it."""
    script = (
        f"p=$(cat {STATE}/reresolve.pid) && "
        f'[ "$(tr "\\0" " " < /proc/$p/cmdline)" = "/bin/sh {STATE}/reresolve.sh loop " ]'
    )
    return lab.exec(host, "sh", "-c", script).returncode == 0


def wait_for(what: str, seconds: float, check: Callable[[], bool]) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.25)
    return time.monotonic() - start


def pings(lab: Lab, host: str, address: str) -> bool:
    return lab.exec(host, "ping", "-c", "1", "-W", "1", address).returncode == 0


def test_a_mesh_with_a_named_host_comes_up_healthy(lab: Lab) -> None:
    status = mesh_push("status", "-i", str(lab.inventory))
    assert status.returncode == 0, status.stdout + status.stderr
    hub = lab_address(lab, "hub")
    for peer in PEERS:
        assert f"\t{hub}:{lab.port(peer)}" in endpoints(lab, peer)
        assert lab.exec(peer, "getent", "hosts", NAME).stdout.split()[0] == hub
        assert reresolver_running(lab, peer), peer
    # hub's own peers are an IP address and a NAT host: nothing to re-resolve there.
    assert not reresolver_running(lab, "hub")
    assert lab.exec("hub", "test", "-e", f"{STATE}/reresolve.sh").returncode != 0
    plan = json.loads(mesh_push("plan", "-i", str(lab.inventory), "--json", check=True).stdout)
    pi = next(h for h in plan["hosts"] if h["name"] == "pi")
    assert [(p["name"], p["endpoint"]) for p in pi["peers"]] == [
        ("hub", f"{NAME}:{lab.port('pi')}")
    ]


def test_peers_follow_the_named_host_to_its_new_address_without_up(lab: Lab) -> None:
    old, new = lab_address(lab, "hub"), f"{lab.net}.20"
    assert old != new
    moved = mesh_push("lab", "move", "--name", lab.name, "hub", new, "--json", check=True)
    assert json.loads(moved.stdout)["changed"] is True
    assert lab_address(lab, "hub") == new
    # pi sits behind NAT: only its re-resolver can point it at the new address.
    bound = 4 * RERESOLVE_S + 5
    pi, bob = lab.port("pi"), lab.port("bob")
    took = wait_for("pi re-resolves", bound, lambda: f"\t{new}:{pi}" in endpoints(lab, "pi"))
    wait_for("bob re-resolves", bound, lambda: f"\t{new}:{bob}" in endpoints(lab, "bob"))
    log = lab.exec("pi", "cat", f"{STATE}/reresolve.log").stdout
    wg = lab.ends[("pi", "hub")].interface
    assert f" {wg} peer hub endpoint {new}:{pi} ({NAME}, was {old}:{pi})" in log, log
    # The tunnel really works over the new address (a handshake stays "fresh" for 180 s, so
    # status alone could not tell), and the whole mesh is healthy again.
    wait_for("pi pings hub over its link", 15, lambda: pings(lab, "pi", lab.hub_tunnel("pi")))
    wait_for("bob pings hub over its link", 15, lambda: pings(lab, "bob", lab.hub_tunnel("bob")))
    wait_for("healthy", 30, lambda: mesh_push("status", "-i", str(lab.inventory)).returncode == 0)
    assert took < bound


def test_a_reboot_brings_the_re_resolver_back(lab: Lab) -> None:
    mesh_push("lab", "reboot", "--name", lab.name, "pi", check=True)
    assert reresolver_running(lab, "pi")
    assert f"\t{lab_address(lab, 'hub')}:{lab.port('pi')}" in endpoints(lab, "pi")
    wait_for("pi pings hub over its link", 15, lambda: pings(lab, "pi", lab.hub_tunnel("pi")))


def test_a_no_op_up_leaves_the_re_resolvers_alone(lab: Lab) -> None:
    before = {h: lab.exec(h, "cat", f"{STATE}/reresolve.pid").stdout for h in PEERS}
    again = lab.exec("bob", "sh", f"{STATE}/apply.sh")
    assert again.returncode == 0, again.stderr
    assert "re-resolver" not in again.stdout and "endpoint" not in again.stdout
    after = {h: lab.exec(h, "cat", f"{STATE}/reresolve.pid").stdout for h in PEERS}
    assert after == before


def test_down_stops_every_re_resolver(lab: Lab) -> None:
    pids = {h: lab.exec(h, "cat", f"{STATE}/reresolve.pid").stdout.strip() for h in PEERS}
    res = mesh_push("down", "-i", str(lab.inventory), "--yes", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    for host, pid in pids.items():
        assert pid.isdigit()
        alive = lab.exec(host, "cat", f"/proc/{pid}/cmdline").stdout
        assert "reresolve" not in alive, host
        assert lab.exec(host, "test", "-e", f"{STATE}/reresolve.pid").returncode != 0
