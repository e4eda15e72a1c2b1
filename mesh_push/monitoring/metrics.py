"""The mesh's health as Prometheus metrics, from what `status` gathered and the judge decided:
the families both modes have, then the mode's own (Mode.metrics). Pure: the textfile's write
and the HTTP server (serve.py) are the only I/O.

Every metric and label is documented in docs/monitoring.md; keep the two in step. Label
values are either names of the inventory or chosen from a fixed set: nothing a host printed
becomes a label value unless it has a strict form, and prometheus_client escapes whatever
does (tests/unit/monitoring/test_metrics.py checks hostile values)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from mesh_push import modes
from mesh_push.host.state import WgIf
from mesh_push.modes.base import Plan
from mesh_push.modes.families import PREFIX, bit, gauge
from mesh_push.modes.judgement import Judgement


@dataclass(frozen=True)
class Snapshot:
    """One gather, judged: what the metrics are made of."""

    plan: Plan
    judgement: Judgement
    duration_s: float  # connect, the one command per host, judge
    finished: float  # unix time the gather ended


def families(s: Snapshot) -> list[Metric]:
    p, j = s.plan, s.judgement
    mesh = p.mesh.name
    m = [mesh]

    healthy = gauge("mesh_healthy", "1 when the judge finds the whole mesh healthy", ["mesh"])
    healthy.add_metric(m, bit(j.healthy))
    duration = gauge(
        "gather_duration_seconds",
        "how long the last gather took: connect, one command per host, judge",
        ["mesh"],
    )
    duration.add_metric(m, s.duration_s)
    when = gauge("gather_timestamp_seconds", "unix time the last gather ended", ["mesh"])
    when.add_metric(m, s.finished)

    reachable = gauge("host_reachable", "1 when the host answered the gather", ["mesh", "host"])
    host_ok = gauge(
        "host_healthy",
        "1 when the judge finds the host healthy (0: unhealthy or unreachable)",
        ["mesh", "host"],
    )
    peer_labels = ["mesh", "host", "peer"]
    age = gauge(
        "peer_handshake_age_seconds",
        "seconds since the latest WireGuard handshake with the peer (+Inf: none yet)",
        peer_labels,
    )
    psk = gauge(
        "peer_preshared_key",
        "1 when the host's WireGuard has a pre-shared key for the peer, 0 when it has none "
        "(never the key)",
        peer_labels,
    )
    key_age = gauge(
        "key_age_seconds",
        "seconds since the host's private key was made, installed or rotated (its file's time)",
        ["mesh", "host"],
    )
    psk_age = gauge(
        "psk_age_seconds",
        "seconds since the host's pre-shared key for the peer was made or installed",
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
    for hp in p.hosts:
        v = j.hosts.get(hp.name)
        if v is None:  # outside the judge's scope
            continue
        labels = [mesh, hp.name]
        reachable.add_metric(labels, bit(v.reachable))
        host_ok.add_metric(labels, bit(v.healthy))
        st = v.state
        if st is None:
            continue  # unreachable: no figure is better than a stale one
        if (key_s := st.key_age()) is not None:
            key_age.add_metric(labels, key_s)
        for iface in hp.wg:
            w = st.wg.get(iface.name) or WgIf()
            for pe in iface.peers:
                key = pe.public_key or ""
                when_s = st.handshake_age(iface.name, key) if key else None
                age.add_metric([*labels, pe.name], math.inf if when_s is None else when_s)
                if (fingerprint := w.psks.get(key)) is not None:
                    psk.add_metric([*labels, pe.name], bit(fingerprint != "none"))
                if pe.psk and (psk_s := st.psk_age(pe.name)) is not None:
                    psk_age.add_metric([*labels, pe.name], psk_s)
                if key in w.transfer:
                    got, sent = w.transfer[key]
                    rx.add_metric([*labels, pe.name], got)
                    tx.add_metric([*labels, pe.name], sent)

    link_ok = gauge(
        "wire_healthy",
        "1 when the judge finds no problem with the link (stp: its wire)",
        ["mesh", "wire"],
    )
    for judged in j.wires:
        a, b = judged["hosts"]
        link_ok.add_metric([mesh, f"{a}-{b}"], bit(not judged["problems"]))

    shared = [healthy, duration, when, reachable, host_ok, age, psk, rx, tx, link_ok]
    shared += [key_age, psk_age]
    return shared + modes.of(p.mesh).metrics(p, j)


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
