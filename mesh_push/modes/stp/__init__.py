"""Mode stp: one WireGuard interface per host with a peer per link, one VXLAN wire per link,
every wire a port of an 802.1D bridge, and the spanning tree planned and pinned (docs/stp.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from mesh_push.core.model import Link, Mesh, Stp
from mesh_push.core.problems import Problems
from mesh_push.core.section import Draft, Section
from mesh_push.host.state import HostState
from mesh_push.modes import reports, scripts
from mesh_push.modes.base import HostPlan, Plan
from mesh_push.modes.judgement import Judgement, Reconvergence
from mesh_push.modes.mode import Mode
from mesh_push.modes.reports import Report
from mesh_push.modes.stp import judge, observe, predict, settings
from mesh_push.modes.stp import plan as stp_plan
from mesh_push.modes.stp.plan import StpHost, own
from mesh_push.modes.topology import Edge

if TYPE_CHECKING:
    import graphviz
    import jinja2
    from prometheus_client.core import Metric


class StpMode(Mode):
    name = "stp"
    host_template = "stp/host.sh.j2"
    gather_template = "stp/gather.sh.j2"

    def read_settings(self, sec: Section) -> Stp:
        return settings.read(sec)

    def check(self, stp: Any, draft: Draft, problems: Problems) -> None:
        settings.check(stp, draft, problems)

    def plan(
        self,
        mesh: Mesh,
        public_keys: Mapping[str, str],
        psk_fps: Mapping[Link, str | None] | None = None,
    ) -> Plan:
        return stp_plan.build(mesh, public_keys, psk_fps)

    def leave_out(self, hp: HostPlan, names: set[str]) -> HostPlan:
        assert isinstance(hp, StpHost)
        wires = tuple(w for w in hp.wires if w.peer not in names)
        return dataclasses.replace(hp, wg=scripts.without_peers(hp, names), wires=wires)

    def render(self, plan: Plan, hp: HostPlan, env: jinja2.Environment, **values: Any) -> str:
        return env.get_template(self.host_template).render(**values)

    def interfaces(self, plan: Plan, hp: HostPlan) -> list[str]:
        assert isinstance(hp, StpHost)
        return judge.interfaces(own(plan), hp)

    def parse_state(
        self, mesh: Mesh, sections: dict[str, str], links: list[dict[str, Any]]
    ) -> object:
        return observe.parse(sections, links, mesh.bridge)

    def judge(
        self,
        plan: Plan,
        states: dict[str, HostState],
        errors: dict[str, str] | None = None,
        scope: Collection[str] | None = None,
    ) -> Judgement:
        return judge.judge(plan, states, errors, scope)

    def reconvergence(self, plan: Plan, states: dict[str, HostState]) -> Reconvergence:
        return predict.reconvergence(plan, states)

    def convergence_bound(self, mesh: Mesh) -> float:
        """Listening then learning (2 × forward_delay) after a root change is learnt (max_age),
        plus a hello or two of slack for the handshakes that BPDUs themselves trigger."""
        s = mesh.stp
        return s.max_age + 2 * s.forward_delay + 2 * s.hello + 5

    def poll_interval(self, mesh: Mesh) -> float:
        return max(0.5, mesh.stp.hello)  # STP moves no faster than its hello time

    def ping_peers(self, plan: Plan, name: str) -> list[str]:
        return [w.peer for w in own(plan).stp_host(name).wires]  # over the wires

    def plan_json(self, plan: Plan, cut: Edge | None, all_pairs: bool) -> dict[str, Any]:
        from mesh_push.modes.stp import report

        return report.plan_json(plan, cut, all_pairs)

    def plan_changes(self, old: Plan, new: Plan) -> list[str]:
        a, b = own(old), own(new)
        out = []
        if a.tree.expected.root != b.tree.expected.root:
            out.append(f"root: {a.tree.expected.root} → {b.tree.expected.root}")
        for here, there in sorted(a.tree.expected.blocking ^ b.tree.expected.blocking):
            now = "blocking" if (here, there) in b.tree.expected.blocking else "forwarding"
            was = "forwarding" if now == "blocking" else "blocking"
            out.append(f"{here}'s end of {here}–{there}: {was} → {now}")
        pairs = [self.plan_json(p, None, True)["tree"]["pairs"] for p in (a, b)]
        return out + reports.pair_changes(*pairs)

    def plan_report(self, plan: Plan, cut: Edge | None, all_pairs: bool) -> Report:
        from mesh_push.modes.stp import report

        return report.plan_report(plan, cut, all_pairs)

    def status_json(self, plan: Plan, j: Judgement) -> dict[str, Any]:
        from mesh_push.modes.stp import report

        return report.status_json(plan, j)

    def status_report(self, plan: Plan, j: Judgement) -> Report:
        from mesh_push.modes.stp import report

        return report.status_report(plan, j)

    def metrics(self, plan: Plan, j: Judgement) -> list[Metric]:
        from mesh_push.modes.stp import metrics

        return metrics.families(plan, j)

    def graph(self, plan: Plan, j: Judgement | None, cut: Edge | None) -> graphviz.Graph:
        from mesh_push.modes.stp import graph

        return graph.graph(plan, j, cut)
