"""tests/zygote.py: a command forked from the zygote behaves as `subprocess.run` of
`python -m MODULE` would (exit code, streams, input, environment, working directory, its own
pid, timeout), several at once."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tests import zygote

CHILD = "tests.unit.zygote_child"


def run(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    opts: dict[str, object] = {"cwd": Path(__file__).parents[2], "env": dict(os.environ)}
    opts.update(kw)
    return zygote.run(argv, module=CHILD, **opts)  # type: ignore[arg-type]


def test_exit_code_streams_input_env_and_cwd(tmp_path: Path) -> None:
    env = {**os.environ, "ZYGOTE_TEST": "given"}
    res = run("3", input="typed", env=env, cwd=tmp_path)
    assert res.returncode == 3
    where, value, typed, pid = res.stdout.split()[:4]
    assert (where, value, typed) == (str(tmp_path), "given", "typed")
    assert int(pid) not in (os.getpid(), zygote._get().proc.pid)
    assert res.stderr == "to stderr\n"
    assert run("0").stdout.split()[1] == "-"  # nothing of an earlier command's environment


def test_the_callers_priority_and_umask_now() -> None:
    """Not the zygote's: a test that changed its own since (the VM modules raise theirs for
    the QEMU guests) starts its commands with what it has now."""
    nice, old = os.getpriority(os.PRIO_PROCESS, 0), os.umask(0o027)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice + 1)  # lowering needs no privilege
        assert run("0").stdout.split()[-2:] == [str(nice + 1), str(0o027)]
    finally:
        os.umask(old)
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)


def test_an_exception_is_a_traceback_and_exit_1() -> None:
    res = run("raise")
    assert res.returncode == 1 and "RuntimeError: boom" in res.stderr


def test_timeout_kills_the_command() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run("sleep", timeout=0.5)


def test_several_at_once() -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda n: run(str(n)).returncode, range(8)))
    assert codes == list(range(8))


def test_the_zygote_leaves_nothing_when_its_test_process_ends() -> None:
    z = zygote.Zygote()
    assert Path(z.path).exists()
    assert z.proc.stdin is not None
    z.proc.stdin.close()  # as the test process's end closes it
    z.proc.wait(10)
    assert not z.dir.exists()
