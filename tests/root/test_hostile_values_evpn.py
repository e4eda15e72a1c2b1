"""Hostile values in evpn mode: the host script, the FRR files it carries, the evpn gather and
the down script of an evpn host, in test_hostile_values' sandbox (its stubs, with `vtysh`,
and /usr/lib/frr's frrinit.sh and zebra, over the real directory; a group `frr`; a tmpfs at
/proc/sys/net/ipv4/conf for the links' forwarding).

Every field of FRR's files goes through the `frr` filter: one word of FRR's syntax
([A-Za-z0-9_.:/-]), or no script at all. So for each hostile value and each such field,
rendering either refuses (ValueError, nothing to push) or gives exactly the files a plain
marker gives with the marker replaced by the value (the value one word where the marker was,
nothing else moved), and the sandbox run writes those files byte for byte under
/etc/frr/PATHSPACE, root:frr 0640. Fields only the shell sees (ports, MTU, MAC, addresses,
the VTEPs' network, keys, endpoints) take every hostile value. rho (four links) is the host.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mesh_push import inventory, modes
from mesh_push.core import model
from mesh_push.host import programs as hostcmd
from mesh_push.host.templates import FRR_WORD
from mesh_push.modes import evpn as evpn_mode
from mesh_push.modes.base import Plan
from mesh_push.modes.evpn.plan import EvpnHost, LinkEnd, mesh_routes, vxlan_name
from mesh_push.modes.scripts import down_script, host_script
from tests import kit
from tests.root import test_hostile_values as hv
from tests.root.test_hostile_values import Case, s, with_rho

FRR_WORD_ERROR = "cannot be a word of an FRR configuration"
MARKER = "MARKERX"


@functools.cache
def base_plan() -> Plan:
    keys = json.loads((kit.GOLDEN / "seed.keys.json").read_text())
    return kit.plan(inventory.load(kit.ROOT / "inventory/lab-evpn.yaml"), keys)


@functools.cache
def routes() -> tuple[Any, ...]:
    """What OSPF may install, from the plain plan: hostile networks are the shell's test."""
    return mesh_routes(base_plan().mesh)


@pytest.fixture(autouse=True)
def _plain_routes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(evpn_mode, "mesh_routes", lambda _mesh: routes())
    yield


def rho(p: Plan) -> EvpnHost:
    hp = next(hp for hp in p.hosts if hp.host.number == 2)
    assert isinstance(hp, EvpnHost)
    return hp


def with_link(p: Plan, to: str, iface: dict[str, Any], **change: Any) -> Plan:
    """rho's link to `to` changed (its WireGuard interface by `iface`), in both places the
    host plan holds it."""
    links, wg = [], []
    for end in rho(p).links:
        if end.peer == to:
            end = dataclasses.replace(end, iface=dataclasses.replace(end.iface, **iface), **change)
        links.append(end)
        wg.append(end.iface)
    return with_rho(p, links=tuple(links), wg=tuple(wg))


def with_mesh(p: Plan, **change: Any) -> Plan:
    return dataclasses.replace(p, mesh=dataclasses.replace(p.mesh, **change))


def script(p: Plan) -> str:
    return host_script(modes.of(p.mesh), p, rho(p), hv.env_templates(), wireguard="kernel")


def frr_files(text: str) -> dict[str, str]:
    """The FRR files a host script carries: its FRR_CONF and FRR_DAEMONS words."""
    lex = shlex.shlex(text[text.index("\nFRR_CONF=") :], posix=True)
    lex.whitespace_split, lex.commenters = True, ""
    conf, daemons = lex.get_token(), lex.get_token()
    assert conf and daemons
    return {
        "frr.conf": conf.removeprefix("FRR_CONF="),
        "daemons": daemons.removeprefix("FRR_DAEMONS="),
    }


# --- what rho's evpn script does in the sandbox, where nothing exists yet


def evpn_calls(p: Plan) -> list[list[str]]:
    m, e = p.mesh, rho(p)
    br, vx, vtep = s(m.bridge), s(vxlan_name(m)), s(e.vtep)
    vteps, proto, pref = s(m.wg_network), s(model.NOROUTE_PROTO), s(model.VTEP_RULE_PREF)
    # An MTU of "" is what a missing /sys file reads as: nothing to change.
    mtu_wg, mtu_br = s(m.mtu.wireguard), s(m.mtu.bridge)
    calls: list[list[str]] = [["wg", "genkey"]]
    for end in e.links:
        n = s(end.name)
        calls += [
            ["ip", "link", "add", "dev", n, "type", "wireguard"],
            ["ip", "link", "set", "dev", n, "alias", m.mark],
            ["wg", "set", n, "private-key", m.key_file],
            ["wg", "set", n, "listen-port", s(end.port)],
            *([["ip", "link", "set", "dev", n, "mtu", s(m.mtu.wireguard)]] if mtu_wg else []),
            ["ip", "addr", "add", s(end.address), "dev", n],
            ["ip", "link", "set", "dev", n, "multicast", "on"],
            ["ip", "link", "set", "dev", n, "up"],
        ]
        for pe in end.iface.peers:
            by_address = bool(pe.endpoint) and not pe.endpoint_name
            argv = ["wg", "set", n, "peer", s(pe.public_key), "allowed-ips",
                    ",".join(s(x) for x in pe.allowed_ips)]  # fmt: skip
            if by_address:
                argv += ["endpoint", s(pe.endpoint)]
            calls.append([*argv, "persistent-keepalive", s(pe.keepalive or "off")])
    calls += [
        ["ip", "link", "add", "name", br, "type", "bridge", "stp_state", "0"],
        ["ip", "link", "set", "dev", br, "alias", m.mark],
        ["ip", "link", "set", "dev", br, "address", s(e.bridge_mac)],
        *([["ip", "link", "set", "dev", br, "mtu", s(m.mtu.bridge)]] if mtu_br else []),
        ["ip", "addr", "add", s(e.bridge_address), "dev", br],
        ["ip", "addr", "add", f"{vtep}/32", "dev", br],
        ["ip", "route", "add", "unreachable", vteps, "proto", proto],
        ["ip", "rule", "add", "from", vtep, "to", vteps, "lookup", "main", "pref", pref,
         "protocol", proto],
        ["ip", "rule", "add", "from", vtep, "unreachable", "pref", s(int(pref) + 1),
         "protocol", proto],
        ["ip", "link", "add", "name", vx, "type", "vxlan", "id", s(m.evpn.vni), "local", vtep,
         "dstport", s(m.vxlan_port), "nolearning"],
        ["ip", "link", "set", "dev", vx, "master", br],
        ["bridge", "link", "set", "dev", vx, "learning", "off"],
        ["bridge", "link", "set", "dev", vx, "neigh_suppress", "on"],
        ["ip", "link", "set", "dev", vx, "up"],
        ["ip", "link", "set", "dev", br, "up"],
        ["frrinit.sh", "start", m.frr_pathspace],
        ["vtysh", "-N", m.frr_pathspace, "-b"],
    ]  # fmt: skip
    return calls


def kernel_name(name: str) -> bool:
    """Can be a network interface's name at all (the kernel refuses `/` and `.`/`..`)."""
    return hv.dir_name_ok(name) and "/" not in name


def evpn_host_case(name: str, value: str, p: Plan) -> Case:
    text = script(p)
    m, e = p.mesh, rho(p)
    c = Case(name, value, "evpn host.sh", text)
    names = [s(m.bridge), s(vxlan_name(m)), *(s(end.name) for end in e.links)]
    if any(n in ("", ".", "..") for n in names):
        c.rc, c.only_reads = 1, True
        c.stderr_has = ["refusing to touch it", 'step "ownership" failed']
        return c
    for end in e.links:
        c.root[f"proc/sys/net/ipv4/conf/{s(end.name)}/forwarding"] = "0\n"
        c.files[f"proc/sys/net/ipv4/conf/{s(end.name)}/forwarding"] = "1\n"
    c.calls = evpn_calls(p)
    if m.frr_pathspace.endswith("\n"):
        # The shell drops the newlines a command's output ends with: `pwd -P` never names
        # such a directory, so the script takes it for a link planted there, and stops.
        c.rc, c.calls = 1, c.calls[:-2]
        c.stderr_has = ["is not a directory of its own", 'step "frr" failed']
        return c
    etc = f"etc/frr/{m.frr_pathspace}"
    for file, content in frr_files(text).items():
        c.files[f"{etc}/{file}"] = content
    c.files[f"{etc}/vtysh.conf"] = "service integrated-vtysh-config\n"
    c.stdout_has = [f"FRR instance {m.frr_pathspace} started"]
    return c


def evpn_down_case(name: str, value: str, p: Plan) -> Case:
    """An evpn host's down: its FRR instance (pid file, files) stopped and removed; the
    VTEPs' route and rules are asked for (the stubs show none: nothing to remove)."""
    m = p.mesh
    c = Case(name, value, "down.sh (evpn)", down_script(m, hv.env_templates(), purge=True))
    ps = m.frr_pathspace
    c.root[f"etc/frr/{ps}/frr.conf"] = "! ours\n"
    c.root[f"var/run/frr/{ps}/watchfrr.pid"] = "4242\n"
    c.root["etc/frr/frr.conf"] = "! the host's own\n"
    c.calls = [["frrinit.sh", "stop", ps], ["ip", "-o", "rule", "show"]]
    c.files[f"etc/frr/{ps}/frr.conf"] = None
    c.files[f"var/run/frr/{ps}/watchfrr.pid"] = None
    c.files["etc/frr/frr.conf"] = "! the host's own\n"
    return c


def evpn_gather_case(name: str, value: str, p: Plan) -> Case:
    m = p.mesh
    c = Case(name, value, "gather.sh (evpn)", hostcmd.gather(m, modes.of(m).gather_template))
    c.root[f"var/run/frr/{m.frr_pathspace}/zebra.pid"] = "1\n"
    c.calls = [["wg", "show", "all", "public-key"]]
    c.stdout_has = ["=== frr-daemons\n"]
    return c


# --- the fields


def mesh_name(v: str) -> list[Case]:
    p = with_mesh(base_plan(), name=v)
    if not hv.dir_name_ok(v):
        with pytest.raises(ValueError, match="cannot name a file on a host"):
            script(p)
        return []
    return [evpn_host_case("mesh.name", v, p), evpn_down_case("mesh.name", v, p),
            evpn_gather_case("mesh.name", v, p)]  # fmt: skip


def frr_words(change: Callable[[Plan, str], Plan], label: str) -> Callable[[str], list[Case]]:
    """A field FRR's files hold: a value that is not one FRR word is refused at rendering;
    one that is gives the marker's files with the value in its place, and runs."""

    def build(v: str) -> list[Case]:
        p = change(base_plan(), v)
        marked = frr_files(script(change(base_plan(), MARKER)))
        try:
            text = script(p)
        except ValueError as e:
            assert FRR_WORD_ERROR in str(e), e
            assert not FRR_WORD.fullmatch(v), v
            return []
        # (Nothing at all is no word, but can be part of one: `link-to-` + a peer's name.)
        assert FRR_WORD.fullmatch(v) or not v, f"{label}: {v!r} rendered into FRR's files"
        assert frr_files(text) == {k: x.replace(MARKER, v) for k, x in marked.items()}
        return [evpn_host_case(label, v, p)]

    return build


def every_link(p: Plan, v: str, **change: Any) -> Plan:
    for end in rho(p).links:
        p = with_link(p, end.peer, {}, **{k: (v if x is None else x) for k, x in change.items()})
    return p


def link_network(p: Plan, v: str) -> Plan:
    for end in rho(p).links:
        p = with_link(p, end.peer, {"address": _Iface(s(end.address), _Net(v))})
    return p


# Every field of the FRR files but the interface names, one at a time (so that a field
# without its filter cannot hide behind another's refusal): rho's name, VTEP, its links'
# costs, peers and networks, its BGP neighbours, the mesh's ASN and segment.
FRR_FIELDS: dict[str, Callable[[Plan, str], Plan]] = {
    "host name": lambda p, v: with_rho(p, host=dataclasses.replace(rho(p).host, name=v)),
    "vtep": lambda p, v: with_rho(p, vtep=v),
    "neighbours": lambda p, v: with_rho(p, neighbors=tuple((v, v) for _ in rho(p).neighbors)),
    "link cost": lambda p, v: every_link(p, v, cost=None),
    "link peer": lambda p, v: every_link(p, v, peer=None),
    "link network": link_network,
    "asn": lambda p, v: with_mesh(p, evpn=dataclasses.replace(p.mesh.evpn, asn=v)),
    "vni": lambda p, v: with_mesh(p, evpn=dataclasses.replace(p.mesh.evpn, vni=v)),
}


@dataclasses.dataclass(frozen=True)
class _Net:
    text: str

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(frozen=True)
class _Iface:
    """A link address whose network is hostile (the template's `l.address.network`)."""

    text: str
    network: _Net

    def __str__(self) -> str:
        return self.text


def link_name(p: Plan, v: str) -> Plan:
    return with_link(p, "bob", {"name": v})


def shell_fields(v: str) -> list[Case]:
    """Every field only the shell sees: the VXLAN port, MTUs, the bridge's MAC and address,
    the VTEPs' network, rho's link to bob (port, address, its peer's key, allowed IPs,
    endpoint, keepalive)."""
    p = with_mesh(
        base_plan(),
        vxlan_port=v,
        wg_network=v,
        mtu=dataclasses.replace(base_plan().mesh.mtu, wireguard=v, bridge=v),
    )
    p = with_rho(p, bridge_mac=v, bridge_address=v)
    bob: LinkEnd = next(end for end in rho(p).links if end.peer == "bob")
    (peer,) = bob.iface.peers
    hostile = dataclasses.replace(
        peer, public_key=v, allowed_ips=(v,), endpoint=v, keepalive=v, endpoint_name=None
    )
    address = _Iface(v, _Net(str(bob.address.network)))  # FRR's part stays plain
    p = with_link(p, "bob", {"port": v, "address": address, "peers": (hostile,)})
    return [evpn_host_case("shell fields", v, p), evpn_down_case("shell fields", v, p)]


FIELDS: dict[str, Callable[[str], list[Case]]] = {
    "mesh.name": mesh_name,
    **{f"frr: {name}": frr_words(change, name) for name, change in FRR_FIELDS.items()},
    "link name": frr_words(link_name, "link name"),
    "bridge": frr_words(lambda p, v: with_mesh(p, bridge=v), "bridge"),
    "shell fields": shell_fields,
}


def run(tmp_path: Path, cases: list[Case]) -> list[str]:
    dirs = hv.run_sandbox(tmp_path, cases)
    problems = [
        f"{c.label()}: {w}" for c, d in zip(cases, dirs, strict=True) for w in hv.check(c, d)
    ]
    for n in range(hv.WORKERS):
        found = (tmp_path / f"found-in-sandbox-{n}").read_text()
        problems += [f"CANARY in the sandbox: {found}"] if found else []
    return problems


def needs_frr() -> None:
    if not Path("/usr/lib/frr/frrinit.sh").exists():
        pytest.fail("needs FRR installed (/usr/lib/frr): scripts/install installs it")


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_hostile_values_in_evpn_stay_one_argument_or_are_refused(name: str, tmp_path: Path) -> None:
    needs_frr()
    values = [v for v in hv.HOSTILE if name != "link name" or kernel_name(v) or not
              FRR_WORD.fullmatch(v)]  # fmt: skip
    cases = [c for v in values for c in FIELDS[name](v)]
    assert cases
    problems = run(tmp_path, cases)
    assert not [p for p in tmp_path.rglob("*") if p.name == hv.CANARY]
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problems)"


def test_the_evpn_sandbox_sees_a_plain_run_as_the_lab_does(tmp_path: Path) -> None:
    """The expected calls and files are right: the plain plan passes every check."""
    needs_frr()
    p = base_plan()
    cases = [evpn_host_case("none", "", p), evpn_down_case("none", "", p),
             evpn_gather_case("none", "", p)]  # fmt: skip
    assert not run(tmp_path, cases)
