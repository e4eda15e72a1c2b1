"""Mode evpn as data: the underlay plan (shortest paths, equal-cost next hops, route
reflectors, link numbering), FRR's JSON as captured on the lab → FrrState, and the judge."""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.model import LEGACY_MARK, Mesh
from mesh_push.engine import keys
from mesh_push.host.state import HostState, Link, WgIf
from mesh_push.modes.evpn import judge as evpn_judge
from mesh_push.modes.evpn import observe
from mesh_push.modes.evpn import underlay as evpn
from mesh_push.modes.evpn.plan import EvpnPlan, own
from mesh_push.modes.judgement import HostVerdict, Kind
from tests.kit import DATA, ROOT, judge, plan, script

EVPN_DATA = DATA / "evpn"


def lab_plan() -> EvpnPlan:
    mesh = inventory.load(ROOT / "inventory/lab-evpn.yaml")
    return own(plan(mesh, {h.name: f"{h.name}-key" for h in mesh.hosts}))


def test_paths_are_shortest_and_reflectors_most_central() -> None:
    u = lab_plan().underlay
    assert u is not None
    # vorke reaches pi0 via rho (95 + 5) rather than via epsilon and rho (18 + 85 + 5).
    assert u.path("vorke", "pi0") == ["vorke", "rho", "pi0"]
    assert u.path("bob", "pi0") == ["bob", "rho", "pi0"]
    assert u.latency_of(u.path("epsilon", "pi0")) == 90
    assert u.reflectors == ("rho", "bob")
    assert sum(u.latency_of(p) for _a, _b, p in u.pairs()) == 592


def test_equal_cost_paths_are_all_next_hops() -> None:
    text = """
mesh: {mode: evpn}
hosts:
  a: {endpoint: static, address: 192.0.2.1}
  b: {endpoint: static, address: 192.0.2.2}
  c: {endpoint: static, address: 192.0.2.3}
  d: {endpoint: static, address: 192.0.2.4}
links:
  - {hosts: [a, b], latency_ms: 10}
  - {hosts: [a, c], latency_ms: 10}
  - {hosts: [b, d], latency_ms: 10}
  - {hosts: [c, d], latency_ms: 10}
"""
    u = evpn.underlay(inventory.parse(text, Path("square.yaml")))
    assert u.next_hops[("a", "d")] == {"b", "c"}
    assert u.path("a", "d") == ["a", "b", "d"]  # the first name among equals


def test_links_number_interfaces_ports_and_addresses_by_vni() -> None:
    p = lab_plan()
    rho = p.evpn_host("rho")
    pi0 = p.evpn_host("pi0")
    to_pi0 = next(e for e in rho.links if e.peer == "pi0")
    assert (to_pi0.name, to_pi0.port, str(to_pi0.address)) == ("wg0-7", 56567, "169.254.0.14/31")
    (to_rho,) = pi0.links
    assert str(to_rho.address) == "169.254.0.15/31" and str(to_rho.peer_address) == "169.254.0.14"
    # One peer per link interface: the host at the far end.
    (rho_peer,) = to_rho.iface.peers
    (pi0_peer,) = to_pi0.iface.peers
    assert (rho_peer.name, pi0_peer.name) == ("rho", "pi0")
    assert rho_peer.endpoint == "198.18.4.12:56567" and rho_peer.keepalive == 25  # pi0 is NATed
    assert pi0_peer.endpoint is None and pi0_peer.keepalive is None
    assert [n for n, _ in pi0.neighbors] == ["bob", "rho"] and not pi0.reflector
    assert len(rho.neighbors) == 4 and rho.reflector


def psk_mesh() -> Mesh:
    """The evpn lab with a pre-shared key on every link (`mesh.psk`)."""
    path = ROOT / "inventory/lab-evpn.yaml"
    text = path.read_text().replace("  keys: host\n", "  keys: host\n  psk: true\n", 1)
    return inventory.parse(text, path)


def test_pre_shared_keys_in_evpn_mode() -> None:
    """evpn mode takes pre-shared keys as stp does: each link interface's one peer has the
    key file of the host at its far end and the link's key by fingerprint, and the host script
    installs that file's key on that interface (never the key itself)."""
    mesh = psk_mesh()
    assert mesh.psk and all(lk.psk for lk in mesh.links)
    fps = {lk: keys.psk_fingerprint(f"key of {'+'.join(lk.hosts)}") for lk in mesh.links}
    p = own(plan(mesh, {h.name: f"{h.name}-key" for h in mesh.hosts}, fps))
    for h in mesh.hosts:
        hp = p.evpn_host(h.name)
        assert len(hp.peers) == len(hp.links) > 0
        text = script(p, h.name)
        assert text.count('preshared-key "$F"') == len(hp.links)
        for end in hp.links:
            (peer,) = end.iface.peers
            (lk,) = [lk for lk in mesh.links if lk.vni == end.vni]
            assert peer.name == end.peer and peer.psk
            assert (peer.psk_file, peer.psk_fp) == (mesh.psk_file(end.peer), fps[lk])
            # On the link's own interface: its block sets WG, then installs the peer's file.
            block = text.split(f"\nWG={end.name}\n", 1)[1].split("\nWG=", 1)[0]
            assert f"\nF={shlex.quote(mesh.psk_file(end.peer))}\n" in block
            assert f"want={shlex.quote(fps[lk])}\n" in block
        for lk in mesh.links:
            assert f"key of {'+'.join(lk.hosts)}" not in text
        subprocess.run(["sh", "-n"], input=text.encode(), check=True)
    plain = lab_plan()  # no psk: none planned, and any one found is removed
    assert not any(pe.psk for hp in plain.hosts for pe in hp.peers)
    assert 'preshared-key "$F"' not in script(plain, "rho")


NOW = 1_800_000_000


def link_interfaces(p: EvpnPlan, name: str, alias: str, silent: set[str]) -> HostState:
    """`name`'s link interfaces as its script leaves them (with the mark `alias`), nothing
    else read; the peers of `silent` never answered a handshake, the others just did."""
    hp = p.evpn_host(name)
    links, wg = {}, {}
    for end in hp.links:
        (peer,) = end.iface.peers
        key = peer.public_key or ""
        links[end.name] = Link(
            end.name, True, p.mesh.mtu.wireguard, "wireguard", addresses=[str(end.address)],
            alias=alias,
        )  # fmt: skip
        wg[end.name] = WgIf(
            public_key=hp.public_key or "",
            listen_port=end.port,
            handshakes={key: 0 if end.peer in silent else NOW - 5},
            allowed_ips={key: peer.allowed_ips_text},
            keepalives={key: str(peer.keepalive or "off")},
            psks={key: "none"},
        )
    return HostState(name, NOW, links, wg)


def test_judge_names_each_peer_without_a_handshake() -> None:
    """As in stp mode: a link interface's peer that never answered is a runtime finding of its
    host, by name; the others are fine. Interfaces with the mark every mesh shared before
    meshes had names are this mesh's, as its own mark's are."""
    p = lab_plan()
    for alias in (p.mesh.mark, LEGACY_MARK):
        j = judge(p, {"rho": link_interfaces(p, "rho", alias, {"pi0"})})
        v = j.hosts["rho"]
        silent = [f for f in v.findings if f.text.startswith("no handshake with")]
        assert [(f.kind, f.text) for f in silent] == [(Kind.RUNTIME, "no handshake with pi0")]
        # Nothing else of the link interfaces is amiss; the bridge and VXLAN device were not
        # read (so missing), and the silent link is the link's problem too.
        assert v.reasons == [
            "no handshake with pi0",
            "bridge internet missing",
            "vxlan wg0-vx missing",
            "link rho–pi0: no handshake at rho",
        ]


RHO_ROUTING = {
    "vtep-route": "unreachable 10.88.88.0/24 proto 233 \n",
    "vtep-rules": "0:\tfrom all lookup local\n"
    "20000:\tfrom 10.88.88.2 to 10.88.88.0/24 lookup main proto 233\n"
    "20001:\tfrom 10.88.88.2 unreachable proto 233\n"
    "32766:\tfrom all lookup main\n",
}


def frr_sections(
    prefix: str = "", lsdb: str = "", answers: dict[str, str] | None = None
) -> dict[str, str]:
    """rho's FRR as captured (`prefix`: in another state); its OSPF database from the
    captures of `lsdb` (the healthy mesh's by default; "lying-": vorke announcing bob's VTEP
    as its own, and 0.0.0.0/1 and bob's VTEP as external routes); `answers`: others."""

    def read(name: str) -> str:
        if answers and name in answers:
            return answers[name]
        pre = lsdb if name.startswith("ospf-database") else prefix
        return (EVPN_DATA / f"{pre}rho-{name}.json").read_text()

    # What gather.sh.j2 prints: one vtysh -E, each question echoed after the prompt.
    captures = ["bgp-l2vpn-evpn-summary", "bfd-peers", "ospf-neighbor", "evpn-vni-detail",
                "ospf-database-router", "ospf-database-external"]  # fmt: skip
    vtysh = "".join(
        f"rho# {q}\n{read(c)}" for q, c in zip(observe.QUESTIONS, captures, strict=True)
    )
    return {"frr-daemons": "watchfrr\nzebra\nbgpd\nospfd\nbfdd", "frr-vtysh": vtysh,
            **RHO_ROUTING}  # fmt: skip


def test_the_gather_asks_what_observe_reads() -> None:
    text = (ROOT / "templates/evpn/gather.sh.j2").read_text()
    asked = text.split("QUESTIONS='", 1)[1].split("'", 1)[0].splitlines()
    assert asked == list(observe.QUESTIONS)


def test_vtysh_answers_split_at_each_echoed_question() -> None:
    """A failed question (bfdd down) ends the one vtysh; each is then asked again on its own,
    and the last answer to each counts. A line that only looks like a prompt is an answer's."""
    text = (
        'bob# show bgp l2vpn evpn summary json\n{"a": 1}\n'
        "bob# show bfd peers json\n% bfdd is not running\n"
        'bob# show bgp l2vpn evpn summary json\n{"a": 2}\n'
        "bob# show bfd peers json\n"
        "bob# show ip ospf neighbor json\nsome thing# show evpn vni detail json\n"
    )
    assert observe.answers(text) == {
        "frr-bgp": '{"a": 2}\n',
        "frr-bfd": "",
        "frr-ospf": "some thing# show evpn vni detail json\n",
    }


def test_frr_captures_parse() -> None:
    st = observe.parse(frr_sections())
    assert st is not None
    assert st.bgp == dict.fromkeys(
        ["10.88.88.1", "10.88.88.3", "10.88.88.4", "10.88.88.5"], "Established"
    )
    assert set(st.bfd.values()) == {"up"} and len(st.bfd) == 4
    assert set(st.ospf.values()) == {"Full"} and len(st.ospf) == 4
    assert st.remote_vteps[100] == {"10.88.88.1", "10.88.88.3", "10.88.88.4", "10.88.88.5"}
    assert set(st.announced) == {f"10.88.88.{i}" for i in range(1, 6)} and not st.external
    assert st.announced["10.88.88.5"] == {IPv4Network("10.88.88.5/32"),
                                          IPv4Network("169.254.0.14/31")}  # fmt: skip
    assert st.vtep_route == "unreachable 10.88.88.0/24 proto 233"
    assert "20001: from 10.88.88.2 unreachable proto 233" in st.rules
    assert observe.parse({}) is None
    broken = observe.parse({"frr-daemons": "", "frr-bgp": "{oops", "frr-vni": "[1, 2]"})
    assert broken is not None and broken.bgp == {} and broken.remote_vteps == {}


def test_judge_sees_an_isolated_host_in_bfd_and_evpn() -> None:
    """Captured on rho while pi0 was cut off: BGP still says Established (hold time), but
    BFD is down and EVPN lost pi0's VTEP: the judge says so."""
    p = lab_plan()
    frr = observe.parse(frr_sections("isolated-"))
    assert frr is not None
    st = HostState("rho", 0, {}, {}, mode_state=frr)
    v = HostVerdict("rho", True, True, state=st)
    evpn_judge._judge_frr(p, p.evpn_host("rho"), st, v, {h.name for h in p.mesh.hosts})
    assert any("lacks remote VTEPs 10.88.88.5" in r for r in v.reasons), v.reasons
    links = judge(p, {"rho": st}, scope={"rho"}).wires
    to_pi0 = next(w for w in links if set(w["hosts"]) == {"rho", "pi0"})
    assert to_pi0["ends"]["rho"]["bfd"] != "up"
    assert any("BFD at rho" in x for x in to_pi0["problems"])


def test_a_stopped_frr_is_drift_the_script_repairs() -> None:
    p = lab_plan()
    frr = dataclasses.replace(observe.parse(frr_sections()), daemons={"zebra"})  # type: ignore[type-var]
    st = HostState("rho", 0, {}, {}, mode_state=frr)
    v = HostVerdict("rho", True, True, state=st)
    evpn_judge._judge_frr(p, p.evpn_host("rho"), st, v, {"rho"})
    assert v.drift == ["FRR mesh-push-labevpn not running (watchfrr, bgpd, ospfd, bfdd missing)"]


def test_hostile_names_make_no_evpn_script() -> None:
    """Values the inventory would refuse, in a model built past it: the evpn host script is
    not rendered at all (its FRR files take only `frr` words), rather than carry them."""
    import pytest

    from mesh_push.host.templates import load_templates

    env = load_templates()
    for bad in ["a b", "x\nrouter bgp 1", "$(reboot)", "a;b", "!"]:
        mesh = inventory.load(ROOT / "inventory/lab-evpn.yaml")
        hosts = tuple(
            dataclasses.replace(h, name=bad) if h.name == "pi0" else h for h in mesh.hosts
        )
        links = tuple(dataclasses.replace(lk, b=bad) if lk.b == "pi0" else lk for lk in mesh.links)
        p = plan(dataclasses.replace(mesh, hosts=hosts, links=links), {})
        for name in ("rho", bad):
            with pytest.raises(ValueError, match="FRR"):
                script(p, name, allow_missing_peers=True, env=env)


def rho_state(**sections: str) -> HostState:
    frr = observe.parse({**frr_sections(), **sections})
    return HostState("rho", 0, {}, {}, mode_state=frr)


def test_a_host_announcing_what_is_not_its_own_is_named() -> None:
    """Captured on rho while vorke announced bob's VTEP as a stub of its own (drawing bob's
    VXLAN traffic from epsilon), and 0.0.0.0/1 and bob's VTEP as external routes: vorke is
    named, by whichever host's database shows it; nobody else is."""
    p = lab_plan()
    frr = observe.parse(frr_sections(lsdb="lying-"))
    st = HostState("rho", 0, {}, {}, mode_state=frr)
    j = judge(p, {"rho": st}, {h.name: "unreachable" for h in p.mesh.hosts if h.name != "rho"})
    said = "announces in OSPF what is not its own: 0.0.0.0/1, 10.88.88.1/32 (bob's VTEP)"
    assert said in j.hosts["vorke"].reasons, j.hosts["vorke"].reasons
    assert not any("announces" in r for n, v in j.hosts.items() if n != "vorke" for r in v.reasons)
    # vorke outside the run's scope: said for the whole mesh.
    j = judge(p, {"rho": st}, scope={"rho"})
    assert f"vorke {said}" in j.reasons
    healthy = judge(p, {"rho": rho_state()}, scope={"rho"})
    assert not any("announces" in r for r in healthy.reasons)
    # External LSAs at MaxAge are being withdrawn: what is left is the stub.
    external = (EVPN_DATA / "lying-rho-ospf-database-external.json").read_text()
    flushed = {"ospf-database-external": re.sub(r'"lsaAge": \d+', '"lsaAge": 3600', external)}
    sections = frr_sections(lsdb="lying-", answers=flushed)
    st = HostState("rho", 0, {}, {}, mode_state=observe.parse(sections))
    j = judge(p, {"rho": st}, scope={"rho"})
    assert "vorke announces in OSPF what is not its own: 10.88.88.1/32 (bob's VTEP)" in j.reasons


@pytest.mark.parametrize(
    ("sections", "finding"),
    [
        ({"vtep-route": ""}, "the VTEPs' network 10.88.88.0/24 is not unreachable"),
        ({"vtep-route": "10.88.88.0/24 via 198.18.4.1 dev eth0\n"}, "is not unreachable"),
        ({"vtep-rules": "32766:\tfrom all lookup main\n"},
         "ip rule missing: VXLAN from 10.88.88.2 only to 10.88.88.0/24"),
        ({"vtep-rules": RHO_ROUTING["vtep-rules"].replace("20001:", "20002:")},
         "ip rule missing: VXLAN from 10.88.88.2 nowhere else"),
    ],
)  # fmt: skip
def test_the_vtep_route_and_rules_are_drift(sections: dict[str, str], finding: str) -> None:
    """What keeps VXLAN from leaving in cleartext is drift `up` repairs (the host script's
    "vtep routes" step), not a silent hole."""
    p = lab_plan()
    v = HostVerdict("rho", True, True, state=rho_state(**sections))
    evpn_judge._judge_vtep_routing(p, p.evpn_host("rho"), rho_state(**sections), v)
    assert [d for d in v.drift if finding in d], v.drift
    ok = HostVerdict("rho", True, True, state=rho_state())
    evpn_judge._judge_vtep_routing(p, p.evpn_host("rho"), rho_state(), ok)
    assert not ok.findings
