"""The one interface through which the rest of mesh-push uses a mode (docs/design.md#modes):
everything that differs between stp and evpn is a method here. Pure."""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from mesh_push.core.model import Link, Mesh
from mesh_push.core.problems import Problems
from mesh_push.core.section import Draft, Section
from mesh_push.host.state import HostState
from mesh_push.modes.base import HostPlan, Plan
from mesh_push.modes.judgement import Judgement, Reconvergence
from mesh_push.modes.reports import Report
from mesh_push.modes.topology import Edge

if TYPE_CHECKING:
    import graphviz
    import jinja2
    from prometheus_client.core import Metric


class Mode(abc.ABC):
    """A way to join the hosts' bridges. Chosen once, from `mesh.mode` (modes.of); everything
    that differs between the modes is a method here."""

    name: ClassVar[str]
    # The templates of this mode's host script and of its part of the gather.
    host_template: ClassVar[str]
    gather_template: ClassVar[str]

    # ------------------------------------------------------------------ inventory
    @abc.abstractmethod
    def read_settings(self, sec: Section) -> object:
        """`mesh.<name>`, read whichever mode is chosen (problems go to sec.problems): the
        value of Mesh's field of that name."""

    @abc.abstractmethod
    def check(self, settings: Any, draft: Draft, problems: Problems) -> None:
        """What this mode needs of the rest of the inventory, when it is the one chosen."""

    # ------------------------------------------------------------------ plan and render
    @abc.abstractmethod
    def plan(
        self,
        mesh: Mesh,
        public_keys: Mapping[str, str],
        psk_fps: Mapping[Link, str | None] | None = None,
    ) -> Plan:
        """Everything every host must have. `psk_fps`: each link's pre-shared key by its
        fingerprint (keys.py); a link with `psk` left out has none yet. Without it, every link
        with `psk` has one, of an unknown fingerprint."""

    @abc.abstractmethod
    def leave_out(self, hp: HostPlan, names: set[str]) -> HostPlan:
        """`hp` without its links to the hosts `names` (their keys are not known yet)."""

    @abc.abstractmethod
    def render(self, plan: Plan, hp: HostPlan, env: jinja2.Environment, **values: Any) -> str:
        """The host script from `host_template` (values: what every host script gets;
        scripts.host_script is the way in)."""

    @abc.abstractmethod
    def interfaces(self, plan: Plan, hp: HostPlan) -> list[str]:
        """The names of the interfaces the host script makes on `hp`: none of them may be
        someone else's."""

    # ------------------------------------------------------------------ observe and judge
    @abc.abstractmethod
    def parse_state(
        self, mesh: Mesh, sections: dict[str, str], links: list[dict[str, Any]]
    ) -> object:
        """This mode's part of a host's state (HostState.mode_state), from the gather's sections and
        `ip -j -d addr show`."""

    @abc.abstractmethod
    def judge(
        self,
        plan: Plan,
        states: dict[str, HostState],
        errors: dict[str, str] | None = None,
        scope: Collection[str] | None = None,
    ) -> Judgement:
        """The one judge (modes/judgement.py): healthy, and why not."""

    @abc.abstractmethod
    def reconvergence(self, plan: Plan, states: dict[str, HostState]) -> Reconvergence:
        """`up --check`: what applying `plan` to hosts in `states` costs in traffic."""

    @abc.abstractmethod
    def convergence_bound(self, mesh: Mesh) -> float:
        """Seconds after an apply within which a healthy mesh has converged."""

    @abc.abstractmethod
    def poll_interval(self, mesh: Mesh) -> float:
        """Seconds between two polls while waiting for that."""

    @abc.abstractmethod
    def ping_peers(self, plan: Plan, name: str) -> list[str]:
        """The hosts whose bridge addresses `name` pings once healthy."""

    # ------------------------------------------------------------------ what users see
    @abc.abstractmethod
    def plan_json(self, plan: Plan, cut: Edge | None, all_pairs: bool) -> dict[str, Any]:
        """`plan --json`'s mode-specific part (docs/json.md)."""

    @abc.abstractmethod
    def plan_changes(self, old: Plan, new: Plan) -> list[str]:
        """What differs between two plans of the same hosts and links (`measure --diff`: new
        latencies): stp, the root and each wire end's planned state, then each pair's path
        and latency; evpn, each pair's path and latency."""

    @abc.abstractmethod
    def plan_report(self, plan: Plan, cut: Edge | None, all_pairs: bool) -> Report:
        """`plan` as tables and lines."""

    @abc.abstractmethod
    def status_json(self, plan: Plan, j: Judgement) -> dict[str, Any]:
        """`status --json` (docs/json.md)."""

    @abc.abstractmethod
    def status_report(self, plan: Plan, j: Judgement) -> Report:
        """`status` as tables and lines."""

    @abc.abstractmethod
    def metrics(self, plan: Plan, j: Judgement) -> list[Metric]:
        """This mode's metric families (docs/monitoring.md), beside the shared ones."""

    @abc.abstractmethod
    def graph(self, plan: Plan, j: Judgement | None, cut: Edge | None) -> graphviz.Graph:
        """The picture: planned (with `cut`, after losing that link), or as judged."""
