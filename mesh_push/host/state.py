"""What a host has now: one shell round trip, then pure parsers. Never reads a private key:
only `wg show` fields that hold none (never `dump` or `showconf`); pre-shared keys arrive as
fingerprints, reduced on the host (templates/gather.sh.j2)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SECTION = re.compile(r"^=== (\S+)$")


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
    keepalives: dict[str, str] = field(default_factory=dict)  # public key → "25" or "off"
    boot_unit: bool | None = None  # the boot unit and its wants link are both there
    # Pre-shared keys, as fingerprints (keys.psk_fingerprint): public key → the one `wg` uses
    # with that peer, or "none"; peer name → the one in this mesh's file for that peer.
    psks: dict[str, str] = field(default_factory=dict)
    psk_files: dict[str, str] = field(default_factory=dict)
    # evpn mode: each WireGuard interface (one per link), and the mesh's FRR instance.
    wg_ifs: dict[str, WgIf] = field(default_factory=dict)
    frr: FrrState | None = None

    def handshake_age(self, public_key: str) -> float | None:
        return self._age(self.handshakes.get(public_key, 0))

    def link_handshake_age(self, interface: str, public_key: str | None) -> float | None:
        """evpn mode: the age of the handshake with `public_key` on link `interface`."""
        w = self.wg_ifs.get(interface)
        return self._age(w.handshakes.get(public_key or "", 0) if w else 0)

    def _age(self, ts: int) -> float | None:
        return None if ts == 0 else max(0, self.now - ts)


StpRead = Callable[[dict[str, str], list[dict[str, Any]], str], "StpBridge | None"]


def parse(text: str, bridge: str, read_stp: StpRead | None = None) -> HostState:
    """`read_stp`: where STP state comes from (backends.StpReader.read); by default brctl's
    section where it has one, else iproute2's."""
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
    if read_stp is not None:
        stp = read_stp(s, links_json, bridge)
    else:
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
        keepalives=parse_wg_pairs(s.get("wg-persistent-keepalive", "")),
        boot_unit={"yes": True, "no": False}.get(s.get("boot", "").strip()),
        psks=parse_wg_pairs(s.get("wg-preshared-keys", "")),
        psk_files=parse_wg_pairs(s.get("psk-files", "")),
        wg_ifs=parse_wg_all(s),
        frr=parse_frr(s),
    )


def _timers(data: dict[str, Any]) -> dict[str, int]:
    keys = ["hello_time", "forward_delay", "max_age"]
    if data.get("topology_change") == 0:
        keys.append("ageing_time")
    return {k: int(data[k]) for k in keys if isinstance(data.get(k), int)}


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
        int(x.get("mtu", 0)),
        kind,
        int(data["id"]) if vxlan and "id" in data else None,
        x.get("master"),
        mac=str(x.get("address", "")),
        addresses=[
            f"{a['local']}/{a['prefixlen']}"
            for a in x.get("addr_info") or []
            if a.get("family") == "inet" and "local" in a
        ],
        remote=str(data["remote"]) if vxlan and "remote" in data else None,
        local=str(data["local"]) if vxlan and "local" in data else None,
        port=int(data["port"]) if vxlan and "port" in data else None,
        priority=int(data["priority"]) if bridge and "priority" in data else None,
        stp_on=bool(data["stp_state"]) if bridge and "stp_state" in data else None,
        timers=_timers(data) if bridge else {},
        cost=int(slave["cost"]) if "cost" in slave else None,
        alias=str(x.get("ifalias", "")),
    )


# --------------------------------------------------------------------------- evpn mode


@dataclass
class WgIf:
    """One WireGuard interface as `wg show all` tells it (evpn mode: one per link)."""

    public_key: str = ""
    listen_port: int | None = None
    handshakes: dict[str, int] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    transfer: dict[str, tuple[int, int]] = field(default_factory=dict)
    allowed_ips: dict[str, str] = field(default_factory=dict)


@dataclass
class FrrState:
    """The mesh's FRR instance: which daemons run, and what they say (FRR's own JSON)."""

    daemons: set[str]
    bgp: dict[str, str]  # BGP neighbour address → session state ("Established", ...)
    bgp_prefixes: dict[str, int]  # neighbour → EVPN routes received from it
    bfd: dict[str, str]  # BFD peer address → "up", "down", "init"
    ospf: dict[str, str]  # OSPF neighbour router id → state ("Full", ...)
    remote_vteps: dict[int, set[str]]  # VNI → the remote VTEPs EVPN installed
    macs: dict[int, int]  # VNI → MACs known


def parse_wg_all(s: dict[str, str]) -> dict[str, WgIf]:
    """`wg show all FIELD`: `IF<TAB>value` (public-key, listen-port) or
    `IF<TAB>PUBKEY<TAB>value...` per peer."""
    out: dict[str, WgIf] = {}
    for what in (
        "public-key",
        "listen-port",
        "latest-handshakes",
        "endpoints",
        "transfer",
        "allowed-ips",
    ):
        for line in s.get(f"wg-all-{what}", "").splitlines():
            cells = line.rstrip("\n").split("\t")
            if len(cells) < 2 or not cells[0]:
                continue
            w = out.setdefault(cells[0], WgIf())
            if what == "public-key":
                w.public_key = cells[1].strip()
            elif what == "listen-port":
                w.listen_port = int(cells[1]) if cells[1].strip().isdigit() else None
            elif len(cells) >= 3:
                key, value = cells[1], "\t".join(cells[2:]).strip()
                if what == "latest-handshakes":
                    w.handshakes[key] = int(value) if value.isdigit() else 0
                elif what == "endpoints":
                    w.endpoints[key] = value
                elif what == "allowed-ips":
                    w.allowed_ips[key] = value
                else:
                    rx, _, tx = value.partition("\t")
                    w.transfer[key] = (
                        int(rx) if rx.isdigit() else 0,
                        int(tx.strip()) if tx.strip().isdigit() else 0,
                    )
    return out


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def parse_frr(s: dict[str, str]) -> FrrState | None:
    """None when the host has no FRR section at all (not evpn, or an older gather)."""
    if "frr-daemons" not in s:
        return None
    st = FrrState({d for d in s["frr-daemons"].split() if d}, {}, {}, {}, {}, {}, {})
    bgp = _json(s.get("frr-bgp", ""))
    if isinstance(bgp, dict):
        # `show bgp l2vpn evpn summary json` nests the peers one level down in some releases.
        peers = bgp.get("peers")
        if not isinstance(peers, dict):
            inner = next((v for v in bgp.values() if isinstance(v, dict) and "peers" in v), {})
            peers = inner.get("peers", {})
        for addr, info in peers.items() if isinstance(peers, dict) else ():
            if isinstance(info, dict):
                st.bgp[str(addr)] = str(info.get("state", ""))
                rcd = info.get("pfxRcd", info.get("prefixReceivedCount"))
                if isinstance(rcd, int):
                    st.bgp_prefixes[str(addr)] = rcd
    bfd = _json(s.get("frr-bfd", ""))
    for peer in bfd if isinstance(bfd, list) else ():
        if isinstance(peer, dict) and "peer" in peer:
            st.bfd[str(peer["peer"])] = str(peer.get("status", ""))
    ospf = _json(s.get("frr-ospf", ""))
    neighbors = ospf.get("neighbors") if isinstance(ospf, dict) else None
    for rid, entries in neighbors.items() if isinstance(neighbors, dict) else ():
        for e in entries if isinstance(entries, list) else [entries]:
            if isinstance(e, dict):
                state = str(e.get("nbrState") or e.get("state") or "")
                st.ospf[str(rid)] = state.partition("/")[0]
    vnis = _json(s.get("frr-vni", ""))
    for v in _vni_entries(vnis):
        try:
            vni = int(v["vni"])
        except (KeyError, TypeError, ValueError):
            continue
        remotes = v.get("remoteVteps") or v.get("numRemoteVteps")
        st.remote_vteps[vni] = {
            str(r.get("ip", r)) if isinstance(r, dict) else str(r)
            for r in (remotes if isinstance(remotes, list) else [])
        }
        if isinstance(v.get("numMacs"), int):
            st.macs[vni] = v["numMacs"]
    return st


def _vni_entries(data: Any) -> list[dict[str, Any]]:
    """`show evpn vni detail json`: a list, or a mapping by VNI, of one object per VNI."""
    if isinstance(data, list):
        return [v for v in data if isinstance(v, dict)]
    if isinstance(data, dict):
        if "vni" in data:
            return [data]
        return [v for v in data.values() if isinstance(v, dict)]
    return []
