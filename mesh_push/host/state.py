"""What a host has now, as the gather program prints it (templates/programs/gather.sh.j2):
sections `=== NAME`, parsed here into a HostState; the mode parses its own part. Never reads a
private key: only `wg show` fields that hold none (never `dump` or `showconf`); pre-shared keys
arrive as fingerprints, reduced on the host. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mesh_push.core.reported import whole
from mesh_push.host.boot import Seen
from mesh_push.host.boot import parse as parse_boot

SECTION = re.compile(r"^=== (\S+)$")
# A mode's part of the state, from the sections and `ip -j -d addr show` (Mode.parse_state).
ModeParser = Callable[[dict[str, str], list[dict[str, Any]]], object]


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


@dataclass
class Link:
    name: str
    up: bool
    mtu: int
    kind: str
    vni: int | None = None
    master: str | None = None
    mac: str = ""
    addresses: list[str] = field(default_factory=list)  # IPv4, as address/prefix
    remote: str | None = None  # VXLAN: the far end, this end, the UDP port
    local: str | None = None
    port: int | None = None
    priority: int | None = None  # bridges: priority and STP on or off
    stp_on: bool | None = None
    # Bridges: STP timers in centiseconds, as the host script sets them; ageing is None while
    # a topology change shortens it (that is STP at work, not a difference).
    timers: dict[str, int] = field(default_factory=dict)
    cost: int | None = None  # bridge ports: STP path cost
    # Its ifalias, where mesh-push keeps its mark ("" for none); None: not read.
    alias: str | None = None


@dataclass
class WgIf:
    """One WireGuard interface as `wg show all` tells it; its peers by public key."""

    public_key: str = ""
    listen_port: int | None = None
    handshakes: dict[str, int] = field(default_factory=dict)  # unix time, 0 = never
    endpoints: dict[str, str] = field(default_factory=dict)
    transfer: dict[str, tuple[int, int]] = field(default_factory=dict)
    allowed_ips: dict[str, str] = field(default_factory=dict)
    keepalives: dict[str, str] = field(default_factory=dict)  # "25" or "off"
    # The fingerprint of the pre-shared key `wg` uses with each peer (keys.psk_fingerprint),
    # or "none".
    psks: dict[str, str] = field(default_factory=dict)


@dataclass
class HostState:
    hostname: str
    now: int
    links: dict[str, Link]
    wg: dict[str, WgIf]  # every WireGuard interface, by name
    boot: Seen | None = None  # the init, this mesh's boot hooks (None: not read)
    # The fingerprints of this mesh's pre-shared key files, by peer name.
    psk_files: dict[str, str] = field(default_factory=dict)
    mode_state: object = None  # the mode's part (Mode.parse_state)
    # TX checksum offload of each VXLAN device (`on`/`off`), where the host has ethtool.
    tx_checksum: dict[str, str] = field(default_factory=dict)
    # When the host's private key and each pre-shared key file (by peer) were made: unix time
    # on the host's clock (`now`), from the files' times.
    key_time: int | None = None
    psk_times: dict[str, int] = field(default_factory=dict)
    # This mesh's block in /etc/hosts as it is ("" none; None: not read).
    names: str | None = None

    def key_age(self) -> float | None:
        return None if self.key_time is None else max(0, self.now - self.key_time)

    def psk_age(self, peer: str) -> float | None:
        t = self.psk_times.get(peer)
        return None if t is None else max(0, self.now - t)

    def handshake_age(self, interface: str, public_key: str | None) -> float | None:
        """Seconds since the last handshake with `public_key` on `interface` (None: never)."""
        w = self.wg.get(interface)
        ts = w.handshakes.get(public_key or "", 0) if w else 0
        return None if ts == 0 else max(0, self.now - ts)


def parse(text: str, mode: ModeParser | None = None) -> HostState:
    s = sections(text)
    try:
        links_json: list[dict[str, Any]] = json.loads(s.get("ip-link") or "[]")
    except ValueError:
        links_json = []
    links = {}
    for x in links_json:
        try:
            link = _link(x)
        except (KeyError, TypeError, ValueError):
            continue  # one odd interface must not hide the others
        links[link.name] = link
    return HostState(
        hostname=s.get("hostname", "").strip(),
        now=whole(s.get("now", "").strip() or 0, "its clock (date +%s)"),
        links=links,
        wg=parse_wg_all(s),
        boot=parse_boot(s["boot"]) if "boot" in s else None,
        psk_files=_pairs(s.get("psk-files", "")),
        tx_checksum=_pairs(s.get("tx-checksum", "")),
        key_time=_unix(s.get("key-time", "")),
        psk_times={k: t for k, v in _pairs(s.get("psk-times", "")).items() if (t := _unix(v))},
        names=s["names"].strip("\n") if "names" in s else None,
        mode_state=mode(s, links_json) if mode is not None else None,
    )


def _unix(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 12 else None


def _pairs(text: str) -> dict[str, str]:
    """One `NAME<TAB>VALUE` line each."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition("\t")
        if key:
            out[key] = value.strip()
    return out


def _wg_int(text: str, what: str) -> int:
    return whole(text, f"wg show's {what}") if text.strip() else 0


def parse_wg_all(s: dict[str, str]) -> dict[str, WgIf]:
    """`wg show all FIELD`: `IF<TAB>value` (public-key, listen-port) or `IF<TAB>PUBKEY<TAB>
    value...` per peer; the pre-shared keys as fingerprints (gather.sh.j2)."""
    out: dict[str, WgIf] = {}
    for what in (
        "public-key",
        "listen-port",
        "latest-handshakes",
        "endpoints",
        "transfer",
        "allowed-ips",
        "persistent-keepalive",
        "preshared-keys",
    ):
        current: str | None = None
        for line in s.get(f"wg-all-{what}", "").splitlines():
            cells = line.rstrip("\n").split("\t")
            # wg (1.0.20210914, Debian 12's) may name the interface on the first peer's line
            # of `endpoints` only: a line that starts with a public key (44 characters; an
            # interface name has at most 15) is the previous line's interface's next peer.
            if current and len(cells[0]) == 44 and cells[0].endswith("="):
                cells = [current, *cells]
            if len(cells) < 2 or not cells[0]:
                continue
            current = cells[0]
            w = out.setdefault(cells[0], WgIf())
            if what == "public-key":
                w.public_key = cells[1].strip()
            elif what == "listen-port":
                port = cells[1].strip()
                w.listen_port = whole(port, "wg show's listen-port") if port else None
            elif len(cells) >= 3:
                key, value = cells[1], "\t".join(cells[2:]).strip()
                if what == "latest-handshakes":
                    w.handshakes[key] = _wg_int(value, what)
                elif what == "endpoints":
                    w.endpoints[key] = value
                elif what == "allowed-ips":
                    w.allowed_ips[key] = value
                elif what == "persistent-keepalive":
                    w.keepalives[key] = value
                elif what == "preshared-keys":
                    w.psks[key] = value
                else:
                    rx, _, tx = value.partition("\t")
                    w.transfer[key] = (_wg_int(rx, what), _wg_int(tx, what))
    return out


def _timers(data: dict[str, Any]) -> dict[str, int]:
    keys = ["hello_time", "forward_delay", "max_age"]
    if data.get("topology_change") == 0:
        keys.append("ageing_time")
    return {k: whole(data[k], k) for k in keys if isinstance(data.get(k), int)}


def _link(x: dict[str, Any]) -> Link:
    """One entry of `ip -j -d addr show` (or `link show`, which has no addresses)."""
    info = x.get("linkinfo") or {}
    kind = str(info.get("info_kind", ""))
    data = info.get("info_data") or {}
    slave = info.get("info_slave_data") or {}
    vxlan = kind == "vxlan"
    bridge = kind == "bridge"
    return Link(
        str(x["ifname"]),
        "UP" in x.get("flags", []),
        whole(x.get("mtu", 0), "mtu"),
        kind,
        whole(data["id"], "vxlan id") if vxlan and "id" in data else None,
        x.get("master"),
        mac=str(x.get("address", "")),
        addresses=[
            f"{a['local']}/{a['prefixlen']}"
            for a in x.get("addr_info") or []
            if "local" in a
            and (
                a.get("family") == "inet"
                or (a.get("family") == "inet6" and a.get("scope") == "global")
            )
        ],
        remote=str(data["remote"]) if vxlan and "remote" in data else None,
        local=str(data["local"]) if vxlan and "local" in data else None,
        port=whole(data["port"], "vxlan port") if vxlan and "port" in data else None,
        priority=whole(data["priority"], "priority") if bridge and "priority" in data else None,
        stp_on=bool(data["stp_state"]) if bridge and "stp_state" in data else None,
        timers=_timers(data) if bridge else {},
        cost=whole(slave["cost"], "port cost") if "cost" in slave else None,
        alias=str(x.get("ifalias", "")),
    )
