"""What `plan` and `status` show, as data: tables and lines that the views print (rich on a
terminal, plain text past a few hundred rows), and the parts of `--json` both modes share.
Nothing here prints, and no value is made safe here: the views do that, for every value."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mesh_push.host import boot
from mesh_push.host.state import HostState, WgIf
from mesh_push.modes.base import HostPlan, Peer, Plan, WgIface
from mesh_push.modes.judgement import REJECT_AFTER_TIME_S, HostVerdict, Judgement

PAIR_TABLE_HOSTS = 50  # past this many hosts `plan` summarises the host pairs (--all-pairs)
PATH_SHOWN = 8  # hosts of a long path shown in a summary

Style = Literal["strong", "good", "bad", "warn", "dim"]


@dataclass(frozen=True)
class Styled:
    text: str
    style: Style


Text = str | Styled


@dataclass(frozen=True)
class Line:
    parts: tuple[Text, ...]


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: Iterable[Sequence[Text]]
    # Rows given as a stream (an iterator): how many, and each column's width when they are
    # too many for a table and printed as plain lines, one at a time.
    count: int | None = None
    widths: tuple[int, ...] = ()


Report = list[Line | Table]


def line(*parts: Text) -> Line:
    return Line(parts)


def finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def ms(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f}s"


def key_age(seconds: float | None) -> str:
    """A key's age as people count it: hours for the first two days, then days."""
    if seconds is None:
        return "-"
    return f"{seconds / 3600:.0f}h" if seconds < 2 * 86400 else f"{seconds / 86400:.0f}d"


def path_text(path: list[str], most: int | None = PATH_SHOWN) -> str:
    if not path:
        return "unreachable"
    if most is not None and len(path) > most:
        path = [*path[:3], f"… {len(path) - 6} more …", *path[-3:]]
    return " → ".join(path)


def both_ends(wire: dict[str, Any], key: str, fmt: Any = str) -> str:
    """A wire's or link's `key` at its two ends, as "a / b" ("?" for an end not read)."""
    ends = [wire["ends"].get(h) for h in wire["hosts"]]
    return " / ".join("?" if e is None else str(fmt(e.get(key))) for e in ends)


def yes_no(x: bool | None) -> str:
    return {True: "yes", False: "no", None: "?"}[x]


# ---------------------------------------------------------------------------------- plan


def plan_json(p: Plan, mode: str, host_extra: Any, link_extra: Any) -> dict[str, Any]:
    """`plan --json`'s shape in both modes: the mesh, each host and link, with the mode's
    fields of each (`host_extra(hp)`, `link_extra(link)`); the mode adds its own sections."""
    m = p.mesh
    return {
        "mesh": m.name,
        "mode": mode,
        "wireguard": {"interface": m.wg_interface, "port": m.wg_port, "network": str(m.wg_network)},
        "bridge": {"name": m.bridge, "network": str(m.bridge_network)},
        "vxlan_port": m.vxlan_port,
        "mtu": {"policy": m.mtu.policy, "wireguard": m.mtu.wireguard, "bridge": m.mtu.bridge},
        "waves": [list(w) for w in p.waves],
        "hosts": [
            {
                "name": hp.name,
                "endpoint": hp.host.endpoint,
                "address": str(hp.host.address) if hp.host.address else None,
                "wave": hp.wave,
                "transit": hp.host.transit,
                "bridge_address": str(hp.bridge_address),
                "bridge_address6": str(hp.bridge_address6) if hp.bridge_address6 else None,
                "bridge_mac": hp.bridge_mac,
                "public_key": hp.public_key,
                "peers": [
                    {
                        "name": pe.name,
                        "interface": i.name,
                        "allowed_ips": [str(n) for n in pe.allowed_ips],
                        "endpoint": pe.endpoint,
                        "keepalive": pe.keepalive,
                    }
                    for i in hp.wg
                    for pe in i.peers
                ],
                **host_extra(hp),
            }
            for hp in p.hosts
        ],
        "links": [
            {
                "hosts": [lk.a, lk.b],
                "vni": lk.vni,
                "latency_ms": lk.latency_ms,
                "psk": lk.psk,
                **link_extra(lk),
            }
            for lk in m.links
        ],
    }


def hosts_line(p: Plan) -> str:
    return f"{len(p.mesh.hosts)} hosts, {len(p.mesh.links)} links"


def waves_line(p: Plan, plain_from: int) -> Line:
    if len(p.mesh.hosts) <= plain_from:
        waves = "  then  ".join(", ".join(w) for w in p.waves)
    else:
        waves = "  then  ".join(f"{len(w):,} hosts" for w in p.waves) + " (the column wave above)"
    return line("Push waves: " + waves)


# -------------------------------------------------------------------------------- status


def peer_json(st: HostState, iface: WgIface, pe: Peer) -> dict[str, Any]:
    """A peer as its host has it: handshake, endpoint, traffic, and whether `wg` has a
    pre-shared key for it (None: not read; the key itself never reaches the controller)."""
    w = st.wg.get(iface.name) or WgIf()
    key = pe.public_key or ""
    psk = w.psks.get(key)
    return {
        "name": pe.name,
        "public_key": pe.public_key,
        "latest_handshake_age_s": st.handshake_age(iface.name, pe.public_key) if key else None,
        "endpoint": w.endpoints.get(key),
        "transfer_rx_tx": w.transfer.get(key),
        "preshared_key": None if psk is None else psk != "none",
        "preshared_key_planned": pe.psk,
    }


def status_host(hp: HostPlan, v: HostVerdict) -> dict[str, Any]:
    return {
        "name": hp.name,
        "reachable": v.reachable,
        "healthy": v.healthy,
        "reasons": v.reasons,
        "key_age_s": v.state.key_age() if v.state else None,
        "boot": boot_json(hp, v.state.boot if v.state else None),
    }


def boot_json(hp: HostPlan, seen: boot.Seen | None) -> dict[str, Any] | None:
    """How the mesh would come back after a reboot (host/boot.py): the host's init, the hook
    the plan gives it (None: no init mesh-push knows), and whether that hook and the script it
    runs are in place."""
    if seen is None:
        return None
    kind = boot.choose(hp.host.boot, seen.init)
    return {
        "init": seen.init,
        "hook": kind.name if kind else None,
        "comes_back": bool(kind and kind.name in seen.hooks and seen.script),
    }


def boot_cell(h: dict[str, Any]) -> Text:
    b = h.get("boot")
    if b is None:
        return ""
    if b["hook"] is None:
        return Styled(f"{b['init']}: no hook", "bad")
    return Styled(b["hook"], "good") if b["comes_back"] else Styled(f"{b['hook']}: missing", "bad")


def verdict_cell(h: dict[str, Any]) -> Text:
    if h["healthy"]:
        return Styled("healthy", "good")
    return Styled("unhealthy: " + "; ".join(h["reasons"]), "bad")


def unreachable_row(h: dict[str, Any], blanks: int) -> list[Text]:
    why = "; ".join(h["reasons"])
    return [h["name"], Styled("no", "bad"), *[""] * blanks, Styled(f"unknown: {why}", "warn")]


def peers_up(peers: list[dict[str, Any]]) -> tuple[int, str]:
    """How many peers have a live handshake, and the oldest handshake."""
    ages = [pe["latest_handshake_age_s"] for pe in peers]
    up = [a for a in ages if a is not None and a <= REJECT_AFTER_TIME_S]
    oldest = "never" if None in ages else age(max(ages, default=None))
    return len(up), oldest


def verdict_lines(j: Judgement) -> Report:
    head = Styled("HEALTHY", "good") if j.healthy else Styled("UNHEALTHY", "bad")
    return [line("verdict: ", head), *(line("  " + r) for r in j.reasons)]


def pair_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Each host pair whose path or latency differs between two plans' `pairs` (plan_json)."""
    before = {tuple(x["hosts"]): x for x in old}
    out = []
    for x in new:
        was = before.get(tuple(x["hosts"]))
        if was is None or (was["path"], was["latency_ms"]) == (x["path"], x["latency_ms"]):
            continue
        a, b = x["hosts"]
        route = "" if was["path"] == x["path"] else (
            f" (path {path_text(was['path'])}; now {path_text(x['path'])})"
        )  # fmt: skip
        out.append(f"{a} ↔ {b}: {ms(was['latency_ms'])} → {ms(x['latency_ms'])} ms{route}")
    return out
