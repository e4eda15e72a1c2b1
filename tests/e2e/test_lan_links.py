"""Two hosts behind one NAT router, linked over their LAN (issue 31, docs/inventory.md#links):
pi0 and nas share a home LAN (`lab.lans`), each also linked to bob, a VPS. Their own link
gives each end's LAN address (`endpoints`), so it needs no static end. In both modes: `up`
is healthy, each dials the other at its LAN address, `status` shows their handshake, and
none of their traffic ever enters the router (an nftables counter on the router, which
does count what pi0 sends the router's public address). Needs root; under CI=true it must
run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import MODES, lab_exec, lab_up, mesh_push

LAB, NET = labs.lab("mpln")  # tests/labs.py: this module's own
A, B, C = NET.split(".")
LAN = f"{A}.{B}.{int(C) + 1}"  # the second half of the lab's /23: its LANs
PI0, NAS = f"{LAN}.2", f"{LAN}.3"  # the first LAN, shared: router .1, then its hosts in order
ROUTER_WAN = f"{NET}.254"  # the router takes the wan's addresses from the top down
ROUTER = "pi0.router"  # named after the first host of its LAN
PORT = 56560
COUNT = "mpln_count"  # the test's own nftables table on the router


def inventory(mode: str) -> str:
    mesh = "  stp: {hello: 1, forward_delay: 4, max_age: 6, ageing: 2}\n"
    if mode == "evpn":
        mesh = "  mode: evpn\n"
    return f"""mesh:
  name: lan
  wireguard: {{interface: wg0, port: {PORT}, network: 10.88.88.0/24}}
  bridge: {{name: internet, network: 10.99.99.0/24}}
{mesh}  keys: host
lab:
  name: {LAB}
  network: {NET}.0/23
  lans: [[pi0, nas]]
hosts:
  bob: {{number: 1, endpoint: static, address: {NET}.11}}
  pi0: {{number: 5, endpoint: nat}}
  nas: {{number: 6, endpoint: nat}}
links:
  - [bob, pi0]
  - [bob, nas]
  - {{hosts: [pi0, nas], endpoints: {{pi0: {PI0}, nas: "{NAS}:{PORT}"}}}}
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    d = tmp_path_factory.mktemp("lan")
    (d / "stp.yaml").write_text(inventory("stp"))
    with lab_up(LAB, d / "stp.yaml"):
        lab = json.loads(mesh_push("lab", "status", "--name", LAB, "--json").stdout)[0]
        nodes = {n["alias"]: n for n in lab["nodes"]}
        at = {n: nodes[n]["address"].split("/")[0] for n in ("pi0", "nas", ROUTER)}
        assert at == {"pi0": PI0, "nas": NAS, ROUTER: ROUTER_WAN} and "nas.router" not in nodes
        # Counts every packet between the two hosts, or from them to the router's public
        # address, that reaches the router's IP layer.
        table = (
            f"table ip {COUNT} {{\n  chain pre {{\n"
            "    type filter hook prerouting priority -300;\n"
            f"    ip saddr {{ {PI0}, {NAS} }} ip daddr {{ {PI0}, {NAS}, {ROUTER_WAN} }} counter\n"
            "  }\n}\n"
        )
        added = lab_exec(LAB, ROUTER, "sh", "-c", 'printf "%s" "$1" | nft -f -', "sh", table)
        assert added.returncode == 0, added.stderr
        yield d


def router_count() -> int:
    res = lab_exec(LAB, ROUTER, "nft", "-j", "list", "table", "ip", COUNT)
    assert res.returncode == 0, res.stderr
    found = [
        x["rule"]["expr"][-1]["counter"]["packets"]
        for x in json.loads(res.stdout)["nftables"]
        if "rule" in x
    ]
    assert len(found) == 1, res.stdout
    return int(found[0])


def peers_of(status: Any, host: str) -> dict[str, dict[str, Any]]:
    """status --json: `host`'s peers by name (stp: its interface's peers; evpn: its links)."""
    h = next(h for h in status["hosts"] if h["name"] == host)
    if "links" in h:
        return {x["peer"]: x for x in h["links"]}
    return {x["name"]: x for x in h["wireguard"]["peers"]}


@pytest.mark.parametrize("mode", MODES)
def test_two_hosts_behind_one_nat_link_over_their_lan(home: Path, mode: str) -> None:
    inv = home / f"{mode}.yaml"
    inv.write_text(inventory(mode))
    before = router_count()
    up = mesh_push("up", "-i", str(inv), "--yes", "--json")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr
        status = mesh_push("status", "-i", str(inv), "--json")
        assert status.returncode == 0, status.stdout[-3000:]
        data = json.loads(status.stdout)
        assert data["healthy"], status.stdout[-3000:]
        for host, other, address in (("pi0", "nas", NAS), ("nas", "pi0", PI0)):
            peer = peers_of(data, host)[other]
            assert peer["latest_handshake_age_s"] is not None, peer
            assert peer["endpoint"].startswith(f"{address}:"), peer  # dialled on the LAN
        measured = mesh_push("measure", "-i", str(inv), "--limit", "pi0,nas", "--json")
        assert measured.returncode == 0, measured.stdout[-3000:] + measured.stderr
        lan = next(
            lk for lk in json.loads(measured.stdout)["links"] if set(lk["hosts"]) == {"pi0", "nas"}
        )
        assert all(e["received"] for e in lan["ends"].values()), lan
        assert router_count() == before  # not one packet of theirs entered the router
        # The counter counts: pi0 pinging the router's public address is seen.
        assert lab_exec(LAB, "pi0", "ping", "-c", "1", "-W", "2", ROUTER_WAN).returncode == 0
        assert router_count() > before
    finally:
        down = mesh_push("down", "-i", str(inv), "--yes", "--json")
        assert down.returncode == 0, down.stdout[-3000:]
