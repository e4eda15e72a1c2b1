"""DNS names as WireGuard endpoints (issue 12), the pure parts: validating a name, the plan's
`name:port` endpoints, the rendered re-resolver (run against a fake `wg` and `getent`) and the
lab's names and moves. No root, no network."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
from ipaddress import IPv4Address, ip_address
from pathlib import Path

import pytest

from mesh_push import inventory
from mesh_push.core.model import Mesh
from mesh_push.core.values import dns_name_problem, endpoint_address
from mesh_push.host.templates import load_templates
from mesh_push.lab import addresses
from mesh_push.lab.errors import LabError
from mesh_push.lab.names import moved, served_names
from mesh_push.modes import scripts
from mesh_push.modes.base import Plan
from tests import kit

KEYS = {
    "hub": "F/imQ+PQttzsOuj9x5Q4BUCdJs1IzEEAdDh+3wUelyI=",
    "bob": "jOw/BLezPW6vrOaVjjcLDfglDAotNPU9kdnLyQz6uDc=",
    "pi": "2fMuw5FLWsI3Q0fJ0A9FmayiGBnMhRDGf69Yv37La0A=",
}
MESH = """\
mesh:
  wireguard: {port: 56560%s}
hosts:
  hub: {endpoint: static, address: Hub.Example.NET.}
  bob: {endpoint: static, address: 192.0.2.11}
  pi: {endpoint: nat}
links:
  - [hub, bob]
  - [hub, pi]
"""
LAB = "lab: {name: mpu, network: 198.18.40.0/23}\n"


def load(tmp_path: Path, extra: str = "", text: str = MESH) -> Mesh:
    path = tmp_path / "names.yaml"
    path.write_text(text % extra)
    return inventory.load(path)


def build(tmp_path: Path, extra: str = "") -> Plan:
    return kit.plan(load(tmp_path, extra), KEYS)


def script(p: Plan, host: str) -> str:
    return kit.script(p, host)


def reresolver(p: Plan, host: str) -> str:
    return scripts.reresolver(p, p.host(host), load_templates())


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "name",
    ["vps1", "vps1.example.net", "a-b.c0.example", "xn--bcher-kva.example", "A.B.C.", "1a.2b"],
)
def test_host_names_by_rfc_1123(name: str) -> None:
    assert dns_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        (".", "empty"),
        ("a..b", "empty label"),
        (".a", "empty label"),
        ("a_b.net", "'_'"),
        ("a b", "' '"),
        ("$(reboot).net", "'$()'"),
        ("-a.net", "starts or ends with '-'"),
        ("a-.net", "starts or ends with '-'"),
        ("a" * 64 + ".net", "64 characters, more than 63"),
        (".".join(["a" * 63] * 4), "255 characters, more than a DNS name's 253"),
        ("192.0.2.300", "last label '300' is all digits"),
        ("bücher.de", "only ASCII"),
    ],
)
def test_not_host_names(name: str, why: str) -> None:
    problem = dns_name_problem(name)
    assert problem is not None and why in problem


def test_a_name_of_253_characters_and_a_trailing_dot_is_fine() -> None:
    name = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(name) == 253
    assert dns_name_problem(name) is None and dns_name_problem(name + ".") is None


def test_endpoint_address_prefers_ip_and_drops_the_root_dot() -> None:
    assert endpoint_address("192.0.2.1") == (ip_address("192.0.2.1"), None)
    assert endpoint_address("2001:db8::1") == (ip_address("2001:db8::1"), None)
    assert endpoint_address("vps.example.net.") == ("vps.example.net", None)
    addr, why = endpoint_address("vps..net")
    assert addr is None and why is not None and why.startswith("neither an IP address nor")


def test_named_host_loads(tmp_path: Path) -> None:
    mesh = load(tmp_path)
    hub = mesh.host("hub")
    assert hub.address == "Hub.Example.NET" and hub.dns_name == "Hub.Example.NET"
    assert mesh.host("bob").dns_name is None and mesh.host("pi").dns_name is None
    assert mesh.wg_reresolve == 60


@pytest.mark.parametrize(("extra", "seconds"), [(", reresolve: 5", 5), (", reresolve: 0", 0)])
def test_reresolve_setting(tmp_path: Path, extra: str, seconds: int) -> None:
    assert load(tmp_path, extra).wg_reresolve == seconds


def test_a_name_is_never_checked_against_the_mesh_networks(tmp_path: Path) -> None:
    # 10.88.88.7.nip.io would resolve inside the mesh, but the loader does no lookups.
    text = MESH.replace("Hub.Example.NET.", "10-88-88-7.example.net")
    assert load(tmp_path, text=text).host("hub").dns_name == "10-88-88-7.example.net"


def test_an_ip_and_a_name_of_two_hosts_are_not_compared(tmp_path: Path) -> None:
    text = MESH.replace("192.0.2.11", "192.0.2.12").replace("Hub.Example.NET.", "192-0-2-12.net")
    assert load(tmp_path, text=text).host("bob").address == ip_address("192.0.2.12")


# --------------------------------------------------------------------------- plan


def test_peers_of_a_named_host_get_name_and_port(tmp_path: Path) -> None:
    p = build(tmp_path)
    for host in ("bob", "pi"):
        (peer,) = p.host(host).peers
        assert (peer.name, peer.endpoint, peer.endpoint_name) == (
            "hub",
            "Hub.Example.NET:56560",
            "Hub.Example.NET",
        )
        assert p.host(host).named_peers == ((p.host(host).wg[0], peer),)
    hub = {pe.name: pe for pe in p.host("hub").peers}
    assert hub["bob"].endpoint == "192.0.2.11:56560" and hub["bob"].endpoint_name is None
    assert hub["pi"].endpoint is None and p.host("hub").named_peers == ()


def test_plan_json_shows_the_name(tmp_path: Path) -> None:
    from mesh_push.views import reports

    data = reports.plan_json(build(tmp_path))
    hosts = {h["name"]: h for h in data["hosts"]}
    assert hosts["hub"]["address"] == "Hub.Example.NET"
    assert hosts["pi"]["peers"][0]["endpoint"] == "Hub.Example.NET:56560"
    json.dumps(data)


# --------------------------------------------------------------------------- render


def test_a_host_with_a_named_peer_carries_and_starts_the_re_resolver(tmp_path: Path) -> None:
    p = build(tmp_path, ", reresolve: 7")
    text = script(p, "pi")
    # Carried as one shell word (a heredoc would end at a line of a value that matched its
    # delimiter).
    carried = reresolver(p, "pi")
    assert f"RERESOLVER={shlex.quote(carried)}\n" in text
    assert f"check mpwg {KEYS['hub']} hub Hub.Example.NET 56560 || rc=1" in carried
    assert "sleep 7 &" in carried
    assert 'setsid /bin/sh "$STATE/reresolve.sh" loop' in text
    assert 'did "re-resolver every "7" s"' in text
    # The endpoint is the re-resolver's business: `wg show` never shows a name.
    assert "endpoint Hub.Example.NET" not in text
    subprocess.run(["sh", "-n"], input=text.encode(), check=True)


def test_evpn_re_resolves_a_named_peer_on_its_link_interface(tmp_path: Path) -> None:
    """evpn mode takes DNS names as stp does: a link interface's one peer is known by name at
    the link's port (wireguard.port + VNI), and the same re-resolver keeps it pointed there,
    on that interface."""
    mesh = load(tmp_path, ", reresolve: 7", MESH.replace("mesh:\n", "mesh:\n  mode: evpn\n", 1))
    p = kit.plan(mesh, KEYS)
    for host in ("bob", "pi"):
        (lk,) = [lk for lk in mesh.links if set(lk.hosts) == {"hub", host}]
        port = 56560 + lk.vni
        ((iface, peer),) = p.host(host).named_peers
        assert (iface.name, iface.port) == (f"mpwg-{lk.vni}", port)
        assert (peer.name, peer.endpoint, peer.endpoint_name, peer.port) == (
            "hub",
            f"Hub.Example.NET:{port}",
            "Hub.Example.NET",
            port,
        )
        text = script(p, host)
        carried = reresolver(p, host)
        assert f"RERESOLVER={shlex.quote(carried)}\n" in text
        assert f"check mpwg-{lk.vni} {KEYS['hub']} hub Hub.Example.NET {port} || rc=1" in carried
        assert "sleep 7 &" in carried
        assert 'setsid /bin/sh "$STATE/reresolve.sh" loop' in text
        assert "endpoint Hub.Example.NET" not in text
        subprocess.run(["sh", "-n"], input=text.encode(), check=True)
    assert p.host("hub").named_peers == ()
    assert "setsid" not in script(p, "hub")


def test_a_host_without_named_peers_only_stops_a_left_over_loop(tmp_path: Path) -> None:
    text = script(build(tmp_path), "hub")
    assert "reresolve.sh.new" not in text and "setsid" not in text
    assert 'if [ -n "$rr_pid" ]; then act kill "$rr_pid"; did "re-resolver stopped"; fi' in text
    assert 'rm -f "$STATE/reresolve.sh"' in text
    assert "endpoint 192.0.2.11:56560" in text


def test_reresolve_0_resolves_at_apply_time_only(tmp_path: Path) -> None:
    text = script(build(tmp_path, ", reresolve: 0"), "bob")
    assert '/bin/sh "$STATE/reresolve.sh" once' in text
    assert "setsid" not in text and "re-resolver stopped" in text
    assert 'rm -f "$STATE/reresolve.sh"' not in text  # kept: the next apply compares with it


def test_hostile_names_are_quoted_even_past_the_loader(tmp_path: Path) -> None:
    p = build(tmp_path)
    evil = "x'; touch /tmp/pwned; echo '$(id)"
    hp = p.host("pi")
    (iface,) = hp.wg
    peer = dataclasses.replace(iface.peers[0], endpoint_name=evil, name="h`id`")
    iface = dataclasses.replace(iface, name="wg$(id)", peers=(peer,))
    text = scripts.reresolver(p, dataclasses.replace(hp, wg=(iface,)), load_templates())
    (line,) = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("check ")]
    # The shell reads the line back as exactly the five words, and runs nothing.
    words = subprocess.run(
        ["sh", "-c", "printf '%s\\n' " + line.removeprefix("check ").removesuffix(" || rc=1")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert words == ["wg$(id)", KEYS["hub"], "h`id`", evil, "56560"]


def test_down_stops_the_re_resolver_first(tmp_path: Path) -> None:
    text = scripts.down_script(build(tmp_path).mesh, load_templates(), purge=False)
    assert text.index("re-resolver stopped") < text.index("ip link del")
    subprocess.run(["sh", "-n"], input=text.encode(), check=True)


# --------------------------------------------------------------------------- the re-resolver, run

FAKE_WG = """#!/bin/sh
# wg show IF endpoints | wg set IF peer KEY endpoint EP, on the files of $FAKE
case "$1" in
  show) cat "$FAKE/endpoints" ;;
  set) echo "$*" >> "$FAKE/sets"
       awk -v k="$4" -v e="$6" '$1 == k {$2 = e} {print $1 "\\t" $2}' "$FAKE/endpoints" >"$FAKE/n"
       mv "$FAKE/n" "$FAKE/endpoints" ;;
esac
"""
FAKE_GETENT = """#!/bin/sh
# getent ahosts -- NAME: what $FAKE/dns says NAME resolves to, as glibc prints it
[ "$1" = ahosts ] && [ "$2" = -- ] || exit 2
awk -v n="$3" '$1 == n {print $2 "\\tSTREAM " n; print $2 "\\tDGRAM"; print $2 "\\tRAW"; f = 1}
  END {exit !f}' "$FAKE/dns"
"""


class Resolver:
    """The rendered re-resolver of pi, with `wg` and `getent` replaced by fakes."""

    def __init__(self, tmp_path: Path) -> None:
        text = reresolver(build(tmp_path), "pi")
        fake = tmp_path / "fake"
        fake.mkdir()
        for name, body in (("wg", FAKE_WG), ("getent", FAKE_GETENT)):
            (fake / name).write_text(body)
            (fake / name).chmod(0o755)
        path_line = next(line for line in text.splitlines() if line.startswith("PATH="))
        self.script = tmp_path / "reresolve.sh"
        self.script.write_text(text.replace(path_line, f"PATH={fake}:{path_line[5:]}"))
        self.fake = fake
        self.key = KEYS["hub"]

    def state(self, endpoint: str, *dns: str) -> None:
        (self.fake / "endpoints").write_text(f"{self.key}\t{endpoint}\n")
        (self.fake / "dns").write_text("".join(f"Hub.Example.NET {a}\n" for a in dns))
        (self.fake / "sets").unlink(missing_ok=True)

    def once(self) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "FAKE": str(self.fake)}
        return subprocess.run(
            ["sh", str(self.script), "once"], capture_output=True, text=True, env=env, check=True
        )

    @property
    def endpoint(self) -> str:
        return (self.fake / "endpoints").read_text().split()[1]


@pytest.fixture
def resolver(tmp_path: Path) -> Resolver:
    if not shutil.which("awk"):
        pytest.skip("needs awk")
    return Resolver(tmp_path)


def test_once_sets_a_missing_endpoint(resolver: Resolver) -> None:
    resolver.state("(none)", "192.0.2.50")
    out = resolver.once().stdout
    assert resolver.endpoint == "192.0.2.50:56560"
    assert out == "mpwg peer hub endpoint 192.0.2.50:56560 (Hub.Example.NET, was (none))\n"


def test_once_follows_a_new_address(resolver: Resolver) -> None:
    resolver.state("192.0.2.50:56560", "192.0.2.60")
    resolver.once()
    assert resolver.endpoint == "192.0.2.60:56560"


def test_no_churn_while_the_address_in_use_is_one_of_the_names(resolver: Resolver) -> None:
    resolver.state("192.0.2.61:56560", "192.0.2.60", "192.0.2.61")
    assert resolver.once().stdout == ""
    assert not (resolver.fake / "sets").exists()


def test_ipv6_endpoints_are_bracketed(resolver: Resolver) -> None:
    resolver.state("192.0.2.50:56560", "2001:db8::5")
    resolver.once()
    assert resolver.endpoint == "[2001:db8::5]:56560"
    resolver.state("[2001:db8::5]:56560", "2001:db8::5")
    assert resolver.once().stdout == ""


def test_an_unresolvable_name_keeps_the_endpoint(resolver: Resolver) -> None:
    resolver.state("192.0.2.50:56560")
    res = resolver.once()
    assert resolver.endpoint == "192.0.2.50:56560" and res.stdout == ""
    assert "cannot resolve Hub.Example.NET: peer hub keeps endpoint 192.0.2.50:56560" in res.stderr


# --------------------------------------------------------------------------- the lab


def lab_plan(tmp_path: Path) -> addresses.LabPlan:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB + MESH.replace("192.0.2.11", "198.18.40.11") % "")
    return addresses.plan(inventory.load(path))


def test_a_named_host_gets_a_wan_address_and_every_host_its_name(tmp_path: Path) -> None:
    p = lab_plan(tmp_path)
    hub = p.node("hub")
    assert hub.dns_name == "Hub.Example.NET" and hub.kind == "static"
    assert hub.address == IPv4Address("198.18.40.254")  # from the top, like dynamic hosts
    assert served_names(p) == {"Hub.Example.NET": "198.18.40.254"}
    assert addresses.LabPlan.from_json(p.to_json()) == p


def test_move_gives_a_named_host_a_new_address(tmp_path: Path) -> None:
    p = moved(lab_plan(tmp_path), "hub", "198.18.40.20")
    hub = p.node("hub")
    assert hub.address == hub.wan_address == IPv4Address("198.18.40.20")
    assert served_names(p) == {"Hub.Example.NET": "198.18.40.20"}
    assert p.node("bob") == lab_plan(tmp_path).node("bob")


@pytest.mark.parametrize(
    ("host", "address", "why"),
    [
        ("bob", "198.18.40.20", "inventory address is an IP address"),
        ("pi", "198.18.40.20", "not on the wan"),
        ("pi.router", "198.18.40.20", "not on the wan"),
        ("nobody", "198.18.40.20", "has no host 'nobody'"),
        ("hub", "198.18.41.20", "not a usable address of the lab's wan"),
        ("hub", "198.18.40.255", "not a usable address"),
        ("hub", "198.18.40.1", "the controller's"),
        ("hub", "198.18.40.11", "already bob's"),
        ("hub", "hub.example.net", "not an IPv4 address"),
    ],
)
def test_moves_that_cannot_be(tmp_path: Path, host: str, address: str, why: str) -> None:
    with pytest.raises(LabError, match=why):
        moved(lab_plan(tmp_path), host, address)


@pytest.mark.parametrize(
    "poisoned",
    [
        ["127.0.0.1"],
        ["127.3.4.5", "::1"],
        ["0.0.0.0", "::"],
        ["10.88.88.7"],  # the mesh's WireGuard network
        ["10.99.99.3"],  # its bridge network
        ["169.254.0.9"],  # evpn's link addresses
        ["fe80::1", "::ffff:127.0.0.1"],
    ],
)
def test_a_name_that_points_into_the_mesh_or_at_itself_is_refused(
    resolver: Resolver, poisoned: list[str]
) -> None:
    resolver.state("192.0.2.50:56560", *poisoned)
    res = resolver.once()
    assert resolver.endpoint == "192.0.2.50:56560" and res.stdout == ""
    assert "Hub.Example.NET resolves only to addresses a peer may not have" in res.stderr
    # Beside a usable address, they are skipped.
    resolver.state("192.0.2.50:56560", *poisoned, "192.0.2.70")
    resolver.once()
    assert resolver.endpoint == "192.0.2.70:56560"
