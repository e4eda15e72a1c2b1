"""Reads from a host are bounded (issue 28): a deadline over the whole command and at most
ssh.MAX_OUTPUT bytes, against an in-process sshd that trickles, floods, or never ends its
stderr. Each fails that command alone with a clear SshError, and the connection stays usable
for the next host's work."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from mesh_push import inventory
from mesh_push.engine import ssh
from tests.fake_sshd import sshd


def behave(chan: paramiko.Channel, command: str) -> int | None:
    """What the fake host does for each command line."""
    if command == "trickle":  # one byte a second, for ever
        while not chan.closed:
            chan.send(b".")
            time.sleep(1)
    elif command == "flood":
        block = b"x" * 65536
        while not chan.closed:
            chan.sendall(block)
    elif command == "stderr for ever":  # stdout stays open and silent
        block = b"e" * 65536
        while not chan.closed:
            chan.sendall_stderr(block)
    elif command == "both":  # 3 MiB on each, interleaved: more than a window on either
        for _ in range(48):
            chan.sendall(b"o" * 65536)
            chan.sendall_stderr(b"e" * 65536)
        return 3
    elif command == "no status":  # output and EOF, but the exit status never comes
        chan.sendall(b"done\n")
        chan.shutdown_write()
        threading.Event().wait(30)
    elif command == "die":  # output, then the host's end of the connection goes (sshd killed)
        chan.sendall(b"partial\n")
        time.sleep(0.2)
        sock = chan.get_transport().sock
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    elif command.startswith("echo "):
        chan.sendall(command[5:].encode() + b"\n")
    return None


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ssh.Remote]:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setattr(ssh, "MAX_OUTPUT", 1 << 20)
    key = paramiko.ECDSAKey.generate()
    key.write_private_key_file(str(tmp_path / "id_ecdsa"))
    with sshd(paramiko.ECDSAKey.generate(), behave) as (port, _):
        (tmp_path / "mesh.yaml").write_text(
            f"ssh: {{config: {tmp_path}/none, known_hosts: {tmp_path}/known_hosts}}\n"
            "hosts:\n  bob: {endpoint: static, address: 198.51.100.1, ssh: "
            f"{{address: 127.0.0.1, port: {port}, identity: {tmp_path}/id_ecdsa}}}}\n"
            "  rho: {endpoint: nat}\nlinks: [[bob, rho]]\n"
        )
        mesh = inventory.load(tmp_path / "mesh.yaml")
        conn = ssh.connect(mesh, ssh.resolve(mesh, mesh.host("bob")), accept_new=True)
        try:
            yield conn
        finally:
            ssh.close(conn)


def still_answers(remote: ssh.Remote) -> None:
    assert ssh.run(remote, "echo still here", timeout=5).stdout == "still here\n"


def test_a_trickle_is_stopped_at_the_deadline(remote: ssh.Remote) -> None:
    """Each byte comes well within any per-read timeout; the deadline covers the whole."""
    with pytest.raises(ssh.SshError, match=r"^bob: command timed out after 2.5 s$"):
        ssh.run(remote, "trickle", timeout=2.5)
    still_answers(remote)


@pytest.mark.parametrize("command", ["flood", "stderr for ever"])
def test_a_flood_is_cut_at_the_cap(remote: ssh.Remote, command: str) -> None:
    """Ten times: closing a channel while the host still floods it once raced paramiko's
    transport thread into a closed pipe and killed the connection, about one time in ten."""
    for _ in range(10):
        with pytest.raises(ssh.SshError, match=r"^bob: sent more than 1 MiB of output"):
            ssh.run(remote, command, timeout=60)
        still_answers(remote)


def test_large_output_on_both_streams_is_read_whole(
    remote: ssh.Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both streams at once, more than paramiko's window on each: read without a stall."""
    monkeypatch.setattr(ssh, "MAX_OUTPUT", 16 << 20)
    res = ssh.run(remote, "both", timeout=60)
    assert (res.exit_code, len(res.stdout), len(res.stderr)) == (3, 3 << 20, 3 << 20)
    assert set(res.stdout) == {"o"} and set(res.stderr) == {"e"}


def test_an_exit_status_that_never_comes_is_a_timeout(remote: ssh.Remote) -> None:
    with pytest.raises(ssh.SshError, match="timed out after 2 s"):
        ssh.run(remote, "no status", timeout=2)


def test_a_connection_that_dies_mid_command_is_lost_at_once(remote: ssh.Remote) -> None:
    """The host's sshd killed during a command: the connection closes without the channel's
    EOF, which paramiko shows as a closed channel. That is said at once ("connection
    lost"), not found at the deadline after spinning on a channel that is always readable."""
    with pytest.raises(ssh.SshError, match=r"^bob: connection lost"):
        ssh.run(remote, "die", timeout=120)
