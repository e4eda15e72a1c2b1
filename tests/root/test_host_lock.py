"""The host side of issue 14 under `sh`, in a temporary state directory: the host lock (one
mesh-push run at a time, a bounded wait, the holder named), the digest check of the received
script, a failed script never becoming the boot script, and the rollback timer belonging to
its rollout (superseded by a later apply, arm or down; never firing during an apply).

The programs are rendered by hostcmd with its paths pointed into tmp_path (the state
directory, the boot unit), so nothing here touches the machine's /var/lib/mesh-push."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_push.engine import apply, ssh
from mesh_push.host import boot
from mesh_push.host import programs as hostcmd
from mesh_push.host import templates as render
from mesh_push.modes import scripts
from tests.root.seed import seed_plan

TOKEN = "0123456789abcdef"
LATER = "fedcba9876543210"
MESH = seed_plan().mesh


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Host:
    """One host's state directory in tmp_path, and mesh-push's host programs run on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.out = root / "out"  # what the test scripts record
        self.out.mkdir()

    def script(self, name: str, body: str = "") -> str:
        """A host script that records that it ran (name, into out/current and out/log)."""
        return (
            f"{body}\necho {name} > {self.out}/current\necho {name} >> {self.out}/log\n"
            f"echo 'changed: {name}'\n"
        )

    def apply(
        self, script: str, arm: str = "", digest: str | None = None, send: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = hostcmd.apply(MESH, digest or sha(script), arm)
        return subprocess.run(
            ["sh", "-c", cmd], input=script if send is None else send,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def start_apply(self, script: str, arm: str = "") -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["sh", "-c", hostcmd.apply(MESH, sha(script), arm)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdin is not None
        proc.stdin.write(script)
        proc.stdin.close()
        proc.stdin = None  # sent: communicate() only reads
        return proc

    def arm(self, token: str, seconds: float, fallback: str = "echo fallback\n") -> str:
        return hostcmd.arm(MESH, token, seconds, fallback)

    def run(self, cmd: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", cmd], input=stdin, capture_output=True, text=True, timeout=120
        )

    def file(self, name: str) -> str | None:
        path = self.state / name
        return path.read_text() if path.exists() else None

    def current(self) -> str:
        return (self.out / "current").read_text().strip()

    def timer_pid(self) -> int:
        for _ in range(100):
            if pid := self.file("armed.pid"):
                return int(pid)
            time.sleep(0.05)
        raise AssertionError("the timer never wrote armed.pid")


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    h = Host(tmp_path)
    real = render.host_paths

    def paths(mesh: object) -> dict[str, object]:
        # Every host path of the mesh inside tmp_path: never the machine's.
        out = real(MESH)
        out.update(state_dir=str(h.state), key_file=str(tmp_path / "wg0.key"))
        out.update(render.boot_paths(MESH, boot.rooted(str(tmp_path))))
        legacy = dict(out["legacy"])  # type: ignore[call-overload]
        legacy.update(state_dir=str(tmp_path / "legacy"), key_file=str(tmp_path / "old.key"),
                      boot_unit=str(tmp_path / "etc/old.service"),
                      boot_wants=str(tmp_path / "etc/wants/old.service"))  # fmt: skip
        out["legacy"] = legacy
        return out

    monkeypatch.setattr(render, "host_paths", paths)  # the programs (host.programs)
    monkeypatch.setattr(scripts, "host_paths", paths)  # the down script (modes.scripts)
    monkeypatch.setattr(hostcmd, "LOCK_WAIT_S", 2)
    # The boot unit inside tmp_path too.
    apply = functools.partial(hostcmd.apply, boot=boot.rooted(str(tmp_path))[0])
    monkeypatch.setattr(hostcmd, "apply", apply)
    yield h
    # No timer of ours may outlive the test.
    with contextlib.suppress(OSError, ValueError):
        pid = int((h.state / "armed.pid").read_text())
        if f"{h.state}/armed.sh" in Path(f"/proc/{pid}/cmdline").read_text():
            os.kill(pid, 15)


def eventually(check: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise AssertionError("not within the time")


def alive(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


# --------------------------------------------------------------------------- apply, integrity


def test_a_good_script_becomes_the_boot_script(host: Host) -> None:
    a = host.script("A")
    res = host.apply(a)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "changed: A\nchanged: boot unit installed\n"
    assert host.file("apply.sh") == a and host.file("applied.sha256") == sha(a) + "\n"
    assert host.file("pending.sh") is None and host.file("failed.sh") is None
    # The lock file stays, naming its last holder.
    holder = host.file("lock") or ""
    assert holder.endswith(", apply)\n") and "(pid " in holder
    assert (host.state / "apply.sh").stat().st_mode & 0o777 == 0o600


def test_a_truncated_upload_is_refused_and_nothing_runs(host: Host) -> None:
    a, b = host.script("A"), host.script("B")
    assert host.apply(a).returncode == 0
    res = host.apply(b, send=b[: len(b) // 2])
    assert res.returncode == hostcmd.EXIT_BAD_DIGEST
    assert "the script did not arrive whole" in res.stderr and sha(b) in res.stderr
    assert res.stdout == ""
    assert host.current() == "A"  # B never ran, not even its first half
    assert host.file("apply.sh") == a and host.file("applied.sha256") == sha(a) + "\n"
    assert host.file("pending.sh") is None and host.file("failed.sh") is None
    refused = apply.host_refusal(
        ssh.Result("", res.returncode, res.stdout, res.stderr, 0), hostcmd.EXIT_BAD_DIGEST
    )
    assert refused is not None and refused.startswith("the script did not arrive whole")


def test_a_host_script_exiting_like_a_refusal_is_not_taken_for_one(host: Host) -> None:
    res = host.apply(host.script("A", "echo oops >&2; exit 65"))
    assert res.returncode == 65 and "oops" in res.stdout
    result = ssh.Result("", res.returncode, res.stdout, res.stderr, 0)
    assert apply.host_refusal(result, hostcmd.EXIT_BAD_DIGEST, hostcmd.EXIT_LOCKED) is None


def test_a_failed_script_never_becomes_the_boot_script(host: Host) -> None:
    a, b, c = host.script("A"), host.script("B", "echo half way; exit 3"), host.script("C")
    assert host.apply(a).returncode == 0
    res = host.apply(b)
    assert res.returncode == 3 and "half way" in res.stdout
    assert host.file("apply.sh") == a and host.file("applied.sha256") == sha(a) + "\n"
    assert host.file("failed.sh") == b and host.file("pending.sh") is None
    unit = (host.root / MESH.boot_unit.lstrip("/")).read_text()
    assert f"ExecStart=/bin/sh {host.state}/apply.sh" in unit
    assert host.apply(c).returncode == 0
    assert host.file("apply.sh") == c and host.file("failed.sh") is None


# --------------------------------------------------------------------------- the lock


def test_a_second_apply_waits_for_the_first(host: Host) -> None:
    first = host.start_apply(host.script("A", "sleep 1"))
    eventually(lambda: host.file("pending.sh") is not None)
    res = host.apply(host.script("B"))  # waits up to LOCK_WAIT_S = 2 s
    out, _ = first.communicate(timeout=30)
    assert first.returncode == 0 and "changed: A" in out
    assert res.returncode == 0, res.stderr
    assert (host.out / "log").read_text() == "A\nB\n"  # one after the other, never both at once
    assert host.file("apply.sh") == host.script("B")


def test_a_second_apply_gives_up_naming_the_holder(host: Host) -> None:
    first = host.start_apply(host.script("A", "sleep 4"))
    eventually(lambda: host.file("pending.sh") is not None)
    started = time.monotonic()
    res = host.apply(host.script("B"))
    waited = time.monotonic() - started
    assert res.returncode == hostcmd.EXIT_LOCKED
    msg = res.stderr.strip()
    assert msg.startswith("mesh-push: another mesh-push run holds the lock on this host since ")
    assert f"(pid {first.pid}, apply); gave up after 2 s" in msg
    assert 1.5 < waited < 10
    first.communicate(timeout=30)
    assert (host.out / "log").read_text() == "A\n"  # B never ran
    assert host.file("apply.sh") == host.script("A", "sleep 4")
    result = ssh.Result("", res.returncode, res.stdout, res.stderr, 0)
    refused = apply.host_refusal(result, hostcmd.EXIT_LOCKED)
    assert refused is not None and refused.startswith("another mesh-push run holds the lock")


def test_the_detached_run_holds_the_lock_after_the_session_is_gone(host: Host) -> None:
    first = host.start_apply(host.script("A", f"touch {host.out}/started; sleep 5"))
    eventually((host.out / "started").exists)  # the detached run has begun
    first.kill()  # the SSH session dies; the detached run goes on, holding the lock
    first.wait()
    res = host.apply(host.script("B"))
    assert res.returncode == hostcmd.EXIT_LOCKED
    eventually(lambda: host.file("apply.rc") is not None, 15)
    assert host.current() == "A"


def test_the_host_script_does_not_hold_the_lock(host: Host) -> None:
    """Daemons the host script starts (wireguard-go, the re-resolver) must not inherit it."""
    daemon = f"setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $! > {host.out}/daemon"
    assert host.apply(host.script("A", daemon)).returncode == 0
    pid = int((host.out / "daemon").read_text())
    try:
        res = host.apply(host.script("B"))
        assert res.returncode == 0, res.stderr
    finally:
        os.kill(pid, 15)


def test_a_waiter_takes_the_new_lock_file_after_down_removed_the_old(host: Host) -> None:
    """`down` removes the lock file while it holds it: a run that waited on it must lock the
    new file, not the removed one, or two runs would hold "the" lock at once."""
    assert host.apply(host.script("A")).returncode == 0
    down = subprocess.Popen(
        ["sh", "-c", hostcmd.down(MESH)], stdin=subprocess.PIPE, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert down.stdin is not None
    down.stdin.write(f"sleep 1; find {host.state} -mindepth 1 -delete; rmdir {host.state}\n")
    down.stdin.close()
    down.stdin = None
    time.sleep(0.3)
    waiter = host.start_apply(host.script("B", "sleep 2"))
    assert down.wait(timeout=30) == 0
    eventually(lambda: host.file("pending.sh") is not None)
    # While B runs, the lock at the path is held (B holds the new file's lock).
    probe = subprocess.run(["flock", "-n", str(host.state / "lock"), "true"])
    assert probe.returncode == 1
    _, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err


def test_rotate_keys_staging_takes_the_lock(host: Host, tmp_path: Path) -> None:
    first = host.start_apply(host.script("A", "sleep 4"))
    eventually(lambda: host.file("pending.sh") is not None)
    res = host.run(hostcmd.rotate_key(MESH))
    assert res.returncode == hostcmd.EXIT_LOCKED
    assert "(pid " in res.stderr and ", apply); gave up after 2 s" in res.stderr
    assert not (tmp_path / "wg0.key.next").exists()
    first.communicate(timeout=30)


# --------------------------------------------------------------------------- the rollback timer


def test_an_unconfirmed_rollout_rolls_back_after_the_apply(host: Host) -> None:
    a = host.script("A")
    assert host.apply(a).returncode == 0
    # The apply takes longer than the window: the timer must not fire in the middle of it.
    b = host.script("B", f"echo start >> {host.out}/log; sleep 2")
    res = host.apply(b, arm=host.arm(TOKEN, 1))
    assert res.returncode == 0, res.stderr
    assert host.current() == "B" and host.file("rolled-back") is None
    eventually(lambda: host.file("rolled-back") == TOKEN + "\n")
    assert (host.out / "log").read_text() == "A\nstart\nB\nA\n"
    assert host.current() == "A"
    assert host.file("apply.sh") == a and host.file("applied.sha256") == sha(a) + "\n"
    assert host.file("armed.token") is None and host.file("armed.pid") is None
    assert host.run(hostcmd.rolled_back(MESH, TOKEN)).stdout == "rolled-back\n"
    late = host.run(hostcmd.confirm(MESH, TOKEN))
    assert late.returncode == 1 and "rolled back already" in late.stderr


def test_a_confirmed_rollout_stays(host: Host) -> None:
    assert host.apply(host.script("A")).returncode == 0
    assert host.apply(host.script("B"), arm=host.arm(TOKEN, 1)).returncode == 0
    pid = host.timer_pid()
    res = host.run(hostcmd.confirm(MESH, TOKEN))
    assert res.returncode == 0, res.stderr
    confirmed = host.state / f"confirmed.{TOKEN}"
    assert confirmed.stat().st_mode & 0o777 == 0o600
    eventually(lambda: not alive(pid))
    assert host.current() == "B" and host.file("rolled-back") is None
    assert host.file("armed.token") is None and host.file("armed.pid") is None
    assert host.run(hostcmd.rolled_back(MESH, TOKEN)).stdout == ""


def test_confirm_refuses_a_failed_apply(host: Host) -> None:
    assert host.apply(host.script("A")).returncode == 0
    res = host.apply(host.script("B", "exit 4"), arm=host.arm(TOKEN, 30))
    assert res.returncode == 4
    no = host.run(hostcmd.confirm(MESH, TOKEN))
    assert no.returncode == 1 and "has not ended well" in no.stderr
    assert not (host.state / f"confirmed.{TOKEN}").exists()


def test_a_later_arm_supersedes_the_earlier_timer(host: Host) -> None:
    """The race of issue 14: rollout 1's timer must not roll back rollout 2, confirmed."""
    assert host.apply(host.script("A")).returncode == 0
    assert host.apply(host.script("B"), arm=host.arm(TOKEN, 1)).returncode == 0
    first = host.timer_pid()
    assert host.apply(host.script("C"), arm=host.arm(LATER, 1)).returncode == 0
    assert not alive(first)  # stopped, by its pid
    assert host.run(hostcmd.confirm(MESH, LATER)).returncode == 0
    superseded = host.run(hostcmd.confirm(MESH, TOKEN))
    assert superseded.returncode == 1 and "superseded" in superseded.stderr
    assert host.run(hostcmd.rolled_back(MESH, TOKEN)).stdout == "superseded\n"
    time.sleep(2.5)
    assert host.current() == "C" and host.file("rolled-back") is None
    # The rollback of rollout 2 would have been B's state: the last good one before it.
    assert host.file("rollback.sh") == host.script("B")


def test_a_timer_that_missed_its_kill_gives_up_on_a_foreign_token(host: Host) -> None:
    """The token is the real guard: a timer nobody could stop (its pid not recorded, say)
    sees that the armed rollout is no longer its own and does nothing."""
    assert host.apply(host.script("A")).returncode == 0
    assert host.apply(host.script("B"), arm=host.arm(TOKEN, 1)).returncode == 0
    pid = host.timer_pid()
    (host.state / "armed.pid").unlink()  # nobody can find it now
    assert host.apply(host.script("C")).returncode == 0  # a plain apply: forgets the token
    assert alive(pid)
    eventually(lambda: not alive(pid))
    assert host.current() == "C" and host.file("rolled-back") is None


def test_a_later_plain_apply_cancels_the_timer(host: Host) -> None:
    assert host.apply(host.script("A")).returncode == 0
    assert host.apply(host.script("B"), arm=host.arm(TOKEN, 1)).returncode == 0
    pid = host.timer_pid()
    assert host.apply(host.script("C")).returncode == 0
    assert not alive(pid)
    time.sleep(2)
    assert host.current() == "C" and host.file("rolled-back") is None


def test_the_timer_waits_for_the_lock_before_rolling_back(host: Host, tmp_path: Path) -> None:
    """Its window over, the timer finds another program holding the lock (key staging here):
    it rolls back only once that is done, never alongside."""
    assert host.apply(host.script("A")).returncode == 0
    assert host.apply(host.script("B"), arm=host.arm(TOKEN, 1)).returncode == 0
    hold = subprocess.Popen(["flock", str(host.state / "lock"), "sleep", "3"])
    try:
        time.sleep(2)  # the window is over; the timer waits for the lock
        assert host.current() == "B" and host.file("rolled-back") is None
    finally:
        hold.wait(timeout=30)
    eventually(lambda: host.file("rolled-back") == TOKEN + "\n")
    assert host.current() == "A"


def test_down_stops_the_timer(host: Host) -> None:
    assert host.apply(host.script("A")).returncode == 0
    assert host.apply(host.script("B"), arm=host.arm(TOKEN, 1)).returncode == 0
    pid = host.timer_pid()
    res = host.run(hostcmd.down(MESH), f"find {host.state} -mindepth 1 -delete\n")
    assert res.returncode == 0, res.stderr
    assert not alive(pid)
    time.sleep(2)
    assert not host.state.exists() or list(host.state.iterdir()) == []


def test_the_real_down_script_says_nothing_of_its_own_lock(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    """down-stdin makes the state directory to lock it; the down script removes it without
    claiming a change. Run in a network namespace of its own (it removes marked interfaces),
    in ours for mounts (the timer it stops must be in the same mount namespace)."""
    if Path("/run/wireguard/wg0.sock").exists():
        pytest.skip("a wg0 socket in this mount namespace: the down script would remove it")
    script = scripts.down_script(MESH, render.load_templates(), purge=False)

    def down() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unshare", "--net", "sh", "-c", hostcmd.down(MESH)],
            input=script, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    res = down()
    assert res.returncode == 0, res.stderr
    assert res.stdout == "no changes\n" and not host.state.exists()
    assert host.apply(host.script("A"), arm=host.arm(TOKEN, 30)).returncode == 0
    pid = host.timer_pid()
    res = down()
    assert res.returncode == 0, res.stderr
    assert f"changed: {host.state} removed" in res.stdout
    assert "boot hook systemd disabled" in res.stdout
    assert f"boot hook {host.root}{MESH.boot_unit} removed" in res.stdout
    assert not alive(pid) and not host.state.exists()
