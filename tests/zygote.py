"""`mesh-push` for the tests, without paying Python's start-up and imports each time.

The lab tests run mesh-push hundreds of times, and each `python -m mesh_push.cli` spent about a
quarter of a second of CPU importing paramiko, Fabric, Jinja, YAML and rich before doing
anything: over a hundred core-seconds of a suite that is bound by CPU (docs/testing.md). A
zygote, one per test process, imports those libraries once and forks a child per command. The
child is a process of its own, as with `subprocess.run`: its own pid (which the caller may
kill), its own stdin, stdout and stderr (passed over a Unix socket), and the caller's
environment, working directory, priority and umask at the time of the call; it runs
`mesh_push.cli` as `python -m` does, so mesh-push's own modules are imported fresh in each
child, reading the environment the caller gave it.

The zygote is single-threaded (fork is safe there), reaps its children itself and reports each
exit status to the caller that asked for it. It exits when its test process does (its stdin,
a pipe from that process, reaches end of file).
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

# Third-party only: mesh_push's own modules read the environment as they are imported, and a
# child must see the environment its caller gave it.
PRELOAD = ("paramiko", "fabric", "invoke", "jinja2", "yaml", "rich.console", "rich.table")
MAX_REQUEST = 1 << 20


# --------------------------------------------------------------------------- the zygote


def _child(req: dict[str, object], fds: Sequence[int]) -> None:
    """In the forked child: become the command, as `python -m mesh_push.cli ARGS` would."""
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(str(req["cwd"]))
    # The caller's priority, which it may have changed since the zygote started (the VM
    # modules raise theirs for the QEMU guests `lab up` starts).
    os.setpriority(os.PRIO_PROCESS, 0, int(str(req["nice"])))
    os.umask(int(str(req["umask"])))
    env = req["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    argv = req["argv"]
    assert isinstance(argv, list)
    module = str(req["module"])
    sys.argv = [module, *argv]
    # Fresh standard streams on fds 0-2 (the zygote's own were pipes of its own).
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def serve(listener: socket.socket) -> None:
    """Accept requests until stdin (a pipe from the test process) ends."""
    sel = selectors.DefaultSelector()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(0, selectors.EVENT_READ, "parent")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    own = (wake_r, wake_w)
    waiting: dict[int, socket.socket] = {}
    while True:
        for key, _ in sel.select():
            if key.data == "parent":
                if not os.read(0, 4096):
                    return
            elif key.data == "child":
                os.read(wake_r, 4096)
            else:
                conn, _ = listener.accept()
                pid = _start(conn, listener, sel, own)
                if pid is None:
                    conn.close()
                else:
                    waiting[pid] = conn
        # Reap every child that ended, and tell its caller how.
        while waiting:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                conn.close()


def _start(
    conn: socket.socket,
    listener: socket.socket,
    sel: selectors.BaseSelector,
    own: Sequence[int],
) -> int | None:
    fds = array.array("i")
    msg, ancdata, _, _ = conn.recvmsg(MAX_REQUEST, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return None
    req = json.loads(msg)
    pid = os.fork()
    if pid == 0:  # the child: nothing of the zygote's but what it was asked to be
        code = 1
        try:
            sel.close()
            listener.close()
            conn.close()
            signal.set_wakeup_fd(-1)
            for fd in own:
                os.close(fd)
            _child(req, list(fds))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, int | None):
                print(e.code, file=sys.stderr)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            # As the interpreter would at exit: atexit handlers, non-daemon threads, buffers.
            with contextlib.suppress(BaseException):
                threading._shutdown()  # type: ignore[attr-defined]
            with contextlib.suppress(BaseException):
                import atexit

                atexit._run_exitfuncs()  # type: ignore[attr-defined]
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"{pid}\n".encode())
    return pid


def main() -> None:
    path = sys.argv[1]
    for name in PRELOAD:
        __import__(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    try:
        serve(listener)
    finally:
        # Its socket and the directory made for it: nothing of the zygote outlives it.
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


# --------------------------------------------------------------------------- the caller


class Zygote:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mesh-push-zygote-"))
        self.path = str(self.dir / "sock")
        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote", self.path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != b"ready\n":
            raise RuntimeError("the test zygote did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None


_zygote: Zygote | None = None
_zygote_of = 0  # the test process that started it (a forked test process starts its own)
_lock = threading.Lock()


def _get() -> Zygote:
    global _zygote, _zygote_of
    with _lock:
        if _zygote is None or _zygote_of != os.getpid() or not _zygote.alive():
            _zygote, _zygote_of = Zygote(), os.getpid()
        return _zygote


def _line(conn: socket.socket) -> bytes:
    """One line of the zygote's answer (a pid, then an exit code), read byte by byte: a
    socket file object is unusable once a read of it timed out."""
    got = b""
    while not got.endswith(b"\n"):
        b = conn.recv(1)
        if not b:
            raise RuntimeError("the test zygote hung up")
        got += b
    return got


def run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    input: str | None = None,
    timeout: float | None = None,
    module: str = "mesh_push.cli",
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([python, -m, mesh_push.cli, *argv], capture_output=True, text=True)`,
    with its `input`, `cwd`, `env` and `timeout` (on timeout the command is killed and
    TimeoutExpired raised, as subprocess.run does), but forked from the zygote."""
    z = _get()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    umask = os.umask(0o022)
    os.umask(umask)
    req = json.dumps({
        "argv": list(argv), "cwd": str(cwd), "env": dict(env), "module": module,
        "nice": os.getpriority(os.PRIO_PROCESS, 0), "umask": umask,
    })  # fmt: skip
    whole = [sys.executable, "-m", module, *argv]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(z.path)
        fds = array.array("i", [in_r, out_w, err_w])
        conn.sendmsg([req.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    pid = int(_line(conn))
    out: list[bytes] = []
    err: list[bytes] = []

    def feed() -> None:
        with open(in_w, "wb") as f, contextlib.suppress(BrokenPipeError):
            if input:
                f.write(input.encode())

    def drain(fd: int, into: list[bytes]) -> None:
        with open(fd, "rb") as f:
            into.append(f.read())

    threads = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=drain, args=(out_r, out), daemon=True),
        threading.Thread(target=drain, args=(err_r, err), daemon=True),
    ]
    for t in threads:
        t.start()
    conn.settimeout(timeout)
    try:
        line = _line(conn)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # the one command this call started, by its pid
        conn.settimeout(None)
        _line(conn)
        for t in threads:
            t.join(5)
        conn.close()
        raise subprocess.TimeoutExpired(whole, timeout or 0, b"".join(out), b"".join(err)) from None
    conn.close()
    # The child is gone; a grandchild it left running may still hold the pipes open
    # (subprocess.run would wait for it too).
    for t in threads:
        t.join()
    return subprocess.CompletedProcess(
        whole,
        int(line),
        b"".join(out).decode(errors="replace"),
        b"".join(err).decode(errors="replace"),
    )


if __name__ == "__main__":
    main()
