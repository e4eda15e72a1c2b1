"""What both modes plan, and the one interface through which the rest of mesh-push uses a mode
(docs/design.md#modes). Pure.

A host's plan in either mode is the same at its edges: a wave, its bridge and address, and its
WireGuard interfaces with their peers (stp: one interface with a peer per link; evpn: one
interface per link). What lies between, a spanning tree or a routed underlay, is the mode's.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING, Any, ClassVar

from mesh_push.core.model import Host, Link, Mesh
from mesh_push.modes.topology import Edge

if TYPE_CHECKING:
    import graphviz
    import jinja2
    from prometheus_client.core import Metric

    from mesh_push.core.problems import Problems
    from mesh_push.core.section import Draft, Section
    from mesh_push.host.state import HostState
    from mesh_push.modes.judgement import Judgement
    from mesh_push.modes.reports import Report


@dataclass(frozen=True)
class Peer:
    """One WireGuard peer of one interface."""

    name: str
    public_key: str | None
    allowed_ip: IPv4Interface | IPv4Network  # stp: the peer's address; evpn: everything
    endpoint: str | None  # only static peers can be dialled
    keepalive: int | None  # set on the side of a link that has no static address
    # The DNS name in `endpoint`, when the peer is known by name: the host resolves it at
    # apply time and re-resolves it every `mesh.wg_reresolve` seconds.
    endpoint_name: str | None = None
    # A pre-shared key on this link: the file the host keeps it in, and the fingerprint
    # (keys.psk_fingerprint) of the key that belongs there, where the controller knows it.
    psk_file: str | None = None
    psk_fp: str | None = None
    port: int = 0  # the port it listens on (its endpoint's, for a peer known by name)
    # Its address at the far end of the tunnel (`measure` pings it there).
    address: IPv4Address | None = None

    @property
    def psk(self) -> bool:
        return self.psk_file is not None


@dataclass(frozen=True)
class WgIface:
    """One WireGuard interface of a host and its peers."""

    name: str
    port: int
    address: IPv4Interface
    peers: tuple[Peer, ...]
    # Routed (evpn): forwarding and multicast on, for OSPF's hellos and transit traffic.
    routed: bool = False


@dataclass(frozen=True)
class HostPlan:
    host: Host
    wave: int
    public_key: str | None
    bridge_address: IPv4Interface
    bridge_mac: str
    wg: tuple[WgIface, ...]

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def peers(self) -> tuple[Peer, ...]:
        """Every peer of every interface: one per link."""
        return tuple(p for i in self.wg for p in i.peers)

    @property
    def named_peers(self) -> tuple[tuple[WgIface, Peer], ...]:
        return tuple((i, p) for i in self.wg for p in i.peers if p.endpoint_name is not None)

    def peer(self, name: str) -> tuple[WgIface, Peer] | None:
        """The interface and peer of the link to host `name`."""
        return next(((i, p) for i in self.wg for p in i.peers if p.name == name), None)


@dataclass(frozen=True)
class Plan:
    mesh: Mesh
    hosts: tuple[HostPlan, ...]
    waves: tuple[tuple[str, ...], ...]

    def host(self, name: str) -> HostPlan:
        for hp in self.hosts:
            if hp.name == name:
                return hp
        raise KeyError(name)


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
        """This mode's part of a host's state (HostState.mode), from the gather's sections and
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


def address(net: IPv4Network, host: Host) -> IPv4Address:
    return net.network_address + host.number
