"""What a host has now: one shell round trip, then pure parsers. Never reads a private key:
only `wg show` fields that hold none (never `dump` or `showconf`)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

SECTION = re.compile(r"^=== (\S+)$")
STP_STATES = {
    "0": "disabled",
    "1": "listening",
    "2": "learning",
    "3": "forwarding",
    "4": "blocking",
}


def gather_command(wg: str, bridge: str) -> str:
    w, b = shlex.quote(wg), shlex.quote(bridge)
    parts = [
        "echo '=== hostname'; uname -n",
        "echo '=== now'; date +%s",
    ]
    for what in ("public-key", "listen-port", "latest-handshakes", "endpoints", "transfer",
                 "allowed-ips"):  # fmt: skip
        parts.append(f"echo '=== wg-{what}'; wg show {w} {what} 2>/dev/null")
    parts += [
        f"echo '=== brctl'; command -v brctl >/dev/null && brctl showstp {b} 2>/dev/null",
        "echo '=== ip-link'; ip -j -d link show",
        f"echo '=== bridge-root'; cat /sys/class/net/{b}/bridge/root_id 2>/dev/null",
        f"echo '=== bridge-id'; cat /sys/class/net/{b}/bridge/bridge_id 2>/dev/null",
        "echo '=== end'",
    ]
    return "; ".join(f"{{ {p}; }}" for p in parts) + "; true"


def sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = SECTION.match(line)
        if m:
            current = out.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def parse_wg_pairs(text: str) -> dict[str, str]:
    """`wg show IF latest-handshakes` and friends: one `PUBKEY<TAB>VALUE` line per peer."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition("\t")
        if key:
            out[key] = value.strip()
    return out


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
            port = StpPort(head.group(1), int(head.group(2)), "")
            bridge.ports[port.name] = port
            continue
        for key, value in _pairs(line):
            if port is None:
                if key == "bridge id":
                    bridge.bridge_id = value
                elif key == "designated root":
                    bridge.designated_root = value
                elif key == "root port":
                    bridge.root_port = int(value)
                elif key == "path cost":
                    bridge.path_cost = int(value)
            elif key == "state":
                port.state = value
            elif key == "port id":
                port.port_id = value
            elif key == "designated root":
                port.designated_root = value
            elif key == "designated bridge":
                port.designated_bridge = value
            elif key == "path cost":
                port.path_cost = int(value)
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
        int(info.get("root_port", 0)),
        int(info.get("root_path_cost", 0)),
    )
    for x in links:
        if x.get("master") != bridge:
            continue
        slave = x.get("linkinfo", {}).get("info_slave_data", {})
        out.ports[x["ifname"]] = StpPort(
            x["ifname"],
            int(str(slave.get("no", "0")), 16),
            str(slave.get("state", "")),
            str(slave.get("id", "")).removeprefix("0x"),
            normalise_bridge_id(str(slave.get("root_id", ""))),
            normalise_bridge_id(str(slave.get("bridge_id", ""))),
            int(slave.get("cost", 0)),
        )
    return out


@dataclass
class Link:
    name: str
    up: bool
    mtu: int
    kind: str
    vni: int | None = None
    master: str | None = None


@dataclass
class HostState:
    hostname: str
    now: int
    public_key: str | None
    listen_port: int | None
    handshakes: dict[str, int]  # public key → unix time, 0 = never
    endpoints: dict[str, str]
    transfer: dict[str, tuple[int, int]]
    allowed_ips: dict[str, str]
    links: dict[str, Link]
    stp: StpBridge | None
    root_id: str  # from sysfs: iproute2 can print the bridge's own id as the root

    def handshake_age(self, public_key: str) -> float | None:
        ts = self.handshakes.get(public_key, 0)
        return None if ts == 0 else max(0, self.now - ts)


def parse(text: str, bridge: str) -> HostState:
    s = sections(text)
    try:
        links_json: list[dict[str, Any]] = json.loads(s.get("ip-link") or "[]")
    except ValueError:
        links_json = []
    links = {}
    for x in links_json:
        info = x.get("linkinfo", {})
        data = info.get("info_data", {})
        links[x["ifname"]] = Link(
            x["ifname"],
            "UP" in x.get("flags", []),
            int(x.get("mtu", 0)),
            str(info.get("info_kind", "")),
            data.get("id") if info.get("info_kind") == "vxlan" else None,
            x.get("master"),
        )
    stp = parse_brctl_showstp(s.get("brctl", "")) or stp_from_ip_json(links_json, bridge)
    transfer = {}
    for k, v in parse_wg_pairs(s.get("wg-transfer", "")).items():
        rx, _, tx = v.partition("\t")
        transfer[k] = (int(rx or 0), int(tx.strip() or 0) if tx.strip().isdigit() else 0)
    port = s.get("wg-listen-port", "").strip()
    return HostState(
        hostname=s.get("hostname", "").strip(),
        now=int(s.get("now", "0").strip() or 0),
        public_key=s.get("wg-public-key", "").strip() or None,
        listen_port=int(port) if port.isdigit() else None,
        handshakes={
            k: int(v) if v.isdigit() else 0
            for k, v in parse_wg_pairs(s.get("wg-latest-handshakes", "")).items()
        },
        endpoints=parse_wg_pairs(s.get("wg-endpoints", "")),
        transfer=transfer,
        allowed_ips=parse_wg_pairs(s.get("wg-allowed-ips", "")),
        links=links,
        stp=stp,
        root_id=normalise_bridge_id(s.get("bridge-root", "")),
    )
