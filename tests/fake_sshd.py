"""An sshd in the test process (paramiko's server side) on 127.0.0.1: a real handshake and a
real channel, with whatever behaviour a test gives it, for what no OpenSSH server would do
(a host that trickles, floods or never ends its output)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import paramiko

# What a command does on the fake host: it gets the channel and the command line, returns its
# exit status (None: 0), and the channel is closed after it.
Exec = Callable[[paramiko.Channel, str], int | None]


class _Server(paramiko.ServerInterface):
    def __init__(self, auths: list[str], on_exec: Exec | None) -> None:
        self.auths = auths
        self.on_exec = on_exec

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.auths.append(username)
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session" and self.on_exec is not None:
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        on_exec = self.on_exec
        assert on_exec is not None

        def run() -> None:
            # paramiko answers the exec request only after this method returns: a command
            # that closed its channel before that would look refused to the client.
            time.sleep(0.1)
            with contextlib.suppress(Exception):
                code = on_exec(channel, command.decode())
                if not channel.closed:
                    channel.send_exit_status(code or 0)
            with contextlib.suppress(Exception):
                channel.close()

        threading.Thread(target=run, daemon=True).start()
        return True


@contextlib.contextmanager
def sshd(host_key: paramiko.PKey, on_exec: Exec | None = None) -> Iterator[tuple[int, list[str]]]:
    """The server, letting in any public key; yields its port and the users it let in."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    auths: list[str] = []
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(host_key)
            transports.append(t)
            with contextlib.suppress(Exception):
                t.start_server(server=_Server(auths, on_exec))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], auths
    finally:
        listener.close()
        for t in transports:
            t.close()
