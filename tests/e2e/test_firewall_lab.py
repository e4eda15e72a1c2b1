"""Firewalls (issue 35, docs/hosts.md#firewall): on lab hosts whose input policy is drop (SSH
and replies let in, as a cloud image's nftables does), `up`'s verification names the wires
that stay dark; with the rules docs/hosts.md gives for the mode (read from it, so the page is
what is tested), the mesh is healthy again. Both modes. Needs root; under CI=true it must
run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import HOSTS, MODES, ROOT, lab_exec, lab_inventory, lab_up, mesh_push

LABS = {"stp": labs.lab("mpfw"), "evpn": labs.lab("mpfe")}  # tests/labs.py
TABLE = "mesh_push_test_input"  # the test's own table: it stands for the host's firewall
DOC_PORT, LAB_PORT = 51820, 56560  # the docs' default, inventory/lab*.yaml's


def documented(mode: str) -> list[str]:
    """The nftables rules docs/hosts.md gives for `mode`, comments dropped."""
    text = (ROOT / "docs" / "hosts.md").read_text()
    block = text.split(f"<!-- nft {mode} -->\n```\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def for_the_lab(rules: list[str], top_vni: int) -> list[str]:
    """The documented rules with the lab's port (the docs use the default)."""
    out = []
    for rule in rules:
        rule = rule.replace(f"{DOC_PORT + 1}-51999", f"{LAB_PORT + 1}-{LAB_PORT + top_vni}")
        out.append(rule.replace(str(DOC_PORT), str(LAB_PORT)))
    return out


def firewall(lab: str, rules: list[str]) -> None:
    """Every host's input policy drop, letting in SSH, replies and `rules` (replaced whole)."""
    table = "\n".join(
        [
            f"table inet {TABLE} {{",
            "  chain input {",
            "    type filter hook input priority 0; policy drop;",
            "    ct state established,related accept",
            '    iifname "lo" accept',
            "    tcp dport 22 accept",
            *(f"    {rule}" for rule in rules),
            "  }",
            "}",
        ]
    )
    script = f"nft delete table inet {TABLE} 2>/dev/null; nft -f - <<'EOF'\n{table}\nEOF"
    for host in HOSTS:
        done = lab_exec(lab, host, "sh", "-c", script)
        assert done.returncode == 0, (host, done.stderr)


def unhealthy_within(inv: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while mesh_push("status", "-i", str(inv), "--json").returncode == 0:
        assert time.monotonic() < deadline, "the mesh stayed healthy behind a drop policy"
        time.sleep(1)


@pytest.mark.parametrize("mode", MODES)
def test_a_default_deny_host_needs_the_documented_rules(tmp_path: Path, mode: str) -> None:
    require_root()
    lab, net = LABS[mode]
    inv = lab_inventory(tmp_path / "mesh.yaml", lab, net, mode)
    rules = documented(mode)
    assert rules, f"docs/hosts.md gives no nftables rules for {mode}"
    with lab_up(lab, inv):
        plan = json.loads(mesh_push("plan", "-i", str(inv), "--json", check=True).stdout)
        top_vni = max(lk["vni"] for lk in plan["links"])
        mesh_push("up", "-i", str(inv), "--yes", "--json", check=True)

        firewall(lab, [])
        unhealthy_within(inv, 60)
        if mode == "stp":
            dark = mesh_push("up", "-i", str(inv), "--yes", "--json")
            assert dark.returncode == 1, dark.stdout + dark.stderr
            problems = json.loads(dark.stdout)["verify"]["problems"]
            wires = {f"{a}–{b}" for a in HOSTS for b in HOSTS if a != b}
            assert any(w in p for w in wires for p in problems), problems  # wires, by name
        else:
            # The same verdict, without waiting out evpn's 60 s verify bound: links of
            # the dark mesh have their problems (the suite's time).
            dark = json.loads(mesh_push("status", "-i", str(inv), "--json").stdout)
            assert any(lk["problems"] for lk in dark["links"]), dark["links"]

        firewall(lab, for_the_lab(rules, top_vni))
        up = mesh_push("up", "-i", str(inv), "--yes", "--json")
        assert up.returncode == 0, up.stdout + up.stderr
        assert json.loads(up.stdout)["verify"]["ok"]
        status = mesh_push("status", "-i", str(inv), "--json")
        assert status.returncode == 0, status.stdout
