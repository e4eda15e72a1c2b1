"""`mesh-push status --serve ADDR:PORT`: /metrics and /healthz over HTTP.

One background thread gathers every `interval` seconds and swaps the families it made into
the registry; scrapes only read that. So however many scrapes arrive, one gather runs at a
time, and a scrape costs the hosts nothing (tests/test_serve.py counts the gathers).

/healthz is the exporter's health, not the mesh's (that is mesh_push_mesh_healthy): 200 while
the last gather that completed ended at most `stale_after(interval)` seconds ago, 503 before
the first one and after that (the body says why). A supervisor that restarts on 503 then
restarts an exporter that stopped gathering, never one that reports a broken mesh.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import TextIO

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from mesh_push.core.problems import printable
from mesh_push.engine.outcome import unexpected
from mesh_push.files.fsutil import LocalFileError
from mesh_push.monitoring import metrics

# Room for one slow gather on top of a missed refresh: an unreachable host costs the gather
# its SSH timeouts (programs.READ_TIMEOUT_S is 30 s).
SLOW_GATHER_S = 60.0


def stale_after(interval: float) -> float:
    return 2 * interval + SLOW_GATHER_S


class ListenError(Exception):
    """ADDR:PORT cannot be listened on (bad address, port in use, not allowed)."""


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPV6]:PORT`; port 0 takes a free one (printed at start)."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not ADDR:PORT (like 127.0.0.1:9105 or [::1]:9105)")
    return host, int(port)


class Refresher:
    """Gathers now and then every `interval` seconds, until stopped; keeps what /healthz
    needs to know."""

    def __init__(
        self,
        gather: Callable[[], metrics.Snapshot],
        latest: metrics.Latest,
        interval: float,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gather, self._latest, self.interval = gather, latest, interval
        self._log, self._clock = log, clock
        self._lock = threading.Lock()  # one gather at a time, whoever calls refresh()
        self.last_ok: float | None = None  # clock() when the last good gather ended
        self.last_error: str | None = None

    def refresh(self) -> None:
        with self._lock:
            try:
                snap = self._gather()
            except Exception as e:
                # A gather that fails as a whole (an unreadable key file, say) keeps the last
                # figures; their timestamp and /healthz show them ageing.
                self.last_error = str(e) if isinstance(e, LocalFileError) else unexpected(e)
                self._log(f"gather failed: {self.last_error}")
                return
            self._latest.set(metrics.families(snap))
            self.last_ok, self.last_error = self._clock(), None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            start = self._clock()
            self.refresh()
            stop.wait(max(0.0, self.interval - (self._clock() - start)))

    def health(self) -> tuple[bool, str]:
        if self.last_ok is None:
            why = f": {self.last_error}" if self.last_error else ""
            return False, f"no gather has completed yet{why}\n"
        age = self._clock() - self.last_ok
        ok = age <= stale_after(self.interval)
        text = f"last gather ended {age:.0f} s ago"
        if self.last_error:
            text += f"; the one after failed: {self.last_error}"
        return ok, ("ok: " if ok else "stale: ") + text + "\n"


def handler(registry: CollectorRegistry, refresher: Refresher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path == "/metrics":
                encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, ctype, encoder(registry))
            elif path == "/healthz":
                ok, text = refresher.health()
                self._reply(200 if ok else 503, "text/plain; charset=utf-8", text.encode())
            else:
                body = b"mesh-push: see /metrics and /healthz\n"
                self._reply(404, "text/plain; charset=utf-8", body)

        def _reply(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a line per scrape would flood the journal

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never holds up the shutdown

    def handle_error(self, request: object, client_address: object) -> None:
        # A scraper that hangs up mid-answer is worth a line, not socketserver's traceback.
        why = unexpected(sys.exc_info()[1] or Exception("unknown"))
        print(f"mesh-push: a request from {client_address} failed: {why}", file=sys.stderr)


def bind(host: str, port: int, handler_class: type[BaseHTTPRequestHandler]) -> Server:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ListenError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    # ThreadingHTTPServer reads the family from the class, before binding.
    cls = type("Server", (Server,), {"address_family": family})
    try:
        server: Server = cls(addr[:2], handler_class)
    except OSError as e:
        raise ListenError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return server


def serve(
    name: str,
    gather: Callable[[], metrics.Snapshot],
    listen: tuple[str, int],
    interval: float,
    err: TextIO = sys.stderr,
) -> int:
    """Until SIGINT or SIGTERM: exit 0 on SIGTERM (a service stopped), 130 on SIGINT."""

    def log(text: str) -> None:
        print(f"mesh-push: {printable(text)}", file=err, flush=True)

    latest = metrics.Latest()
    refresher = Refresher(gather, latest, interval, log)
    server = bind(*listen, handler(metrics.registry(latest), refresher))
    stop = threading.Event()
    got: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        got.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        bound = server.server_address
        host = bound[0] if isinstance(bound[0], str) else bound[0].decode()
        shown, port = (f"[{host}]" if ":" in host else host), bound[1]
        log(
            f"mesh {name}: serving http://{shown}:{port}/metrics and /healthz, "
            f"gathering every {interval:g} s"
        )
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        # Daemon: a gather stuck on a host's timeouts must not delay the exit; it only reads.
        threading.Thread(target=refresher.run, args=(stop,), name="gather", daemon=True).start()
        while not stop.wait(1.0):
            pass
        server.shutdown()  # the requests being answered finish first
    finally:
        server.server_close()
        for s, h in previous.items():
            signal.signal(s, h)
    log("stopped")
    return 130 if got and got[0] == signal.SIGINT else 0
