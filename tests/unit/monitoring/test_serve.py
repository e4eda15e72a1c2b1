"""`status --serve`: scrapes never start a gather and one gather runs at a time, however many
scrapes arrive (counted, with a gather that takes its time); /healthz's answers; ADDR:PORT
mistakes and a port in use are usage errors (exit 2, no traceback); SIGTERM and SIGINT stop the
server cleanly. The hosts are not contacted: the gather is a stand-in (the lab test,
tests/e2e/test_monitoring_lab.py, serves a real mesh)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mesh_push.cli import main
from mesh_push.monitoring import metrics, serve
from tests.kit import OBSERVED, ROOT, judge
from tests.unit.monitoring.test_metrics import HOSTS, keys, lab_plan, states

CLI = [sys.executable, "-m", "mesh_push.cli"]


def snap() -> metrics.Snapshot:
    p = lab_plan()
    return metrics.Snapshot(p, judge(p, states()), 0.1, time.time())


class SlowGather:
    """A gather that takes `seconds`, counting how many run and how many at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = self.running = self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self) -> metrics.Snapshot:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1
        return snap()


Get = Callable[[str], tuple[int, str]]


@pytest.fixture
def server() -> Iterator[
    Callable[[Callable[[], metrics.Snapshot], float], tuple[Get, serve.Refresher]]
]:
    """Starts the server of `serve` (its refresher thread too) on a free port of 127.0.0.1."""
    stops: list[Callable[[], None]] = []

    def start(
        gather: Callable[[], metrics.Snapshot], interval: float
    ) -> tuple[Get, serve.Refresher]:
        latest = metrics.Latest()
        refresher = serve.Refresher(gather, latest, interval, lambda _t: None)
        srv = serve.bind("127.0.0.1", 0, serve.handler(metrics.registry(latest), refresher))
        stop = threading.Event()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        threading.Thread(target=refresher.run, args=(stop,), daemon=True).start()

        def close() -> None:
            stop.set()
            srv.shutdown()
            srv.server_close()

        stops.append(close)
        base = f"http://127.0.0.1:{srv.server_address[1]}"

        def get(path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(base + path, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        return get, refresher

    yield start
    for close in stops:
        close()


def test_concurrent_scrapes_never_start_a_gather(server) -> None:  # type: ignore[no-untyped-def]
    gather = SlowGather(0.3)
    get, _ = server(gather, 0.05)
    deadline = time.monotonic() + 5
    while "mesh_push_mesh_healthy" not in get("/metrics")[1]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    codes: list[int] = []
    start = time.monotonic()

    def scrape() -> None:
        for _ in range(10):
            code, body = get("/metrics")
            assert "mesh_push_mesh_healthy" in body
            codes.append(code)

    threads = [threading.Thread(target=scrape) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - start
    assert codes == [200] * 200
    assert gather.most_at_once == 1
    # Gathers follow the clock (one per 0.3 s at most), not the 200 scrapes.
    assert gather.calls <= (took + 0.3) / 0.3 + 2, (gather.calls, took)


def test_refreshes_asked_at_once_run_one_after_the_other() -> None:
    gather = SlowGather(0.05)
    refresher = serve.Refresher(gather, metrics.Latest(), 30, lambda _t: None)
    threads = [threading.Thread(target=refresher.refresh) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gather.calls == 8 and gather.most_at_once == 1


def test_healthz(server) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()

    def held() -> metrics.Snapshot:
        release.wait(10)
        return snap()

    get, _ = server(held, 0.05)
    code, body = get("/healthz")
    assert (code, body.startswith("no gather has completed yet")) == (503, True)
    assert "mesh_push_" not in get("/metrics")[1]  # nothing to say before the first gather
    release.set()
    deadline = time.monotonic() + 5
    while get("/healthz")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert get("/healthz")[1].startswith("ok: last gather ended")
    assert get("/nothing")[0] == 404


def test_healthz_goes_stale_and_a_failed_gather_keeps_the_last_figures() -> None:
    now = [1000.0]
    outcomes: list[Exception | None] = [None, OSError("keys unreadable")]

    def gather() -> metrics.Snapshot:
        if (e := outcomes.pop(0)) is not None:
            raise e
        return snap()

    logged: list[str] = []
    latest = metrics.Latest()
    refresher = serve.Refresher(gather, latest, 10, logged.append, clock=lambda: now[0])
    refresher.refresh()
    assert refresher.health()[0]
    refresher.refresh()
    assert logged == ["gather failed: unexpected OSError: keys unreadable"]
    assert next(f.name for f in latest.collect()) == "mesh_push_mesh_healthy"
    ok, text = refresher.health()
    # Said to anyone who asks: that it failed, never the error (it may hold paths, users).
    assert ok and "the last one failed: the exporter's log says why" in text
    assert "keys unreadable" not in text
    now[0] += serve.stale_after(10) + 1
    ok, text = refresher.health()
    assert not ok and text.startswith("stale: ")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("127.0.0.1:9105", ("127.0.0.1", 9105)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert serve.parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9105", ":9105", "127.0.0.1:", "127.0.0.1:x", "h:65536", "h:-1"])
def test_bad_listen_addresses_are_usage_errors(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["status", "-i", str(ROOT / "inventory/lab.yaml"), "--serve", text])
    assert e.value.code == 2
    assert "ADDR:PORT" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, complaint",
    [
        (["--serve", "127.0.0.1:0", "--json"], "--serve does not go with --json"),
        (["--serve", "127.0.0.1:0", "--watch", "2"], "--serve does not go with --watch"),
        (["--interval", "5"], "--interval goes with --serve"),
        (["--serve", "127.0.0.1:0", "--interval", "0"], "not a number of seconds above 0"),
    ],
)
def test_options_that_do_not_go_together(
    extra: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["status", "-i", str(ROOT / "inventory/lab.yaml"), *extra])
    except SystemExit as e:
        code = int(str(e.code))
    assert code == 2
    assert complaint in capsys.readouterr().err


def test_a_port_in_use_is_a_usage_error_without_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run(
            [*CLI, "status", "-i", "inventory/lab.yaml", "--serve", f"127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert res.returncode == 2, res
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in res.stderr
    assert "Traceback" not in res.stderr and not res.stdout


SERVE_ONLY = """
import sys, time
from mesh_push.monitoring import serve
from tests.unit.monitoring.test_serve import snap
sys.exit(serve.serve("lab", snap, ("127.0.0.1", 0), 0.2))
"""


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signals_stop_it_cleanly(sig: signal.Signals, code: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_ONLY],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except urllib.error.HTTPError:
                pass
            assert time.monotonic() < deadline, "never healthy"
            time.sleep(0.05)
        proc.send_signal(sig)
        assert proc.wait(10) == code
        rest = proc.stderr.read()
        assert "stopped" in rest and "Traceback" not in rest, rest
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def captured_hosts(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The hosts answer the first command with the captured mesh (tests/data/observe), and
    any further command fails the test. Returns the first commands sent, one per open_all."""
    from mesh_push.engine import connect, gather
    from mesh_push.engine import keys as mesh_keys
    from mesh_push.engine.outcome import HostReport
    from mesh_push.engine.session import Access, Session

    opened: list[str | None] = []

    def open_all(mesh: Any, access: Access, first: str | None, *_a: object) -> Session:
        opened.append(first)
        session = Session(mesh, access)
        for h in HOSTS:
            session.reports[h] = HostReport(h)
            session.outputs[h] = (OBSERVED / f"{h}.txt").read_text()
        return session

    def no_more(*_args: object, **_kw: object) -> None:
        raise AssertionError("a second round trip")

    monkeypatch.setattr(connect, "open_all", open_all)
    monkeypatch.setattr(Session, "run", no_more)
    monkeypatch.setattr(gather, "poll", no_more)
    monkeypatch.setattr(mesh_keys, "public_keys", lambda _mesh, **_kw: keys())
    return opened


def test_a_refresh_is_status_one_round_trip_per_host(captured_hosts: list[str | None]) -> None:
    """The serve loop's gather is `status`'s: one open_all whose first command is the gather
    (facts and state in one program), and not one command more."""
    from mesh_push import inventory
    from mesh_push.engine import gather
    from mesh_push.engine.session import Access
    from mesh_push.monitoring import status

    mesh = inventory.load(ROOT / "inventory/lab.yaml")
    refresher = serve.Refresher(lambda: status.gather(mesh, Access()), metrics.Latest(), 30, print)
    refresher.refresh()
    refresher.refresh()
    assert captured_hosts == [gather.first_command(mesh)] * 2
    assert refresher.health()[0] and refresher.last_error is None


def test_status_prometheus_writes_the_textfile(
    captured_hosts: list[str | None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mesh.prom"
    argv = ["status", "-i", str(ROOT / "inventory/lab.yaml"), "--json", "--prometheus", str(out)]
    assert main(argv) == 0
    assert '"healthy": true' in capsys.readouterr().out  # the JSON as without it
    assert 'mesh_push_mesh_healthy{mesh="lab"} 1.0' in out.read_text()
    assert len(captured_hosts) == 1
    bad = ["status", "-i", str(ROOT / "inventory/lab.yaml"), "--prometheus", str(tmp_path)]
    assert main(bad) == 2  # a directory: cannot write
    assert f"cannot write {tmp_path}" in capsys.readouterr().err
    # Whoever can write in the collector's directory plants a link to a file of root's: the
    # link is replaced, the file it named is untouched, and no temporary file is left.
    secret = tmp_path / "root-only"
    secret.write_text("precious\n")
    out.unlink()
    out.symlink_to(secret)
    assert main(argv) == 0
    assert secret.read_text() == "precious\n"
    assert not out.is_symlink() and "mesh_push_mesh_healthy" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.prom", "root-only"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)
