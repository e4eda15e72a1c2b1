"""examples/monitoring/: the alert rules pass `promtool check rules` and fire when they should
(`promtool test rules`), the Grafana dashboard is JSON whose queries name only metrics that
mesh-push exports, and the systemd unit's command line is one `mesh-push` accepts."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mesh_push import cli
from mesh_push.monitoring import metrics
from tests import kit
from tests.kit import ROOT
from tests.unit.modes.test_both_modes import KEYS, healthy_states, mesh_of
from tests.unit.monitoring.test_metrics import promtool, snapshot

EXAMPLES = ROOT / "examples/monitoring"
METRIC = re.compile(r"\bmesh_push_[a-z_]+\b")


def exported() -> set[str]:
    """Every sample name the metrics have in either mode (a counter's carry `_total`)."""
    names = {x.name for fam in metrics.families(snapshot()) for x in fam.samples}
    with tempfile.TemporaryDirectory() as tmp:
        mesh = mesh_of("evpn", Path(tmp), "  psk: true\n")
        p = kit.plan(mesh, KEYS)
        evpn = metrics.Snapshot(p, kit.judge(p, healthy_states(p)), 0.1, 1.0)
    return names | {x.name for fam in metrics.families(evpn) for x in fam.samples}


def run_promtool(*args: str) -> None:
    res = subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_alert_rules_pass_promtool() -> None:
    run_promtool("check", "rules", str(EXAMPLES / "alerts.yml"))


def test_alert_rules_fire_when_they_should() -> None:
    run_promtool("test", "rules", "tests/data/monitoring/alerts_test.yml")


def test_alert_rules_cover_the_issue_and_name_real_metrics() -> None:
    groups = yaml.safe_load((EXAMPLES / "alerts.yml").read_text())["groups"]
    exprs = {r["alert"]: r["expr"] for g in groups for r in g["rules"]}
    assert "mesh_push_mesh_healthy == 0" in exprs["MeshPushMeshUnhealthy"]
    assert "mesh_push_peer_handshake_age_seconds > 180" in exprs["MeshPushHandshakeStale"]
    assert "mesh_push_tree_matches_plan == 0" in exprs["MeshPushTreeDiffersFromPlan"]
    # evpn mode's routing: BGP sessions, EVPN routes, OSPF adjacencies, BFD sessions.
    assert "mesh_push_bgp_session_up == 0" in exprs["MeshPushBgpSessionDown"]
    assert "mesh_push_bgp_evpn_routes == 0" in exprs["MeshPushEvpnRoutesMissing"]
    assert "mesh_push_ospf_adjacency_full == 0" in exprs["MeshPushOspfAdjacencyDown"]
    assert "mesh_push_bfd_session_up == 0" in exprs["MeshPushBfdSessionDown"]
    named = {m for e in exprs.values() for m in METRIC.findall(e)}
    assert named <= exported(), named - exported()


def _exprs(panels: list[dict[str, Any]]) -> list[str]:
    out = []
    for p in panels:
        out += [t["expr"] for t in p.get("targets", [])]
        out += _exprs(p.get("panels", []))  # rows
    return out


def test_the_dashboard_is_json_and_queries_real_metrics() -> None:
    dash = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    exprs = _exprs(dash["panels"])
    assert exprs and all(METRIC.search(e) for e in exprs)
    named = {m for e in exprs for m in METRIC.findall(e)}
    assert named <= exported(), named - exported()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variable = dash["templating"]["list"][0]
    assert variable["name"] == "mesh" and all('mesh="$mesh"' in e for e in exprs)


def test_the_systemd_unit_runs_a_valid_serve_command() -> None:
    text = (EXAMPLES / "mesh-push-exporter.service").read_text()
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[0].endswith("/mesh-push")
    args = cli.build_parser().parse_args(argv[1:])
    assert args.command == "status" and args.serve == ("127.0.0.1", 9105)
    assert args.interval and not args.json and args.watch is None
    assert "RestartPreventExitStatus=2" in text
