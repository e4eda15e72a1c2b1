"""stp mode's metric families: the tree against the plan, the root each bridge sees, each
wire end's STP state (docs/monitoring.md). Pure."""

from __future__ import annotations

import re

from prometheus_client.core import Metric

from mesh_push.modes.base import Plan
from mesh_push.modes.families import bit, gauge
from mesh_push.modes.judgement import Judgement
from mesh_push.modes.stp.judge import StpJudgement, root_seen
from mesh_push.modes.stp.plan import StpPlan, own

# The 802.1D port states Linux reports (brctl and iproute2 spell them alike).
STP_STATES = ("disabled", "listening", "learning", "forwarding", "blocking")
BRIDGE_ID = re.compile(r"[0-9a-f]{4}\.[0-9a-f]{12}")


def _root(p: StpPlan, seen: str | None) -> str:
    """A host of the inventory by name; a foreign bridge by its id, only if it has a bridge
    id's form (the text came from the host); anything else is `unknown`."""
    if seen is None:
        return "unknown"
    if seen in {hp.name for hp in p.hosts} or BRIDGE_ID.fullmatch(seen):
        return seen
    return "unknown"


def families(plan: Plan, j: Judgement) -> list[Metric]:
    p = own(plan)
    assert isinstance(j, StpJudgement)
    mesh = p.mesh.name
    tree = gauge(
        "tree_matches_plan",
        "1 when the root and every port's STP state are the planned ones, 0 when they differ "
        "(absent while an end cannot be read)",
        ["mesh"],
    )
    if j.tree_matches_plan is not None:
        tree.add_metric([mesh], bit(j.tree_matches_plan))
    root = gauge(
        "bridge_root_info",
        "the STP root the host's bridge sees, as label root: a host's name, a foreign "
        "bridge's id, or unknown",
        ["mesh", "host", "root"],
    )
    root_ok = gauge(
        "bridge_root_matches_plan", "1 when the host sees the planned root", ["mesh", "host"]
    )
    planned_root = p.tree.expected.root
    for hp in p.hosts:
        v = j.hosts.get(hp.name)
        if v is None or v.state is None:
            continue  # outside the judge's scope, or unreachable: no figure beats a stale one
        seen = root_seen(p, v.state)
        root.add_metric([mesh, hp.name, _root(p, seen)], 1.0)
        root_ok.add_metric([mesh, hp.name], bit(seen == planned_root))

    port_labels = ["mesh", "host", "peer", "wire"]
    state = gauge(
        "port_stp_state",
        "1 for the STP state the bridge port (the wire's end on host) is in, 0 for the others",
        [*port_labels, "state"],
    )
    planned = gauge(
        "port_stp_matches_plan",
        "1 when the port forwards or blocks as planned (0: the other, still settling, or missing)",
        port_labels,
    )
    for w in j.wires:
        a, b = w["hosts"]
        for here, there in ((a, b), (b, a)):
            end = w["ends"].get(here)
            if end is None:  # that end could not be read
                continue
            labels = [mesh, here, there, f"{a}-{b}"]
            for name in STP_STATES:
                state.add_metric([*labels, name], bit(end["stp_state"] == name))
            planned.add_metric(labels, bit(end["stp_state"] == end["planned_stp_state"]))
    return [tree, root, root_ok, state, planned]
