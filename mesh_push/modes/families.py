"""Helpers for the modes' Prometheus metric families (Mode.metrics; docs/monitoring.md). Label
values are names of the inventory, or chosen from a fixed set: nothing a host printed becomes
a label value unless it has a strict form (stp: a bridge id). Pure."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

PREFIX = "mesh_push_"


def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def bit(flag: bool | None) -> float:
    return 1.0 if flag else 0.0
