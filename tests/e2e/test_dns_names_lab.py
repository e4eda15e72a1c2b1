"""DNS names as WireGuard endpoints (issue 12) on the lab: a static host known only by name,
a peer behind NAT that can find it again only by re-resolving that name (its router drops
whatever the moved host sends it first), and a move of the named host to a new address with
no `up` after it. Needs root; under CI=true it must run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.e2e.labkit import lab_exec, lab_up, mesh_push

LAB = "mpn"
NET = "198.18.32"
NAME = "hub.mesh.test"
RERESOLVE_S = 2
PORT = 51820
HUB_WG = "10.88.88.1"  # hub is host 1
STATE = "/var/lib/mesh-push/names"  # mesh `names`
PEERS = ("bob", "pi")  # hub's peers: they know it by name only
INVENTORY = f"""\
mesh:
  name: names
  wireguard: {{reresolve: {RERESOLVE_S}}}
  stp: {{hello: 1, forward_delay: 4, max_age: 6, ageing: 2}}
lab:
  name: {LAB}
  network: {NET}.0/23
hosts:
  hub: {{endpoint: static, address: {NAME}}}
  bob: {{endpoint: static, address: {NET}.11}}
  pi: {{endpoint: nat}}
links:
  - [hub, bob]
  - [hub, pi]
"""


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    inv = tmp_path_factory.mktemp("names") / "names.yaml"
    inv.write_text(INVENTORY)
    with lab_up(LAB, inv):
        res = mesh_push("up", "-i", str(inv), "--yes", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        yield inv


def lab_address(host: str) -> str:
    res = mesh_push("lab", "status", "--name", LAB, "--json", check=True)
    (lab,) = json.loads(res.stdout)
    node = next(n for n in lab["nodes"] if n["alias"] == host)
    return str(node["address"]).split("/")[0]


def endpoints(host: str) -> str:
    return lab_exec(LAB, host, "wg", "show", "wg0", "endpoints").stdout


def reresolver_running(host: str) -> bool:
    """Whether the loop named in the host's pid file runs, as the host scripts check it."""
    script = (
        f"p=$(cat {STATE}/reresolve.pid) && "
        f'[ "$(tr "\\0" " " < /proc/$p/cmdline)" = "/bin/sh {STATE}/reresolve.sh loop " ]'
    )
    return lab_exec(LAB, host, "sh", "-c", script).returncode == 0


def wait_for(what: str, seconds: float, check: Callable[[], bool]) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.25)
    return time.monotonic() - start


def pings(host: str, address: str) -> bool:
    return lab_exec(LAB, host, "ping", "-c", "1", "-W", "1", address).returncode == 0


def test_a_mesh_with_a_named_host_comes_up_healthy(inventory: Path) -> None:
    status = mesh_push("status", "-i", str(inventory))
    assert status.returncode == 0, status.stdout + status.stderr
    hub = lab_address("hub")
    for peer in PEERS:
        assert f"\t{hub}:{PORT}" in endpoints(peer)
        assert lab_exec(LAB, peer, "getent", "hosts", NAME).stdout.split()[0] == hub
        assert reresolver_running(peer), peer
    # hub's own peers are an IP address and a NAT host: nothing to re-resolve there.
    assert not reresolver_running("hub")
    assert lab_exec(LAB, "hub", "test", "-e", f"{STATE}/reresolve.sh").returncode != 0
    plan = json.loads(mesh_push("plan", "-i", str(inventory), "--json", check=True).stdout)
    pi = next(h for h in plan["hosts"] if h["name"] == "pi")
    assert pi["peers"][0]["endpoint"] == f"{NAME}:{PORT}"


def test_peers_follow_the_named_host_to_its_new_address_without_up(inventory: Path) -> None:
    old, new = lab_address("hub"), f"{NET}.20"
    assert old != new
    moved = mesh_push("lab", "move", "--name", LAB, "hub", new, "--json", check=True)
    assert json.loads(moved.stdout)["changed"] is True
    assert lab_address("hub") == new
    # pi sits behind NAT: only its re-resolver can point it at the new address.
    bound = 4 * RERESOLVE_S + 5
    took = wait_for("pi re-resolves", bound, lambda: f"\t{new}:{PORT}" in endpoints("pi"))
    wait_for("bob re-resolves", bound, lambda: f"\t{new}:{PORT}" in endpoints("bob"))
    log = lab_exec(LAB, "pi", "cat", f"{STATE}/reresolve.log").stdout
    assert f"peer hub endpoint {new}:{PORT} ({NAME}, was {old}:{PORT})" in log
    # The tunnel really works over the new address (a handshake stays "fresh" for 180 s, so
    # status alone could not tell), and the whole mesh is healthy again.
    wait_for("pi pings hub over wg0", 15, lambda: pings("pi", HUB_WG))
    wait_for("bob pings hub over wg0", 15, lambda: pings("bob", HUB_WG))
    wait_for("healthy", 30, lambda: mesh_push("status", "-i", str(inventory)).returncode == 0)
    assert took < bound


def test_a_reboot_brings_the_re_resolver_back(inventory: Path) -> None:
    mesh_push("lab", "reboot", "--name", LAB, "pi", check=True)
    assert reresolver_running("pi")
    assert f"\t{lab_address('hub')}:{PORT}" in endpoints("pi")
    wait_for("pi pings hub over wg0", 15, lambda: pings("pi", HUB_WG))


def test_a_no_op_up_leaves_the_re_resolvers_alone(inventory: Path) -> None:
    before = {h: lab_exec(LAB, h, "cat", f"{STATE}/reresolve.pid").stdout for h in PEERS}
    again = lab_exec(LAB, "bob", "sh", f"{STATE}/apply.sh")
    assert again.returncode == 0, again.stderr
    assert "re-resolver" not in again.stdout and "endpoint" not in again.stdout
    after = {h: lab_exec(LAB, h, "cat", f"{STATE}/reresolve.pid").stdout for h in PEERS}
    assert after == before


def test_down_stops_every_re_resolver(inventory: Path) -> None:
    pids = {h: lab_exec(LAB, h, "cat", f"{STATE}/reresolve.pid").stdout.strip() for h in PEERS}
    res = mesh_push("down", "-i", str(inventory), "--yes", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    for host, pid in pids.items():
        assert pid.isdigit()
        alive = lab_exec(LAB, host, "cat", f"/proc/{pid}/cmdline").stdout
        assert "reresolve" not in alive, host
        assert lab_exec(LAB, host, "test", "-e", f"{STATE}/reresolve.pid").returncode != 0
