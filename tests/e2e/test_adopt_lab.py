"""Taking over a network built by hand (issue 29, docs/adopt.md), on the lab: the write-up's
five hosts get the write-up's own commands (tests/e2e/handbuilt.py); then `import` reads it
into an inventory, `up --adopt --check` says what would be adopted and changed, and
`up --adopt` takes it over in place while a 20 ms ping runs between every pair of bridge
addresses: no pair loses more than the STP reconvergence the plan's tree change costs. A
reboot brings the mesh back through mesh-push's boot unit; `down --keep` hands it back with the
bridge still pinging, `up --adopt` takes it again, and `down` removes it. Needs root; under
CI=true it must run."""

from __future__ import annotations

import json
import time
from itertools import combinations
from pathlib import Path

from tests import labs
from tests.conftest import require_root
from tests.e2e import handbuilt, labkit
from tests.e2e.labkit import HOSTS, NUMBER, lab_exec, lab_inventory, lab_up, mesh_push

LAB, NET = labs.lab("mpad")  # tests/labs.py
LINKS = [
    ("epsilon", "vorke", 1), ("epsilon", "bob", 2), ("vorke", "bob", 3), ("epsilon", "rho", 4),
    ("vorke", "rho", 5), ("bob", "rho", 6), ("rho", "pi0", 7),
]  # fmt: skip
STATIC = {"bob": f"{NET}.11", "rho": f"{NET}.12", "epsilon": f"{NET}.14"}
INTERVAL = labkit.Pings.INTERVAL


def pings_all() -> labkit.Pings:
    """Every pair of hosts, the first pinging the second's bridge address."""
    return labkit.Pings(LAB, {(a, b): f"10.99.99.{NUMBER[b]}" for a, b in combinations(HOSTS, 2)})


def bridge_pings(host: str, peer: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while lab_exec(LAB, host, "ping", "-c", "1", "-W", "1", f"10.99.99.{NUMBER[peer]}").returncode:
        assert time.monotonic() < deadline, f"{host} does not reach {peer} over the bridge"


def healthy(inv: Path, seconds: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while True:
        res = mesh_push("status", "-i", str(inv), "--json")
        if res.returncode == 0:
            return dict(json.loads(res.stdout))
        assert time.monotonic() < deadline, res.stdout[-3000:] + res.stderr
        time.sleep(1)


def test_a_hand_built_network_is_imported_and_taken_over_in_place(tmp_path: Path) -> None:
    require_root()
    lab_inv = lab_inventory(tmp_path / "lab.yaml", LAB, NET)
    with lab_up(LAB, lab_inv):
        keys = handbuilt.build(LAB, NUMBER, STATIC, LINKS)
        bridge_pings("vorke", "pi0")
        # Only the hosts and how to reach them: the lab's own SSH settings.
        inv = handbuilt.imported(tmp_path, f"{{name: {LAB}, network: {NET}.0/23}}", HOSTS, "mine")
        text = inv.read_text()
        for h in HOSTS:
            assert keys[h] in text  # each host keeps its key pair
        # The write-up's `ethtool -K WIRE tx off`, found on every wire (issue 30).
        assert "  tx_checksum: false" in text
        plan = json.loads(mesh_push("plan", "-i", str(inv), "--json", check=True).stdout)
        kinds = {h["name"]: h["endpoint"] for h in plan["hosts"]}
        assert kinds == {"bob": "static", "rho": "static", "vorke": "dynamic",
                         "epsilon": "static", "pi0": "nat"}, kinds  # fmt: skip
        assert sorted((sorted(lk["hosts"]), lk["vni"]) for lk in plan["links"]) == sorted(
            (sorted([a, b]), v) for a, b, v in LINKS
        )
        # What is another's stays refused without --adopt, and nothing is touched.
        refused = mesh_push("up", "-i", str(inv), "--check")
        assert refused.returncode == 1 and "was not made by mesh mine" in refused.stdout
        check = mesh_push("up", "-i", str(inv), "--adopt", "--check", "--json")
        assert check.returncode == 3, check.stdout + check.stderr
        checked = json.loads(check.stdout)
        said = {h["name"]: h["changes"] for h in checked["hosts"]}
        assert "wg0 adopted (WireGuard, port 56560, 10.88.88.2/24)" in said["rho"]
        assert "pi0 adopted (VXLAN id 7)" in said["rho"]
        assert not any("created" in c for cs in said.values() for c in cs), said
        # The planned tree (root rho) replaces the one lowest MAC elected: what that costs.
        cost = checked["reconvergence"]
        assert cost["seconds"] == 2 * 4 and cost["changes"][0].endswith(" → rho"), cost
        assert not [c for c in cost["changes"] if "rho–pi0" in c or "pi0–rho" in c], cost

        pings = pings_all()
        up = mesh_push("up", "-i", str(inv), "--adopt", "--yes", "--json")
        status = healthy(inv)
        lost = pings.stop()
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr
        for h in HOSTS:  # the same key pairs, now in mesh-push's key file
            assert lab_exec(LAB, h, "wg", "show", "wg0", "public-key").stdout.strip() == keys[h]
        # No pair loses more than predicted (a second of slack for the apply's own pace); the
        # one whose ports keep their state loses nothing.
        print("lost echoes per pair during up --adopt:", lost, "predicted:", cost)
        assert all(n <= (cost["seconds"] + 1) / INTERVAL for n in lost.values()), lost
        assert lost[("rho", "pi0")] == 0, lost
        assert status["tree_matches_plan"] is True and status["planned_root"] == "rho", status

        # Its drift is seen and repaired like any other setting's.
        lab_exec(LAB, "rho", "ethtool", "-K", "pi0", "tx", "on")
        drift = json.loads(mesh_push("status", "-i", str(inv), "--json").stdout)
        rho = next(h for h in drift["hosts"] if h["name"] == "rho")
        assert "wire pi0 tx checksumming on, planned off" in rho["reasons"], rho["reasons"]
        mesh_push("up", "-i", str(inv), "--yes", check=True)
        assert "tx-checksumming: off" in lab_exec(LAB, "rho", "ethtool", "-k", "pi0").stdout

        # A reboot comes back through mesh-push's boot unit.
        mesh_push("lab", "reboot", "--name", LAB, "epsilon", check=True)
        healthy(inv, 90)

        # Handed back: running, unmarked, no boot unit; then taken over again.
        pings = pings_all()
        mesh_push("down", "-i", str(inv), "--keep", "--yes", check=True)
        assert lab_exec(LAB, "rho", "cat", "/sys/class/net/wg0/ifalias").stdout.strip() == ""
        again = mesh_push("up", "-i", str(inv), "--adopt", "--yes")
        lost = pings.stop()
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr
        print("lost echoes per pair during down --keep and up --adopt:", lost)
        assert not any(lost.values()), lost
        healthy(inv)

        # Every key pair rotated at once (issue 33): each host switches, then its peers hand
        # its addresses to the new key (engine/handover.py). At most one echo per pair lost.
        pings = pings_all()
        rotated = mesh_push("rotate-keys", "-i", str(inv), "--yes")
        lost = pings.stop()
        assert rotated.returncode == 0, rotated.stdout[-3000:] + rotated.stderr
        print("lost echoes per pair during rotate-keys of every host:", lost)
        assert all(n <= 1 for n in lost.values()), lost
        healthy(inv)

        mesh_push("down", "-i", str(inv), "--yes", check=True)
        assert lab_exec(LAB, "rho", "ip", "link", "show", "wg0").returncode != 0
