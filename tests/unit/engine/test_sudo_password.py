"""The sudo password goes only to hosts whose sudo asks for it (issue 28), never in a repr, and
its environment variable reaches no child process. Two in-process sshds play a host whose sudo
asks and one whose sudo does not; each records every byte it was sent on stdin."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import paramiko
import pytest

from mesh_push import inventory
from mesh_push.engine import connect, ssh
from mesh_push.engine.session import Access
from mesh_push.files import become
from tests.fake_sshd import Exec, sshd

PASSWORD = "s3cret-pw"


def sudo_host(asks: bool, stdin: list[bytes]) -> Exec:
    """What the fake host does: `sudo -n` fails where sudo asks, stdin is kept."""

    def behave(chan: paramiko.Channel, command: str) -> int | None:
        got = b""
        while data := chan.recv(65536):
            got += data
        stdin.append(got)
        if asks and command.startswith("LC_ALL=C exec sudo -n"):
            chan.sendall_stderr(b"sudo: a password is required\n")
            return 1
        return 0

    return behave


@pytest.fixture
def two_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, dict[str, list[bytes]]]]:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    key = paramiko.ECDSAKey.generate()
    key.write_private_key_file(str(tmp_path / "id_ecdsa"))
    seen: dict[str, list[bytes]] = {"asks": [], "quiet": []}
    with ExitStack() as stack:
        ports = {
            name: stack.enter_context(
                sshd(paramiko.ECDSAKey.generate(), sudo_host(name == "asks", seen[name]))
            )[0]
            for name in seen
        }
        hosts = "".join(
            f"  {name}: {{endpoint: static, address: 198.51.100.{i}, ssh: {{address: 127.0.0.1,"
            f" port: {port}, user: debian, identity: {tmp_path}/id_ecdsa}}}}\n"
            for i, (name, port) in enumerate(ports.items(), 1)
        )
        inv = tmp_path / "mesh.yaml"
        inv.write_text(
            f"ssh: {{config: {tmp_path}/none, known_hosts: {tmp_path}/known_hosts}}\n"
            f"hosts:\n{hosts}links: [[asks, quiet]]\n"
        )
        yield inv, seen


def test_the_password_goes_only_to_a_host_that_asks(
    two_hosts: tuple[Path, dict[str, list[bytes]]],
) -> None:
    inv, seen = two_hosts
    mesh = inventory.load(inv)
    session = connect.open_all(mesh, Access(accept_new=True, become_password=PASSWORD), "true")
    try:
        assert sorted(session.conns) == ["asks", "quiet"], session.reports
        assert session.sudo_asks == {"asks"}
        for name in session.conns:
            ssh.run(session.conns[name], "echo hi")
        assert PASSWORD not in repr(session.conns["asks"]) + repr(session.access)
    finally:
        session.close()
    assert not any(PASSWORD.encode() in got for got in seen["quiet"]), seen["quiet"]
    assert any(PASSWORD.encode() in got for got in seen["asks"])


def test_the_password_variable_reaches_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dot`, `ssh-keygen`... inherit the environment: the password must not be in it."""
    monkeypatch.setenv(become.PASSWORD_ENV, PASSWORD)
    assert become.password(ask=False) == PASSWORD
    assert become.PASSWORD_ENV not in os.environ
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('MESH_PUSH_BECOME_PASSWORD'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "None"
