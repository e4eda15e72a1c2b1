"""`mesh-push status --serve ADDR:PORT`: a status page at /, /metrics and /healthz over HTTP.

One background thread gathers every `interval` seconds and swaps the families it made into
the registry; scrapes only read that. So however many scrapes arrive, one gather runs at a
time, and a scrape costs the hosts nothing (tests/test_serve.py counts the gathers).

/healthz is the exporter's health, not the mesh's (that is mesh_push_mesh_healthy): 200 while
the last gather that completed ended at most `stale_after(interval)` seconds ago, 503 before
the first one and after that (the body says why). A supervisor that restarts on 503 then
restarts an exporter that stopped gathering, never one that reports a broken mesh. It says
no path and no error text: those go to the log.

The server holds whatever a client sends it to fixed bounds (issue 28): at most
MAX_CONNECTIONS at once (a new one takes the place of the oldest that has not sent its request
yet, or is closed at once), REQUEST_TIMEOUT_S for a whole request and its answer, a request
head of at most MAX_HEAD bytes (431 beyond), a pause before accepting again when out of file
descriptors, and at most one log line a minute for each kind of trouble.
"""

from __future__ import annotations

import contextlib
import errno
import io
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, TextIO

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from mesh_push.core.problems import printable
from mesh_push.engine.outcome import unexpected
from mesh_push.files.fsutil import LocalFileError
from mesh_push.monitoring import metrics

# Room for one slow gather on top of a missed refresh: an unreachable host costs the gather
# its SSH timeouts (programs.READ_TIMEOUT_S is 30 s).
SLOW_GATHER_S = 60.0
# Scrapers are few (a Prometheus or two, a health check); each connection is one request.
MAX_CONNECTIONS = 32
REQUEST_TIMEOUT_S = 10.0
MAX_HEAD = 16 * 1024  # the request line and its headers; a scraper sends a few hundred bytes
ACCEPT_BACKOFF_S = 0.5
LOG_EVERY_S = 60.0

Log = Callable[[str], None]


class Throttled:
    """A log that says each kind of trouble at most once every LOG_EVERY_S, with how many
    like it were left unsaid: a flood of bad requests is one line a minute, not a full disk."""

    def __init__(self, log: Log, clock: Callable[[], float] = time.monotonic) -> None:
        self._log, self._clock = log, clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}

    def __call__(self, kind: str, text: str) -> None:
        with self._lock:
            now = self._clock()
            last = self._last.get(kind)
            if last is not None and now - last < LOG_EVERY_S:
                self._unsaid[kind] = self._unsaid.get(kind, 0) + 1
                return
            self._last[kind] = now
            unsaid = self._unsaid.pop(kind, 0)
        more = f" ({unsaid} more like it in the last minute)" if unsaid else ""
        self._log(text + more)


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
        page: Callable[[metrics.Snapshot], str] | None = None,
    ) -> None:
        self._gather, self._latest, self.interval = gather, latest, interval
        self._log, self._clock = log, clock
        # The page at `/` (page.py), made from each gather; None until the first.
        self._page = page
        self.page: bytes | None = None
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
            # The page after: /healthz answers for the gather as soon as its metrics are
            # served, and a page that cannot be drawn keeps the last one, said in the log.
            if self._page is not None:
                try:
                    self.page = self._page(snap).encode()
                except Exception as e:
                    self._log(f"status page not made: {unexpected(e)}")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            start = self._clock()
            self.refresh()
            stop.wait(max(0.0, self.interval - (self._clock() - start)))

    def health(self) -> tuple[bool, str]:
        """Said to anyone who asks: so no error text, which may hold paths and users."""
        failed = " (the last one failed: the exporter's log says why)" if self.last_error else ""
        if self.last_ok is None:
            return False, f"no gather has completed yet{failed}\n"
        age = self._clock() - self.last_ok
        ok = age <= stale_after(self.interval)
        text = f"last gather ended {age:.0f} s ago{failed}"
        return ok, ("ok: " if ok else "stale: ") + text + "\n"


class _Head(io.BufferedIOBase):
    """The request's reader, that gives at most MAX_HEAD bytes of lines; then an empty line,
    which ends the headers, and `exceeded`."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.left, self.exceeded = raw, MAX_HEAD, False

    def readline(self, size: int | None = -1) -> bytes:
        if self.left <= 0:
            self.exceeded = True
            return b"\r\n"
        line: bytes = self.raw.readline(
            self.left if size is None or size < 0 else min(size, self.left)
        )
        self.left -= len(line)
        return line

    def read(self, size: int | None = -1) -> bytes:
        return b""  # GET has no body; nothing else is answered


def handler(registry: CollectorRegistry, refresher: Refresher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server: Server

        def setup(self) -> None:
            super().setup()
            self.head = _Head(self.rfile)
            self.rfile = self.head

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            if self.head.exceeded:
                self.send_error(431, f"the request head is over {MAX_HEAD} bytes")
                return False
            self.server.answering(self.request)
            return True

        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path == "/metrics":
                encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, ctype, encoder(registry))
            elif path == "/healthz":
                ok, text = refresher.health()
                self._reply(200 if ok else 503, "text/plain; charset=utf-8", text.encode())
            elif path == "/" and refresher.page is not None:
                self._reply(200, "text/html; charset=utf-8", refresher.page)
            elif path == "/":
                self._reply(503, "text/plain; charset=utf-8", b"mesh-push: no gather yet\n")
            else:
                body = b"mesh-push: see /, /metrics and /healthz\n"
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
    # The kernel's queue of connections not accepted yet (capped by net.core.somaxconn): with
    # socketserver's 5, a burst of connections overflows it, and a scraper behind the burst
    # waits for its SYN's retransmits, or thinks it is connected to a server that never knew.
    request_queue_size = 1024
    log: Callable[[str, str], None] = staticmethod(lambda _kind, _text: None)

    def server_activate(self) -> None:
        super().server_activate()
        self._lock = threading.Lock()
        self._open: dict[socket.socket, float] = {}  # each connection, and when it came
        self._waiting: set[socket.socket] = set()  # those whose request is not in yet
        threading.Thread(target=self._reap, name="reaper", daemon=True).start()

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                # The listening socket stays readable: accepting again at once would spin.
                self.log(
                    "fds", f"out of file descriptors: not accepting for {ACCEPT_BACKOFF_S:g} s"
                )
                time.sleep(ACCEPT_BACKOFF_S)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = len(self._open) >= MAX_CONNECTIONS
            oldest = min(self._waiting, key=self._open.__getitem__, default=None)
            if full and oldest is not None:
                self._waiting.discard(oldest)
                _cut(oldest)
            if not full or oldest is not None:
                self._open[request] = time.monotonic()
                self._waiting.add(request)
        if full and oldest is None:
            # Closed outside the lock: shutdown_request takes it too.
            self.log("full", f"{MAX_CONNECTIONS} requests being answered: closing others")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def answering(self, request: socket.socket) -> None:
        with self._lock:
            self._waiting.discard(request)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._open.pop(request, None)
            self._waiting.discard(request)
        super().shutdown_request(request)

    def _reap(self) -> None:
        """Cuts every connection older than REQUEST_TIMEOUT_S: its handler's read or write
        ends at once, and the handler closes it."""
        while True:
            time.sleep(min(1.0, REQUEST_TIMEOUT_S / 4))
            now = time.monotonic()
            with self._lock:
                late = [s for s, t in self._open.items() if now - t > REQUEST_TIMEOUT_S]
            for s in late:
                _cut(s)

    def handle_error(self, request: object, client_address: object) -> None:
        # A scraper that hangs up mid-answer is worth a line, not socketserver's traceback.
        why = unexpected(sys.exc_info()[1] or Exception("unknown"))
        self.log("request", f"a request from {client_address} failed: {why}")


def _cut(s: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already gone
        s.shutdown(socket.SHUT_RDWR)


def bind(
    host: str,
    port: int,
    handler_class: type[BaseHTTPRequestHandler],
    log: Callable[[str, str], None] | None = None,
) -> Server:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ListenError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    # ThreadingHTTPServer reads the family from the class, before binding.
    attrs: dict[str, Any] = {"address_family": family}
    if log is not None:
        attrs["log"] = staticmethod(log)
    cls = type("Server", (Server,), attrs)
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
    page: Callable[[metrics.Snapshot], str] | None = None,
) -> int:
    """Until SIGINT or SIGTERM: exit 0 on SIGTERM (a service stopped), 130 on SIGINT."""

    def log(text: str) -> None:
        print(f"mesh-push: {printable(text)}", file=err, flush=True)

    throttled = Throttled(log)
    latest = metrics.Latest()
    refresher = Refresher(
        gather, latest, interval, lambda text: throttled("gather", text), page=page
    )
    server = bind(*listen, handler(metrics.registry(latest), refresher), throttled)
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
            f"mesh {name}: serving http://{shown}:{port}/ (a status page), /metrics and /healthz, "
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
