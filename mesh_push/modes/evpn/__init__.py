"""Mode evpn: one WireGuard interface per link, routed by the mesh's own FRR instance (OSPF with
BFD underneath, BGP EVPN on top), and one VXLAN device in each host's bridge (docs/evpn.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from mesh_push import __version__
from mesh_push.core.model import Evpn, Link, Mesh
from mesh_push.core.problems import Problems
from mesh_push.core.section import Draft, Section
from mesh_push.host.state import HostState
from mesh_push.modes import reports, scripts
from mesh_push.modes.base import HostPlan, Plan
from mesh_push.modes.evpn import judge, observe, settings
from mesh_push.modes.evpn import plan as evpn_plan
from mesh_push.modes.evpn.plan import EvpnHost, mesh_routes, own, vxlan_name
from mesh_push.modes.judgement import Judgement, Reconvergence
from mesh_push.modes.mode import Mode
from mesh_push.modes.reports import Report
from mesh_push.modes.topology import Edge

if TYPE_CHECKING:
    import graphviz
    import jinja2
    from prometheus_client.core import Metric

# OSPF adjacencies (hellos every second), then BGP sessions (retried every 5 s), then the EVPN
# routes: seconds, with room for a loaded host.
CONVERGENCE_S = 60.0


class EvpnMode(Mode):
    name = "evpn"
    host_template = "evpn/host.sh.j2"
    gather_template = "evpn/gather.sh.j2"

    def read_settings(self, sec: Section) -> Evpn:
        return settings.read(sec)

    def check(self, evpn: Any, draft: Draft, problems: Problems) -> None:
        settings.check(evpn, draft, problems)

    def plan(
        self,
        mesh: Mesh,
        public_keys: Mapping[str, str],
        psk_fps: Mapping[Link, str | None] | None = None,
    ) -> Plan:
        return evpn_plan.build(mesh, public_keys, psk_fps)

    def leave_out(self, hp: HostPlan, names: set[str]) -> HostPlan:
        assert isinstance(hp, EvpnHost)
        links = tuple(end for end in hp.links if end.peer not in names)
        return dataclasses.replace(hp, wg=scripts.without_peers(hp, names), links=links)

    def render(self, plan: Plan, hp: HostPlan, env: jinja2.Environment, **values: Any) -> str:
        mesh = plan.mesh
        frr = {
            "version": __version__,
            "mesh": mesh,
            "h": hp,
            "e": hp,
            "routes": mesh_routes(mesh),
        }
        return env.get_template(self.host_template).render(
            **values,
            e=hp,
            vx=vxlan_name(mesh),
            frr_conf=env.get_template("evpn/frr.conf.j2").render(**frr),
            frr_daemons=env.get_template("evpn/frr-daemons.j2").render(**frr),
        )

    def interfaces(self, plan: Plan, hp: HostPlan) -> list[str]:
        assert isinstance(hp, EvpnHost)
        return judge.interfaces(own(plan), hp)

    def parse_state(
        self, mesh: Mesh, sections: dict[str, str], links: list[dict[str, Any]]
    ) -> object:
        return observe.parse(sections)

    def judge(
        self,
        plan: Plan,
        states: dict[str, HostState],
        errors: dict[str, str] | None = None,
        scope: Collection[str] | None = None,
    ) -> Judgement:
        return judge.judge(plan, states, errors, scope)

    def reconvergence(self, plan: Plan, states: dict[str, HostState]) -> Reconvergence:
        """No spanning tree: a changed OSPF cost moves a route at once, and BGP keeps its
        sessions. (A link that is new or gone shows in the changes themselves.)"""
        return Reconvergence(0, [])

    def convergence_bound(self, mesh: Mesh) -> float:
        return CONVERGENCE_S

    def poll_interval(self, mesh: Mesh) -> float:
        return 1.0

    def ping_peers(self, plan: Plan, name: str) -> list[str]:
        # Every host is one hop away on the segment.
        return [h for h in own(plan).underlay.hosts if h != name]

    def plan_json(self, plan: Plan, cut: Edge | None, all_pairs: bool) -> dict[str, Any]:
        from mesh_push.modes.evpn import report

        return report.plan_json(plan, cut, all_pairs)

    def plan_changes(self, old: Plan, new: Plan) -> list[str]:
        pairs = [self.plan_json(p, None, True)["evpn"]["pairs"] for p in (old, new)]
        return reports.pair_changes(*pairs)

    def plan_report(self, plan: Plan, cut: Edge | None, all_pairs: bool) -> Report:
        from mesh_push.modes.evpn import report

        return report.plan_report(plan, cut, all_pairs)

    def status_json(self, plan: Plan, j: Judgement) -> dict[str, Any]:
        from mesh_push.modes.evpn import report

        return report.status_json(plan, j)

    def status_report(self, plan: Plan, j: Judgement) -> Report:
        from mesh_push.modes.evpn import report

        return report.status_report(plan, j)

    def metrics(self, plan: Plan, j: Judgement) -> list[Metric]:
        from mesh_push.modes.evpn import metrics

        return metrics.families(plan, j)

    def graph(self, plan: Plan, j: Judgement | None, cut: Edge | None) -> graphviz.Graph:
        from mesh_push.modes.evpn import graph

        return graph.graph(plan, j, cut)
