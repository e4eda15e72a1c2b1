"""evpn mode's part of a host's state: the mesh's FRR instance, which daemons run and what they
say in their own JSON (tests/data/evpn holds real captures). Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

from mesh_push.core.reported import Unreadable, whole


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
    # OSPF's database as this host has it: what each router (by id) announces as its own
    # networks (router LSAs' stub links), and as external routes.
    announced: dict[str, set[IPv4Network]] = field(default_factory=dict)
    external: dict[str, set[IPv4Network]] = field(default_factory=dict)
    # The VTEPs' network's route and the ip rules, as `ip -o` prints them (None: not read).
    vtep_route: str | None = None
    rules: list[str] = field(default_factory=list)


MAX_AGE_S = 3600  # OSPF's MaxAge (RFC 2328, appendix B)

# What templates/evpn/gather.sh.j2 asks the instance, in one vtysh whose -E echoes each
# question after the prompt ("bob# show bfd peers json"), and the section each answer is.
QUESTIONS = {
    "show bgp l2vpn evpn summary json": "frr-bgp",
    "show bfd peers json": "frr-bfd",
    "show ip ospf neighbor json": "frr-ospf",
    "show evpn vni detail json": "frr-vni",
    "show ip ospf database router json": "frr-lsdb",
    "show ip ospf database external json": "frr-external",
}


def answers(text: str) -> dict[str, str]:
    """The frr-vtysh section split at each echoed question; the last answer to one counts."""
    out: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        prompt, sep, question = line.partition("# ")
        if sep and " " not in prompt and question in QUESTIONS:
            key = QUESTIONS[question]
            out[key] = ""
        elif key is not None:
            out[key] += line + "\n"
    return out


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def parse(s: dict[str, str]) -> FrrState | None:
    """None when the host has no FRR section at all (not evpn, or an older gather)."""
    if "frr-daemons" not in s:
        return None
    s = {**s, **answers(s.get("frr-vtysh", ""))}
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
                    st.bgp_prefixes[str(addr)] = whole(rcd, "BGP prefixes received")
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
    st.announced = _lsas(_json(s.get("frr-lsdb", "")), "routerLinkStates", _stubs)
    st.external = _lsas(_json(s.get("frr-external", "")), "asExternalLinkStates", _external)
    if "vtep-route" in s:
        st.vtep_route = " ".join(s["vtep-route"].split())
        st.rules = [" ".join(line.split()) for line in s.get("vtep-rules", "").splitlines()]
    vnis = _json(s.get("frr-vni", ""))
    for v in _vni_entries(vnis):
        try:
            vni = whole(v["vni"], "VNI")
        except (KeyError, Unreadable):
            continue
        remotes = v.get("remoteVteps") or v.get("numRemoteVteps")
        st.remote_vteps[vni] = {
            str(r.get("ip", r)) if isinstance(r, dict) else str(r)
            for r in (remotes if isinstance(remotes, list) else [])
        }
        if isinstance(v.get("numMacs"), int):
            st.macs[vni] = whole(v["numMacs"], "the VNI's MAC count")
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


def _lsas(data: Any, key: str, networks: Any) -> dict[str, set[IPv4Network]]:
    """Advertising router → the networks its LSAs under `key` carry (`networks(lsa)`):
    `show ip ospf database router|external json` list them per area or flat."""
    found = data.get(key) if isinstance(data, dict) else None
    if isinstance(found, dict):
        areas = found.get("areas", found)
        lists = areas.values() if isinstance(areas, dict) else ()
        lsas = [x for v in lists if isinstance(v, list) for x in v]
    else:
        lsas = found if isinstance(found, list) else []
    out: dict[str, set[IPv4Network]] = {}
    for lsa in lsas:
        if not isinstance(lsa, dict) or not isinstance(lsa.get("advertisingRouter"), str):
            continue
        # An LSA at MaxAge is one being withdrawn: it stays listed until every neighbour
        # has acknowledged its flush.
        age = lsa.get("lsaAge")
        if not (isinstance(age, int) and age >= MAX_AGE_S):
            out.setdefault(lsa["advertisingRouter"], set()).update(networks(lsa))
    return out


def _network(address: Any, mask: Any) -> list[IPv4Network]:
    try:
        return [IPv4Network(f"{address}/{mask}", strict=False)]
    except ValueError:
        return []


def _stubs(lsa: dict[str, Any]) -> list[IPv4Network]:
    links = lsa.get("routerLinks")
    return [
        n
        for link in (links.values() if isinstance(links, dict) else ())
        if isinstance(link, dict) and link.get("linkType") == "Stub Network"
        for n in _network(link.get("networkAddress"), link.get("networkMask"))
    ]


def _external(lsa: dict[str, Any]) -> list[IPv4Network]:
    # FRR 8 names the prefix linkStateId and its mask networkMask (a length).
    return _network(lsa.get("linkStateId"), lsa.get("networkMask", 32))
