"""stp mode's part of a host's state: the bridge's spanning tree as `brctl showstp` tells it,
or, where brctl is not installed, `ip -d link` (the same facts); and the root from sysfs
(iproute2 can print the bridge's own id as the root). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mesh_push.core.reported import whole


@dataclass
class StpPort:
    name: str
    number: int
    state: str
    port_id: str = ""
    designated_root: str = ""
    designated_bridge: str = ""
    path_cost: int = 0


@dataclass
class StpBridge:
    name: str
    bridge_id: str = ""
    designated_root: str = ""
    root_port: int = 0
    path_cost: int = 0
    ports: dict[str, StpPort] = field(default_factory=dict)


def _pairs(line: str) -> list[tuple[str, str]]:
    # brctl separates columns with tabs (and pads values with spaces); old builds used spaces.
    cells = [c for c in re.split(r"\s*\t\s*|\s{2,}", line.strip()) if c]
    return [(cells[i], cells[i + 1]) for i in range(0, len(cells) - 1, 2)]


def parse_brctl_showstp(text: str) -> StpBridge | None:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].startswith(" ") or "can't" in lines[0]:
        return None
    bridge = StpBridge(lines[0].strip())
    port: StpPort | None = None
    for line in lines[1:]:
        head = re.match(r"^(\S+) \((\d+)\)$", line)
        if head:
            port = StpPort(head.group(1), whole(head.group(2), "brctl port number"), "")
            bridge.ports[port.name] = port
            continue
        for key, value in _pairs(line):
            if port is None:
                if key == "bridge id":
                    bridge.bridge_id = value
                elif key == "designated root":
                    bridge.designated_root = value
                elif key == "root port":
                    bridge.root_port = whole(value, "brctl root port")
                elif key == "path cost":
                    bridge.path_cost = whole(value, "brctl path cost")
            elif key == "state":
                port.state = value
            elif key == "port id":
                port.port_id = value
            elif key == "designated root":
                port.designated_root = value
            elif key == "designated bridge":
                port.designated_bridge = value
            elif key == "path cost":
                port.path_cost = whole(value, "brctl port path cost")
    return bridge


def normalise_bridge_id(text: str) -> str:
    """sysfs says 1000.020ddbc6c1d8, brctl 1000.020ddbc6c1d8, iproute2 1000.2:d:db:c6:c1:d8."""
    prio, _, mac = text.strip().partition(".")
    if ":" in mac:
        mac = "".join(f"{int(x, 16):02x}" for x in mac.split(":"))
    return f"{prio.lower()}.{mac.lower()}" if mac else ""


def stp_from_ip_json(links: list[dict[str, Any]], bridge: str) -> StpBridge | None:
    """The same facts as brctl showstp, from `ip -j -d link` where brctl is not installed."""
    br = next((x for x in links if x.get("ifname") == bridge), None)
    if br is None:
        return None
    info = br.get("linkinfo", {}).get("info_data", {})
    out = StpBridge(
        bridge,
        normalise_bridge_id(str(info.get("bridge_id", ""))),
        normalise_bridge_id(str(info.get("root_id", ""))),
        whole(info.get("root_port", 0), "root_port"),
        whole(info.get("root_path_cost", 0), "root_path_cost"),
    )
    for x in links:
        if x.get("master") != bridge:
            continue
        slave = x.get("linkinfo", {}).get("info_slave_data", {})
        out.ports[x["ifname"]] = StpPort(
            x["ifname"],
            whole(str(slave.get("no", "0")), "port no", 16),
            str(slave.get("state", "")),
            str(slave.get("id", "")).removeprefix("0x"),
            normalise_bridge_id(str(slave.get("root_id", ""))),
            normalise_bridge_id(str(slave.get("bridge_id", ""))),
            whole(slave.get("cost", 0), "port cost"),
        )
    return out


@dataclass
class StpSeen:
    """What the gather's stp part says (templates/stp/gather.sh.j2)."""

    stp: StpBridge | None
    root_id: str  # from sysfs


def parse(sections: dict[str, str], links: list[dict[str, Any]], bridge: str) -> StpSeen:
    stp = parse_brctl_showstp(sections.get("brctl", "")) or stp_from_ip_json(links, bridge)
    return StpSeen(stp, normalise_bridge_id(sections.get("bridge-root", "")))
