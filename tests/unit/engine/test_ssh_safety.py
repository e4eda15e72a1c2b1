"""Safe by construction, SSH side (issue 14): no command from ssh_config ever runs (`Match
exec` left out, `ProxyCommand` refused), multi-hop `ProxyJump`, known_hosts with `@revoked`
and `@cert-authority` lines (against an in-process paramiko sshd: a real handshake), the
address order, and one host's unexpected exception failing that host only. The real sshd is
in tests/e2e/test_ssh_keys_lab.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import paramiko
import pytest

from mesh_push import cli, inventory
from mesh_push.core.model import Mesh
from mesh_push.engine import connect, ssh, ssh_config
from mesh_push.engine.outcome import Outcome
from tests.fake_sshd import sshd

INVENTORY = """
hosts:
  bob: {endpoint: static, address: 198.51.100.1}
  rho: {endpoint: static, address: 198.51.100.2, ssh: {address: 203.0.113.9, user: admin}}
  pi0: {endpoint: nat, ssh: {address: 10.0.0.5}}
links: [[bob, rho], [rho, pi0]]
"""


def load(tmp_path: Path, config: str = "", top: str = "", hosts: str = INVENTORY) -> Mesh:
    (tmp_path / "ssh_config").write_text(config)
    path = tmp_path / "mesh.yaml"
    path.write_text(
        f"{top}ssh:\n  config: {tmp_path}/ssh_config\n  known_hosts: {tmp_path}/known_hosts\n"
        + hosts
    )
    return inventory.load(path)


# --------------------------------------------------------------------------- Match exec


def test_match_exec_never_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    class Ran:
        ok = True

    def run(command: str, **kwargs: Any) -> Ran:
        ran.append(command)
        return Ran()

    # What paramiko runs a `Match exec` command with.
    monkeypatch.setattr(paramiko.config.invoke, "run", run)
    marker = tmp_path / "pwned"
    config = (
        f'Match exec "touch {marker}-%h"\n  User evil\n  HostName 192.0.2.66\n'
        f"Match host bob !Exec 'touch {marker}-neg-%n'\n  Port 2222\n"
        "Host bob\n  User ops\n"
        f'match originalhost rho exec=x Exec "touch {marker}-%h"\n  User evil\n'
        "Host *\n  Port 2200\n"
    )
    m = load(tmp_path, config)
    cfg = ssh.load_config(m)
    bob = ssh.resolve(m, m.host("bob"), cfg)
    rho = ssh.resolve(m, m.host("rho"), cfg)
    # The Match blocks count as not matching; the Host blocks after them still apply.
    assert (bob.user, bob.hostname, bob.port) == ("ops", "198.51.100.1", 2200)
    assert (rho.user, rho.port) == ("admin", 2200)
    assert ran == []
    err = capsys.readouterr().err
    for line in (1, 4, 8):
        assert f"ssh_config:{line}: a `Match … exec` block is ignored" in err
    ssh.load_config(m)
    assert "warning" not in capsys.readouterr().err  # once per run is enough
    # What the stripping prevents: paramiko alone runs the command at lookup, %h and all.
    paramiko.SSHConfig.from_text(f'Match exec "touch {marker}-%h"\n  User x\n').lookup("bob")
    assert set(ran) == {f"touch {marker}-bob"}


def test_strip_match_exec_keeps_other_blocks() -> None:
    text = "Host a\n  User x\nMatch exec true\n  User y\n  Port 1\nMatch host b\n  User z\n"
    out, lines = ssh_config.strip_match_exec(text)
    assert lines == [3]
    assert out == "Host a\n  User x\n\n\n\nMatch host b\n  User z\n"


def test_unreadable_ssh_config_fails_every_host_without_traceback(tmp_path: Path) -> None:
    m = load(tmp_path, "Host bob\n  User ops\nUnparsable\n")
    session = connect.open_all(m, connect.Access(), None)
    for rep in session.reports.values():
        assert rep.outcome is Outcome.UNREACHABLE
        assert rep.failure is not None and "cannot read the ssh_config" in rep.failure.message


# --------------------------------------------------------------------------- ProxyCommand


def test_proxycommand_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    config = f"Host bob\n  ProxyCommand touch {marker}-%h\nHost rho\n  ProxyCommand none\n"
    m = load(tmp_path, config)
    with pytest.raises(ssh.SshError, match="ProxyCommand, which mesh-push does not run"):
        ssh.resolve(m, m.host("bob"), ssh.load_config(m))
    assert ssh.resolve(m, m.host("rho"), ssh.load_config(m)).jump is None
    session = connect.open_all(m, connect.Access(), None, only=["bob"])
    rep = session.reports["bob"]
    assert rep.outcome is Outcome.UNREACHABLE and rep.failure is not None
    assert "ProxyCommand" in rep.failure.message and "ProxyJump" in rep.failure.message
    assert not list(tmp_path.glob("pwned*"))


def test_proxycommand_of_a_jump_host_is_refused_too(tmp_path: Path) -> None:
    m = load(tmp_path, "Host pi0\n  ProxyJump gw\nHost gw\n  ProxyCommand nc %h %p\n")
    with pytest.raises(ssh.SshError, match="gw: ssh_config gives it a ProxyCommand"):
        ssh.resolve(m, m.host("pi0"), ssh.load_config(m))


def test_via_wins_over_an_ssh_config_proxycommand(tmp_path: Path) -> None:
    hosts = INVENTORY.replace("ssh: {address: 10.0.0.5}", "ssh: {address: 10.0.0.5, via: rho}")
    m = load(tmp_path, "Host pi0\n  ProxyCommand nc %h %p\n", hosts=hosts)
    target = ssh.resolve(m, m.host("pi0"), ssh.load_config(m))
    assert target.jump is not None and target.jump.hostname == "203.0.113.9"


# --------------------------------------------------------------------------- ProxyJump


def chain(target: ssh.Target) -> list[tuple[str, str, str, int]]:
    out = []
    t: ssh.Target | None = target
    while t is not None:
        out.append((t.alias, t.user, t.hostname, t.port))
        t = t.jump
    return out


def test_multi_hop_proxyjump_each_hop_through_the_previous(tmp_path: Path) -> None:
    config = (
        "Host pi0\n  ProxyJump ops@gw1:2200,gw2,rho\n"
        "Host gw1\n  HostName 192.0.2.10\n"
        # The hops after the first are reached through the list, not their own ProxyJump.
        "Host gw2\n  HostName 192.0.2.11\n  User jumper\n  ProxyJump elsewhere\n"
    )
    m = load(tmp_path, config)
    target = ssh.resolve(m, m.host("pi0"), ssh.load_config(m))
    assert chain(target) == [
        ("pi0", "root", "10.0.0.5", 22),
        ("rho", "admin", "203.0.113.9", 22),  # an inventory host: its own address and user
        ("gw2", "jumper", "192.0.2.11", 22),
        ("gw1", "ops", "192.0.2.10", 2200),
    ]


def test_first_hop_keeps_its_own_proxyjump(tmp_path: Path) -> None:
    config = "Host pi0\n  ProxyJump gw1,gw2\nHost gw1\n  ProxyJump [2001:db8::1]:2022\n"
    m = load(tmp_path, config)
    hops = chain(ssh.resolve(m, m.host("pi0"), ssh.load_config(m)))
    assert [(alias, host, port) for alias, _, host, port in hops] == [
        ("pi0", "10.0.0.5", 22),
        ("gw2", "gw2", 22),
        ("gw1", "gw1", 22),
        ("2001:db8::1", "2001:db8::1", 2022),
    ]


@pytest.mark.parametrize(
    "spec", ["gw,,x", "gw:99999", "gw:", "@gw", "-oProxyCommand=x", "[::1", "ssh://a b"]
)
def test_bad_proxyjump_is_an_error(tmp_path: Path, spec: str) -> None:
    m = load(tmp_path, f"Host bob\n  ProxyJump {spec}\n")
    with pytest.raises(ssh.SshError, match="ProxyJump"):
        ssh.resolve(m, m.host("bob"), ssh.load_config(m))


def test_proxyjump_loop_is_an_error(tmp_path: Path) -> None:
    m = load(tmp_path, "Host bob a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    with pytest.raises(ssh.SshError, match="nest more than 8 deep"):
        ssh.resolve(m, m.host("bob"), ssh.load_config(m))


class FakeConnection:
    """Stands in for fabric.Connection: records how it was made, opens nothing."""

    made: ClassVar[list[FakeConnection]] = []
    fail_host: str | None = None

    def __init__(self, host: str, gateway: Any = None, **kwargs: Any) -> None:
        self.host, self.gateway, self.closed = host, gateway, False
        self.client = paramiko.SSHClient()
        FakeConnection.made.append(self)

    def open(self) -> None:
        if self.host == FakeConnection.fail_host:
            raise ConnectionRefusedError(111, "Connection refused")

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_connection(monkeypatch: pytest.MonkeyPatch) -> type[FakeConnection]:
    FakeConnection.made = []
    FakeConnection.fail_host = None
    monkeypatch.setattr(ssh, "Connection", FakeConnection)
    return FakeConnection


def test_connect_nests_gateways_and_closes_them_on_failure(
    tmp_path: Path, fake_connection: type[FakeConnection]
) -> None:
    config = "Host pi0\n  ProxyJump gw1,gw2\nHost gw1\n  HostName 192.0.2.10\n"
    m = load(tmp_path, config)
    target = ssh.resolve(m, m.host("pi0"), ssh.load_config(m))
    remote = ssh.connect(m, target)
    pi0 = remote.conn
    assert pi0.host == "10.0.0.5"
    assert pi0.gateway.host == "gw2" and pi0.gateway.gateway.host == "192.0.2.10"
    assert pi0.gateway.gateway.gateway is None
    ssh.close(remote)
    assert all(c.closed for c in fake_connection.made)
    fake_connection.made = []
    fake_connection.fail_host = "10.0.0.5"
    with pytest.raises(ssh.SshError, match="Connection refused"):
        ssh.connect(m, target)
    assert len(fake_connection.made) == 3 and all(c.closed for c in fake_connection.made)


# --------------------------------------------------------------------------- address order


def test_never_dialled_by_bare_name_with_an_endpoint_address(
    tmp_path: Path, fake_connection: type[FakeConnection]
) -> None:
    """--accept-new and keys: controller: a host with an endpoint address is dialled at that
    address, even when ssh_config has blocks for it without a HostName."""
    m = load(tmp_path, "Host *\n  User ops\nHost bob\n  Port 2200\n", "mesh: {keys: controller}\n")
    assert m.keys == "controller"
    target = ssh.resolve(m, m.host("bob"), ssh.load_config(m))
    assert (target.hostname, target.user, target.port) == ("198.51.100.1", "ops", 2200)
    ssh.connect(m, target, accept_new=True)
    assert [c.host for c in fake_connection.made] == ["198.51.100.1"]
    # `HostName %h` repeats the name: still the address, never DNS for "bob".
    m = load(tmp_path, "Host bob\n  HostName %h\n", "mesh: {keys: controller}\n")
    assert ssh.resolve(m, m.host("bob"), ssh.load_config(m)).hostname == "198.51.100.1"


# --------------------------------------------------------------------------- known_hosts


@pytest.fixture
def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Mesh, paramiko.PKey, list[str]]]:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    host_key = paramiko.ECDSAKey.generate()
    client_key = paramiko.ECDSAKey.generate()
    client_key.write_private_key_file(str(tmp_path / "id_ecdsa"))
    with sshd(host_key) as (port, auths):
        hosts = (
            "hosts:\n  bob: {endpoint: static, address: 198.51.100.1, ssh: "
            f"{{address: 127.0.0.1, port: {port}, identity: {tmp_path}/id_ecdsa}}}}\n"
            "  rho: {endpoint: nat}\nlinks: [[bob, rho]]\n"
        )
        yield load(tmp_path, hosts=hosts), host_key, auths


def line(names: str, key: paramiko.PKey) -> str:
    return f"{names} {key.get_name()} {key.get_base64()}\n"


def test_known_hosts_with_cert_authority_and_odd_lines_connects(
    server: tuple[Mesh, paramiko.PKey, list[str]],
) -> None:
    m, host_key, auths = server
    port = m.host("bob").ssh.port
    other = paramiko.ECDSAKey.generate()
    ssh.known_hosts_file(m).write_text(
        "# comment\n"
        + line("@cert-authority *.example.com", other)
        + "@cert-authority\n"
        + "garbage\n"
        + "host.example ssh-ed25519 not-base64!\n"
        + "host2.example ssh-unknown AAAA\n"
        + line(f"[127.0.0.1]:{port}", host_key)
    )
    known = ssh.read_known_hosts(ssh.known_hosts_file(m))
    assert known.cert_authorities == 1 and not known.revoked
    remote = ssh.connect(m, ssh.resolve(m, m.host("bob")))
    ssh.close(remote)
    assert auths == ["root"]


@pytest.mark.parametrize("also_known", ["same key", "other key", "nothing else"])
@pytest.mark.parametrize("accept_new", [False, True])
def test_revoked_host_key_is_refused(
    server: tuple[Mesh, paramiko.PKey, list[str]], also_known: str, accept_new: bool
) -> None:
    m, host_key, auths = server
    port = m.host("bob").ssh.port
    known = {
        "same key": line(f"[127.0.0.1]:{port}", host_key),
        "other key": line(f"[127.0.0.1]:{port}", paramiko.ECDSAKey.generate()),
        "nothing else": "",
    }[also_known]
    path = ssh.known_hosts_file(m)
    path.write_text(line("@revoked *", host_key) + known)
    with pytest.raises(ssh.SshError, match="marks @revoked") as e:
        ssh.connect(m, ssh.resolve(m, m.host("bob")), accept_new=accept_new)
    assert "bob: 127.0.0.1 presented a host key" in str(e.value)
    assert auths == []  # refused before we authenticated
    assert path.read_text() == line("@revoked *", host_key) + known  # nothing added


def test_unknown_key_still_refused_and_accept_new_still_adds(
    server: tuple[Mesh, paramiko.PKey, list[str]],
) -> None:
    m, host_key, _ = server
    path = ssh.known_hosts_file(m)
    path.write_text(line("@cert-authority *", paramiko.ECDSAKey.generate()))
    with pytest.raises(ssh.SshError, match="unknown host key"):
        ssh.connect(m, ssh.resolve(m, m.host("bob")))
    ssh.close(ssh.connect(m, ssh.resolve(m, m.host("bob")), accept_new=True))
    assert path.read_text().endswith(line(f"[127.0.0.1]:{m.host('bob').ssh.port}", host_key))
    ssh.close(ssh.connect(m, ssh.resolve(m, m.host("bob"))))


# --------------------------------------------------------------------------- unexpected


ODD = {"bob": EOFError(), "rho": ValueError("q must be exactly 160, 224, or 256 bits long")}


def _odd_connect(mesh: Mesh, target: ssh.Target, *args: Any, **kwargs: Any) -> ssh.Remote:
    raise ODD.get(target.alias, RuntimeError("a paramiko bug"))


@pytest.mark.parametrize("command", ["up", "status"])
def test_odd_exception_in_connect_fails_the_host_not_the_command(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    m = load(tmp_path)
    monkeypatch.setattr(ssh, "connect", _odd_connect)
    argv = [command, "-i", str(m.source), "--json"] + (["--yes"] if command == "up" else [])
    assert cli.main(argv) == 1
    out = json.loads(capsys.readouterr().out)
    if command == "up":
        hosts = {h["name"]: h for h in out["hosts"]}
        assert {n: h["status"] for n, h in hosts.items()} == dict.fromkeys(
            ["bob", "rho", "pi0"], "unreachable"
        )
        messages = {n: h["message"] for n, h in hosts.items()}
    else:
        assert out["healthy"] is False
        messages = {h["name"]: " ".join(h["reasons"]) for h in out["hosts"]}
    assert "bob: unexpected EOFError" in messages["bob"]
    assert "rho: unexpected ValueError: q must be exactly" in messages["rho"]
    assert "pi0: unexpected RuntimeError: a paramiko bug" in messages["pi0"]


def test_odd_exception_in_the_first_command_fails_that_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = load(tmp_path)
    closed: list[str] = []

    def fake_connect(mesh: Mesh, target: ssh.Target, *args: Any, **kwargs: Any) -> ssh.Remote:
        return ssh.Remote(conn=None, target=target)  # type: ignore[arg-type]

    def fake_run(remote: ssh.Remote, command: str, *args: Any, **kwargs: Any) -> ssh.Result:
        if remote.host == "bob":
            raise EOFError
        return ssh.Result(command, 0, "", "", 0.0)

    monkeypatch.setattr(ssh, "connect", fake_connect)
    monkeypatch.setattr(ssh, "run", fake_run)
    monkeypatch.setattr(ssh, "close", lambda remote: closed.append(remote.host))
    session = connect.open_all(m, connect.Access(), "facts")
    bob = session.reports["bob"]
    assert bob.outcome is Outcome.FAILED and bob.failure is not None
    assert bob.failure.step == "connect" and "bob" not in session.conns
    assert bob.failure.message == "bob: unexpected EOFError"
    assert closed == ["bob"] and sorted(session.conns) == ["pi0", "rho"]


def test_odd_exceptions_in_later_stages_fail_one_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gather, apply (down, next keys) and verify: each host's work is its own boundary."""
    from mesh_push.engine import apply, gather, keys, verify
    from mesh_push.engine.outcome import HostReport
    from tests import kit

    m = load(tmp_path)
    session = connect.Session(m, connect.Access())
    for h in m.hosts:
        session.reports[h.name] = HostReport(h.name, Outcome.UNCHANGED)
        session.conns[h.name] = ssh.Remote(conn=None, target=ssh.resolve(m, h))  # type: ignore[arg-type]
        session.outputs[h.name] = ""
    monkeypatch.setattr(ssh, "close", lambda remote: None)

    def odd_run(remote: ssh.Remote, command: str, *args: Any, **kwargs: Any) -> ssh.Result:
        raise ODD.get(remote.host, RuntimeError("a paramiko bug"))

    monkeypatch.setattr(ssh, "run", odd_run)
    assert gather.poll(session, ["bob", "rho"]) == {}
    p = kit.plan(m, {})
    problems = verify._ping(session, p, ["bob", "rho", "pi0"])
    assert any("rho: unexpected ValueError" in s for s in problems), problems
    assert keys._stage_next(session, ["bob"], connect.quiet) == {}
    assert session.reports["bob"].failure is not None
    assert "bob: unexpected EOFError" in session.reports["bob"].failure.message
    # Dropped: nothing more is sent to it, and what its first command printed is not read.
    assert "bob" not in session.conns and "bob" not in session.outputs
    apply.down(session, "true", connect.quiet)
    rho = session.reports["rho"]
    assert rho.outcome is Outcome.FAILED and rho.failure is not None
    assert rho.failure.step == "down" and "unexpected ValueError" in rho.failure.message
    real_parse = gather.parse_state

    def parse(text: str, mesh: Mesh) -> Any:
        if text == "boom":
            raise KeyError("wg-public-key")
        return real_parse(text, mesh)

    monkeypatch.setattr(gather, "parse_state", parse)
    session.outputs["pi0"] = "boom"
    got = gather.from_session(session, connect.quiet)
    assert sorted(got.states) == ["rho"] and "pi0" not in session.conns
    pi0 = session.reports["pi0"]
    assert pi0.failure is not None and pi0.failure.step == "gather"
    assert pi0.failure.message == "pi0: unexpected KeyError: 'wg-public-key'"
