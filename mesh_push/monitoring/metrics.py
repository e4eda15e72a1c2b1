"""The mesh's health as Prometheus metrics, from what `status` gathered and the judge decided.
Pure: the textfile's write and the HTTP server (serve.py) are the only I/O.

Every metric and label is documented in docs/monitoring.md; keep the two in step. Label
values are either names of the inventory or chosen here from a fixed set: nothing a host
printed becomes a label value unless it has the strict form of a bridge id (see `_root`), and
prometheus_client escapes whatever does (tests/test_metrics.py checks hostile values)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from mesh_push.modes.judge import Judgement, root_seen
from mesh_push.modes.plan import Plan

PREFIX = "mesh_push_"
# The 802.1D port states Linux reports (brctl and iproute2 spell them alike).
STP_STATES = ("disabled", "listening", "learning", "forwarding", "blocking")
BRIDGE_ID = re.compile(r"[0-9a-f]{4}\.[0-9a-f]{12}")


@dataclass(frozen=True)
class Snapshot:
    """One gather, judged: what the metrics are made of."""

    plan: Plan
    judgement: Judgement
    duration_s: float  # connect, the one command per host, judge
    finished: float  # unix time the gather ended


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def _bit(flag: bool | None) -> float:
    return 1.0 if flag else 0.0


def _root(p: Plan, seen: str | None) -> str:
    """A host of the inventory by name; a foreign bridge by its id, only if it has a bridge
    id's form (the text came from the host); anything else is `unknown`."""
    if seen is None:
        return "unknown"
    if seen in {hp.name for hp in p.hosts} or BRIDGE_ID.fullmatch(seen):
        return seen
    return "unknown"


def families(s: Snapshot) -> list[Metric]:
    p, j = s.plan, s.judgement
    mesh = p.mesh.name
    m = [mesh]

    healthy = _gauge("mesh_healthy", "1 when the judge finds the whole mesh healthy", ["mesh"])
    healthy.add_metric(m, _bit(j.healthy))
    tree = _gauge(
        "tree_matches_plan",
        "1 when the root and every port's STP state are the planned ones, 0 when they differ "
        "(absent while an end cannot be read)",
        ["mesh"],
    )
    if j.tree_matches_plan is not None:
        tree.add_metric(m, _bit(j.tree_matches_plan))
    duration = _gauge(
        "gather_duration_seconds",
        "how long the last gather took: connect, one command per host, judge",
        ["mesh"],
    )
    duration.add_metric(m, s.duration_s)
    when = _gauge("gather_timestamp_seconds", "unix time the last gather ended", ["mesh"])
    when.add_metric(m, s.finished)

    reachable = _gauge("host_reachable", "1 when the host answered the gather", ["mesh", "host"])
    host_ok = _gauge(
        "host_healthy",
        "1 when the judge finds the host healthy (0: unhealthy or unreachable)",
        ["mesh", "host"],
    )
    root = _gauge(
        "bridge_root_info",
        "the STP root the host's bridge sees, as label root: a host's name, a foreign "
        "bridge's id, or unknown",
        ["mesh", "host", "root"],
    )
    root_ok = _gauge(
        "bridge_root_matches_plan", "1 when the host sees the planned root", ["mesh", "host"]
    )
    peer_labels = ["mesh", "host", "peer"]
    age = _gauge(
        "peer_handshake_age_seconds",
        "seconds since the latest WireGuard handshake with the peer (+Inf: none yet)",
        peer_labels,
    )
    psk = _gauge(
        "peer_preshared_key",
        "1 when the host's WireGuard has a pre-shared key for the peer, 0 when it has none "
        "(never the key)",
        peer_labels,
    )
    # `_total` is added by prometheus_client to a counter's samples.
    rx = CounterMetricFamily(
        PREFIX + "peer_received_bytes",
        "bytes received from the peer over WireGuard",
        labels=peer_labels,
    )
    tx = CounterMetricFamily(
        PREFIX + "peer_sent_bytes", "bytes sent to the peer over WireGuard", labels=peer_labels
    )
    planned_root = p.tree.expected.root
    for hp in p.hosts:
        v = j.hosts.get(hp.name)
        if v is None:  # outside the judge's scope
            continue
        labels = [mesh, hp.name]
        reachable.add_metric(labels, _bit(v.reachable))
        host_ok.add_metric(labels, _bit(v.healthy))
        st = v.state
        if st is None:
            continue  # unreachable: no figure is better than a stale one
        if p.underlay is None:  # an evpn bridge has no spanning tree
            seen = root_seen(p, st)
            root.add_metric([*labels, _root(p, seen)], 1.0)
            root_ok.add_metric(labels, _bit(seen == planned_root))
        for pe in hp.peers:
            key = pe.public_key or ""
            when_s = st.handshake_age(key) if key else None
            age.add_metric([*labels, pe.name], math.inf if when_s is None else when_s)
            if (fingerprint := st.psks.get(key)) is not None:
                psk.add_metric([*labels, pe.name], _bit(fingerprint != "none"))
            if key in st.transfer:
                got, sent = st.transfer[key]
                rx.add_metric([*labels, pe.name], got)
                tx.add_metric([*labels, pe.name], sent)

    return [
        healthy,
        tree,
        duration,
        when,
        reachable,
        host_ok,
        root,
        root_ok,
        age,
        psk,
        rx,
        tx,
        *_wires(p, j),
    ]


def _wires(p: Plan, j: Judgement) -> list[Metric]:
    port_labels = ["mesh", "host", "peer", "wire"]
    state = _gauge(
        "port_stp_state",
        "1 for the STP state the bridge port (the wire's end on host) is in, 0 for the others",
        [*port_labels, "state"],
    )
    planned = _gauge(
        "port_stp_matches_plan",
        "1 when the port forwards or blocks as planned (0: the other, still settling, or missing)",
        port_labels,
    )
    wire_ok = _gauge(
        "wire_healthy", "1 when the judge finds no problem with the wire", ["mesh", "wire"]
    )
    mesh = p.mesh.name
    for w in j.wires:
        a, b = w["hosts"]
        wire = f"{a}-{b}"
        wire_ok.add_metric([mesh, wire], _bit(not w["problems"]))
        for here, there in ((a, b), (b, a)):
            end = w["ends"].get(here)
            if end is None:  # that end could not be read
                continue
            labels = [mesh, here, there, wire]
            if "stp_state" not in end:  # evpn mode
                continue
            for name in STP_STATES:
                state.add_metric([*labels, name], _bit(end["stp_state"] == name))
            planned.add_metric(labels, _bit(end["stp_state"] == end["planned_stp_state"]))
    return [state, planned, wire_ok]


class Latest(Collector):
    """Whatever families were set last. A refresh swaps the whole list at once, so a scrape
    sees one gather, never half of two."""

    def __init__(self, fams: Iterable[Metric] = ()) -> None:
        self._families = list(fams)

    def set(self, fams: Iterable[Metric]) -> None:
        self._families = list(fams)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def registry(latest: Latest) -> CollectorRegistry:
    # Without auto_describe the registry does not call collect() at registration.
    reg = CollectorRegistry(auto_describe=False)
    reg.register(latest)
    return reg
