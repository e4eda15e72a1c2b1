"""Running programs (always argument lists, never a shell line) and reading the machine."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from typing import Any

from mesh_push.lab.errors import EXIT_FAILED, EXIT_USAGE, LabError


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "mesh-push lab needs root (it creates network namespaces, veths and sshds): "
            "run it with sudo",
            EXIT_USAGE,
        )


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float | None = 60,
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed (see docs/lab.md for the packages)") from None
    if check and done.returncode != 0:
        raise LabError(failure(argv, done.returncode, done.stderr), EXIT_FAILED)
    return done


def failure(argv: Sequence[str], code: int, stderr: str) -> str:
    tail = "\n    ".join(stderr.strip().splitlines()[-5:])
    return f"`{' '.join(argv)}` failed with exit code {code}" + (f":\n    {tail}" if tail else "")


def start(argv: Sequence[str], *, input: str | None = None) -> subprocess.Popen[str]:
    """Start argv; give `input` to `communicate()` later (stdin is a pipe only then)."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed (see docs/lab.md for the packages)") from None
    return proc


def run_all(jobs: Sequence[tuple[Sequence[str], str | None]], timeout: float = 60) -> None:
    """Start every command at once (the machine has few cores but the waits are I/O), then
    raise for the first that failed."""
    procs = [(argv, stdin, start(argv, input=stdin)) for argv, stdin in jobs]
    errors: list[str] = []
    for argv, stdin, proc in procs:
        _out, err = proc.communicate(input=stdin, timeout=timeout)
        if proc.returncode != 0:
            errors.append(failure(argv, proc.returncode, err))
    if errors:
        raise LabError("\n".join(errors), EXIT_FAILED)


def ip_batch(lines: Sequence[str], netns: str | None = None, force: bool = False) -> None:
    """Many `ip` commands in one process: a fork per command is what makes a big lab slow."""
    if not lines:
        return
    run(ip_batch_argv(netns, force), input="\n".join(lines) + "\n")


def ip_batch_argv(netns: str | None = None, force: bool = False) -> list[str]:
    return [
        "ip",
        *(["-n", netns] if netns else []),
        *(["-force"] if force else []),
        "-batch",
        "-",
    ]


def ip_json(*args: str) -> list[dict[str, Any]]:
    out = run(["ip", "-j", *args]).stdout
    data = json.loads(out) if out.strip() else []
    return data if isinstance(data, list) else []


def netns_list() -> list[str]:
    # `ip -j netns list` prints nothing at all when /run/netns is missing.
    out = run(["ip", "-j", "netns", "list"]).stdout
    data = json.loads(out) if out.strip() else []
    return [str(d["name"]) for d in data]


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # A zombie is dead: it holds no namespace and waits only for its parent to reap it.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pid(path: os.PathLike[str] | str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None
