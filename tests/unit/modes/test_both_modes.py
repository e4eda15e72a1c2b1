"""Every feature in both modes, by the same tests: pre-shared keys per link (planned, installed
by the script, judged, rotated), hosts known by DNS name (re-resolved on the link's interface
and port), `plan --graph` and `status --graph`, `plan --cut`, and the metrics. The lab's five
hosts in stp mode (inventory/lab.yaml) and in evpn mode (inventory/lab-evpn.yaml)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mesh_push import inventory, modes
from mesh_push.core.model import Mesh
from mesh_push.engine import keys
from mesh_push.host.boot import Seen
from mesh_push.host.state import HostState, Link, WgIf
from mesh_push.modes.base import Plan
from mesh_push.modes.evpn.observe import FrrState
from mesh_push.modes.evpn.plan import EvpnHost, EvpnPlan, vtep, vxlan_name
from mesh_push.modes.stp.observe import StpBridge, StpPort, StpSeen
from mesh_push.modes.stp.plan import StpHost, StpPlan
from mesh_push.modes.topology import edge
from mesh_push.monitoring import metrics
from mesh_push.views import reports
from tests import kit

INVENTORIES = {"stp": "inventory/lab.yaml", "evpn": "inventory/lab-evpn.yaml"}
KEYS = json.loads((kit.GOLDEN / "seed.keys.json").read_text())


def mesh_of(mode: str, tmp: Path, edit: str = "") -> Mesh:
    """The lab's five hosts in `mode`; `edit`: lines added to its `mesh:` section."""
    text = (kit.ROOT / INVENTORIES[mode]).read_text()
    if edit:
        text = text.replace("mesh:\n", "mesh:\n" + edit, 1)
    path = tmp / f"{mode}.yaml"
    path.write_text(text)
    return inventory.load(path)


@pytest.fixture(params=["stp", "evpn"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_mode_is_the_inventorys(mode: str, tmp_path: Path) -> None:
    mesh = mesh_of(mode, tmp_path)
    assert modes.of(mesh).name == mode
    assert kit.plan(mesh, KEYS).mesh is mesh


# ---------------------------------------------------------------------- pre-shared keys


def test_pre_shared_keys_are_planned_per_link(mode: str, tmp_path: Path) -> None:
    mesh = mesh_of(mode, tmp_path, "  psk: true\n")
    fps = {lk: keys.psk_fingerprint(keys.generate_psk()) for lk in mesh.links}
    p = kit.plan(mesh, KEYS, fps)
    for hp in p.hosts:
        assert len(hp.peers) == len(mesh.links_of(hp.name))
        for pe in hp.peers:
            lk = next(x for x in mesh.links_of(hp.name) if pe.name in x.hosts)
            assert pe.psk_file == mesh.psk_file(pe.name) and pe.psk_fp == fps[lk]


def test_the_script_installs_each_links_key_from_its_file_and_holds_none(
    mode: str, tmp_path: Path
) -> None:
    mesh = mesh_of(mode, tmp_path, "  psk: true\n")
    fps = {lk: keys.psk_fingerprint(keys.generate_psk()) for lk in mesh.links}
    p = kit.plan(mesh, KEYS, fps)
    for hp in p.hosts:
        text = kit.script(p, hp.name)
        for pe in hp.peers:
            assert f"F={pe.psk_file}" in text
        assert text.count('preshared-key "$F"') == len(hp.peers)
        assert "psk_fps" in text and "pre-shared key file" in text


def test_the_judge_sees_a_missing_or_another_key(mode: str, tmp_path: Path) -> None:
    mesh = mesh_of(mode, tmp_path, "  psk: true\n")
    fps = {lk: keys.psk_fingerprint(keys.generate_psk()) for lk in mesh.links}
    p = kit.plan(mesh, KEYS, fps)
    states = healthy_states(p)
    bob = p.host("bob")
    iface, rho = bob.peer("rho") or (None, None)
    assert iface is not None and rho is not None and rho.public_key
    states["bob"].wg[iface.name].psks[rho.public_key] = "none"
    j = kit.judge(p, states)
    assert "peer rho has no pre-shared key" in j.hosts["bob"].drift
    (wire,) = [w for w in j.wires if set(w["hosts"]) == {"bob", "rho"}]
    assert "pre-shared key at rho only: no handshake can succeed" in wire["problems"]
    states["bob"].wg[iface.name].psks[rho.public_key] = "0123456789abcdef"
    j = kit.judge(p, states)
    assert "peer rho has another pre-shared key than the planned one" in j.hosts["bob"].drift


def test_rotating_a_hosts_pre_shared_keys_takes_its_links(mode: str, tmp_path: Path) -> None:
    mesh = mesh_of(mode, tmp_path, "  psk: true\n")
    assert {lk.hosts for lk in keys.links_of(mesh, ["pi0"])} == {("rho", "pi0")}
    assert len(keys.links_of(mesh, ["rho"])) == 4


# ------------------------------------------------------------------ hosts known by name


def test_a_peer_known_by_name_is_re_resolved_on_its_links_interface(
    mode: str, tmp_path: Path
) -> None:
    text = (kit.ROOT / INVENTORIES[mode]).read_text()
    text = re.sub(r"(bob: .*address: )[0-9.]+", r"\1bob.lab.example", text)
    path = tmp_path / "named.yaml"
    path.write_text(text)
    mesh = inventory.load(path)
    p = kit.plan(mesh, KEYS)
    rho = p.host("rho")
    found = rho.peer("bob")
    assert found is not None
    iface, bob = found
    assert bob.endpoint_name == "bob.lab.example"
    assert bob.endpoint == f"bob.lab.example:{iface.port}"
    script = kit.script(p, "rho")
    assert 'step "peer names"' in script and "reresolve.sh" in script
    line = f"check {iface.name} {bob.public_key} bob bob.lab.example {iface.port}"
    assert line in script


# ------------------------------------------------------------------ links on a LAN


def test_a_link_on_a_lan_dials_each_end_where_the_link_says(mode: str, tmp_path: Path) -> None:
    """Two hosts without a static address (vorke dynamic, pi0 behind NAT) linked over their
    LAN: each dials the other at the link's address for it, on its own port unless the
    link gives one, and neither keeps the link alive (each can be dialled)."""
    text = (kit.ROOT / INVENTORIES[mode]).read_text()
    lan = '  - {hosts: [vorke, pi0], endpoints: {pi0: 192.168.1.10, vorke: "[fd00::20]:51000"}}\n'
    text = re.sub(r"(  - \{hosts: \[rho, pi0\].*\n)", lambda m: m.group(1) + lan, text)
    path = tmp_path / "lan.yaml"
    path.write_text(text)
    p = kit.plan(inventory.load(path), KEYS)
    pi0_side, vorke_side = p.host("vorke").peer("pi0"), p.host("pi0").peer("vorke")
    assert pi0_side is not None and vorke_side is not None
    (iface, pi0), (_, vorke) = pi0_side, vorke_side
    assert pi0.endpoint == f"192.168.1.10:{iface.port}" and pi0.dialled_at == pi0.endpoint
    assert vorke.endpoint == "[fd00::20]:51000" and vorke.endpoint_name is None
    assert pi0.keepalive is None and vorke.keepalive is None
    # pi0 still keeps its NAT open towards rho, which cannot dial it.
    rho = p.host("pi0").peer("rho")
    assert rho is not None and rho[1].keepalive == 25
    assert "endpoint 192.168.1.10:" in kit.script(p, "vorke")


# ------------------------------------------------------------------ IPv6 on the tunnels


def test_ipv6_on_the_tunnels_is_planned_rendered_and_judged(mode: str, tmp_path: Path) -> None:
    """`wireguard.network6`: stp, host n's interface gets the n-th address of the /64; evpn,
    each link's two interfaces a /127 of it by VNI. Each peer may send from the other end's
    address, the script puts it on, and the judge flags it missing."""
    text = (kit.ROOT / INVENTORIES[mode]).read_text()
    text = text.replace("network: 10.88.88.0/24}", "network: 10.88.88.0/24, network6: fd88::/64}")
    path = tmp_path / "six.yaml"
    path.write_text(text)
    p = kit.plan(inventory.load(path), KEYS)
    found = p.host("rho").peer("pi0")
    back = p.host("pi0").peer("rho")
    assert found is not None and back is not None
    (iface, pi0), (iface_back, rho) = found, back
    assert iface.address6 is not None and iface_back.address6 is not None
    assert f"{iface_back.address6.ip}/128" in pi0.allowed_ips_text.split()
    assert f"{iface.address6.ip}/128" in rho.allowed_ips_text.split()
    if mode == "stp":
        assert str(iface.address6) == "fd88::2/64" and str(iface_back.address6) == "fd88::5/64"
    else:  # link rho–pi0 has VNI 7: its /127 is fd88::e, rho (its first end) then pi0
        assert (str(iface.address6), str(iface_back.address6)) == ("fd88::e/127", "fd88::f/127")
    assert f'ensure_addr6 "$WG" {iface.address6}' in kit.script(p, "rho")
    states = healthy_states(p)
    assert kit.judge(p, states).hosts["rho"].healthy
    states["rho"].links[iface.name].addresses.remove(str(iface.address6))
    assert (
        f"{iface.name} lacks its address {iface.address6}"
        in kit.judge(p, states).hosts["rho"].reasons
    )


# ---------------------------------------------------------------- pictures and --cut


def test_plan_and_status_draw_a_picture(mode: str, tmp_path: Path) -> None:
    mesh = mesh_of(mode, tmp_path)
    p = kit.plan(mesh, KEYS)
    mode_ = modes.of(mesh)
    planned = mode_.graph(p, None, None).source
    for lk in mesh.links:
        assert f"VNI {lk.vni}" in planned
    j = kit.judge(p, healthy_states(p))
    drawn = mode_.graph(p, j, None).source
    assert "status" in drawn and "palegreen" in drawn
    cut = mode_.graph(p, None, edge("bob", "rho")).source
    assert "after cutting bob–rho" in cut and "dotted" in cut


def test_plan_cut_says_what_a_cut_changes(mode: str, tmp_path: Path) -> None:
    mesh = mesh_of(mode, tmp_path)
    p = kit.plan(mesh, KEYS)
    data = reports.plan_json(p, edge("bob", "rho"))
    before = reports.plan_json(p)
    if data["tree"] is not None:  # stp: the tree 802.1D converges to without the wire
        assert data["tree"]["cut"] == ["bob", "rho"]
        assert data["tree"]["blocking"] != before["tree"]["blocking"]
    else:  # evpn: the pairs OSPF sends another way
        moved = data["evpn"]["cut"]["rerouted"]
        assert {tuple(r["hosts"]) for r in moved} >= {("bob", "rho")}
        for r in moved:
            assert r["new_latency_ms"] >= r["latency_ms"]
            hops = zip(r["new_path"], r["new_path"][1:], strict=False)
            assert not any({x, y} == {"bob", "rho"} for x, y in hops)


# --------------------------------------------------------------------------- metrics


def test_metrics_of_a_healthy_mesh(mode: str, tmp_path: Path) -> None:
    mesh = mesh_of(mode, tmp_path)
    p = kit.plan(mesh, KEYS)
    j = kit.judge(p, healthy_states(p))
    assert j.healthy, {n: v.reasons for n, v in j.hosts.items()}
    fams = {f.name: f for f in metrics.families(metrics.Snapshot(p, j, 0.1, 1.0))}
    shared = {
        "mesh_push_mesh_healthy",
        "mesh_push_peer_handshake_age_seconds",
        "mesh_push_wire_healthy",
    }
    assert shared <= set(fams)
    ages = [s.value for s in fams["mesh_push_peer_handshake_age_seconds"].samples]
    assert len(ages) == 2 * len(mesh.links) and max(ages) < 180
    own = {
        "stp": {"mesh_push_tree_matches_plan", "mesh_push_port_stp_state"},
        "evpn": {
            "mesh_push_bgp_session_up",
            "mesh_push_bgp_evpn_routes",
            "mesh_push_ospf_adjacency_full",
            "mesh_push_bfd_session_up",
            "mesh_push_evpn_remote_vteps",
            "mesh_push_frr_running",
        },
    }[mode]
    assert own <= set(fams)
    for name in own:
        for s in fams[name].samples:
            if name.endswith(("_up", "_full", "_running", "matches_plan")):
                assert s.value == 1.0, (name, s)


# ------------------------------------------------------------------- healthy states


def healthy_states(p: Plan) -> dict[str, HostState]:
    """What every host of `p` shows once up and converged, built from the plan: each WireGuard
    interface with its peers and a fresh handshake, the bridge, and the mode's own part."""
    mesh = p.mesh
    out = {}
    for hp in p.hosts:
        links: dict[str, Link] = {}
        wg: dict[str, WgIf] = {}
        for iface in hp.wg:
            links[iface.name] = Link(
                iface.name, True, mesh.mtu.wireguard, "wireguard",
                addresses=[str(a) for a in (iface.address, iface.address6) if a],
                alias=mesh.mark,
            )  # fmt: skip
            wg[iface.name] = WgIf(
                public_key=hp.public_key or "",
                listen_port=iface.port,
                handshakes={str(pe.public_key): 990 for pe in iface.peers},
                allowed_ips={str(pe.public_key): pe.allowed_ips_text for pe in iface.peers},
                keepalives={str(pe.public_key): str(pe.keepalive or "off") for pe in iface.peers},
                psks={str(pe.public_key): pe.psk_fp or "none" for pe in iface.peers},
            )
        st = HostState(
            hp.name, 1000, links, wg, boot=Seen("systemd", ("systemd",), True), key_time=400
        )
        st.psk_times = {pe.name: 700 for iface in hp.wg for pe in iface.peers if pe.psk}
        if isinstance(p, StpPlan):
            _stp_part(p, p.stp_host(hp.name), st)
        else:
            assert isinstance(p, EvpnPlan)
            _evpn_part(p, p.evpn_host(hp.name), st)
        out[hp.name] = st
    return out


def _stp_part(p: StpPlan, hp: StpHost, st: HostState) -> None:
    mesh = p.mesh
    root = p.stp_host(p.tree.expected.root).bridge_mac.replace(":", "")
    st.links[mesh.bridge] = Link(
        mesh.bridge, True, mesh.mtu.bridge, "bridge", mac=hp.bridge_mac,
        addresses=[str(hp.bridge_address)], alias=mesh.mark, priority=hp.bridge_priority,
        stp_on=True,
    )  # fmt: skip
    bridge = StpBridge(mesh.bridge, designated_root=f"1000.{root}")
    for i, w in enumerate(hp.wires, 1):
        blocked = (hp.name, w.name) in p.tree.expected.blocking
        bridge.ports[w.name] = StpPort(w.name, i, "blocking" if blocked else "forwarding")
        st.links[w.name] = Link(
            w.name, True, mesh.mtu.bridge, "vxlan", vni=w.vni, master=mesh.bridge,
            remote=str(w.remote), local=str(w.local), port=mesh.vxlan_port, cost=w.cost,
            alias=mesh.mark,
        )  # fmt: skip
    st.mode_state = StpSeen(bridge, f"1000.{root}")


def _evpn_part(p: EvpnPlan, hp: EvpnHost, st: HostState) -> None:
    mesh = p.mesh
    st.links[mesh.bridge] = Link(
        mesh.bridge, True, mesh.mtu.bridge, "bridge", mac=hp.bridge_mac,
        addresses=[str(hp.bridge_address), f"{hp.vtep}/32"], alias=mesh.mark, stp_on=False,
    )  # fmt: skip
    vx = vxlan_name(mesh)
    st.links[vx] = Link(
        vx, True, mesh.mtu.bridge, "vxlan", vni=mesh.evpn.vni, master=mesh.bridge,
        local=str(hp.vtep), port=mesh.vxlan_port, alias=mesh.mark,
    )  # fmt: skip
    others = {str(vtep(mesh, h)) for h in mesh.hosts if h.name != hp.name}
    st.mode_state = FrrState(
        daemons={"watchfrr", "zebra", "bgpd", "ospfd", "bfdd"},
        bgp={str(addr): "Established" for _n, addr in hp.neighbors},
        bgp_prefixes={str(addr): 4 for _n, addr in hp.neighbors},
        bfd={str(end.peer_address): "up" for end in hp.links},
        ospf={str(vtep(mesh, mesh.host(end.peer))): "Full" for end in hp.links},
        remote_vteps={mesh.evpn.vni: others},
        macs={mesh.evpn.vni: 5},
    )
