"""`kind: vm` labs: each inventory host a QEMU guest with Debian's own kernel, systemd and sshd.

The namespace topology stays as it is (wan bridge, NAT routers, controller veth); a host's
namespace holds only a bridge joining its underlay veth to the tap of its guest
(netns.guest_wire_lines), so the guest takes the host's underlay address. Each guest boots
the cached image (image.py) through a qcow2 overlay of its own, and a seed disk carries its
identity: hostname, address, host key, the controller's key, sudoers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mesh_push.lab import arch, users
from mesh_push.lab.addresses import IF_TAP, LabPlan, Node, ifname
from mesh_push.lab.errors import EXIT_FAILED, LabError
from mesh_push.lab.image import GUEST_USER, INITS, Image, flavour_of
from mesh_push.lab.sshd import CLIENT_KEY, HOST_KEY
from mesh_push.lab.system import pid_alive, read_pid, run, run_all

QEMU = arch.ARCHES[arch.DEFAULT].qemu
MEMORY_MIB = 384
TCG_CACHE_MIB = 128
ACCEL_ENV = "MESH_PUSH_LAB_ACCEL"  # "tcg" or "kvm": skip the probe
PID_FILE = "vm.pid"
CONSOLE = "console.log"
OVERLAY = "disk.qcow2"
SEED_IMG = "seed.img"
# net.ifnames=0: the guest's NIC is eth0, whatever PCI slot QEMU gives it. mitigations=off:
# on QEMU's emulated CPU the kernel would turn on page-table isolation and friends, whose
# every-syscall TLB flushes TCG pays dearly for; the guests run nothing untrusted.
KERNEL_ARGS = (
    "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet systemd.show_status=0 mitigations=off"
)
SERIAL = "console=ttyS0"  # of KERNEL_ARGS: the serial port of amd64 (arch.Arch.console)
SSH_PROBE_TIMEOUT = 5


def qemu_path(arch_name: str = arch.DEFAULT) -> str:
    a = arch.ARCHES[arch_name]
    found = shutil.which(a.qemu)
    if not found:
        raise LabError(f"{a.qemu} is not installed: run scripts/install ({a.qemu_package})")
    return found


def require_tools(arches: Sequence[str] = (arch.DEFAULT,)) -> None:
    """Before anything is built: every program a vm lab runs on this machine."""
    for a in arches:
        qemu_path(a)
    for tool, package in (("qemu-img", "qemu-utils"), ("mke2fs", "e2fsprogs")):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed: run scripts/install ({package})")


# --------------------------------------------------------------------------- accelerator


def probe_kvm(img: Image, work: Path, timeout: float = 5) -> bool:
    """Whether a KVM guest gets as far as printing the kernel's banner. On some machines
    /dev/kvm opens and a VM is created, yet the guest hangs in the firmware for good."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    console = work / "kvm-probe.log"
    console.unlink(missing_ok=True)
    argv = [
        qemu_path(), "-accel", "kvm", "-m", "128", "-nodefaults", "-no-user-config",
        "-display", "none", "-no-reboot", "-kernel", str(img.kernel),
        "-append", "console=ttyS0 panic=-1", "-serial", f"file:{console}",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + timeout
    ok = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(FileNotFoundError):
                if b"Linux version" in console.read_bytes():
                    ok = True
                    break
            time.sleep(0.1)
    finally:
        proc.kill()  # the one process this function started, by its own handle
        proc.wait()
        console.unlink(missing_ok=True)
    return ok


def accelerator(img: Image, work: Path) -> str:
    forced = os.environ.get(ACCEL_ENV, "")
    if forced in ("tcg", "kvm"):
        return forced
    if forced:
        raise LabError(f"{ACCEL_ENV}={forced!r}: say tcg or kvm, or leave it unset")
    return "kvm" if probe_kvm(img, work) else "tcg"


# --------------------------------------------------------------------------- seed disk


def mac(lab: str, alias: str) -> str:
    # QEMU gives every guest the same MAC unless told: on one wan that breaks everything.
    h = hashlib.sha256(f"{lab}/{alias}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in h[:3])


def network_file(node: Node) -> str:
    lines = [
        "[Match]",
        "Name=eth0",
        "",
        "[Network]",
        f"Address={node.address}/{node.prefixlen}",
        "LinkLocalAddressing=no",
        "IPv6AcceptRA=no",
    ]
    if node.gateway:
        lines.append(f"Gateway={node.gateway}")
    return "\n".join(lines) + "\n"


def network_script(node: Node) -> str:
    """The same address and route, for a guest without systemd-networkd (run by the seed's
    LSB script, image.SEED_LSB)."""
    lines = [
        "ip link set lo up",
        "ip link set eth0 up",
        f"ip address replace {node.address}/{node.prefixlen} dev eth0",
    ]
    if node.gateway:
        lines.append(f"ip route replace default via {node.gateway}")
    return "\n".join(lines) + "\n"


def _put(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    path.write_text(text)
    path.chmod(mode)


def write_seed(plan: LabPlan, node: Node, ndir: Path, lab: Path) -> Path:
    """The guest's seed disk: a tree copied over its / at every boot (image.SEED_SCRIPT)."""
    seed = ndir / "seed"
    root = seed / "root"
    _put(root / "etc/hostname", node.alias + "\n")
    _put(root / "etc/hosts", (ndir / "hosts").read_text())
    _put(root / "etc/systemd/network/10-lab.network", network_file(node))
    _put(root / "etc/lab-net.sh", network_script(node))
    _put(root / f"etc/ssh/{HOST_KEY}", (ndir / HOST_KEY).read_text(), 0o600)
    _put(root / f"etc/ssh/{HOST_KEY}.pub", (ndir / f"{HOST_KEY}.pub").read_text())
    _put(root / "etc/sudoers", users.sudoers(plan.login), 0o440)
    ssh_dir = root / "home" / GUEST_USER / ".ssh"
    _put(ssh_dir / "authorized_keys", (lab / f"{CLIENT_KEY}.pub").read_text(), 0o600)
    ssh_dir.chmod(0o700)
    img = ndir / SEED_IMG
    img.unlink(missing_ok=True)
    run(["mke2fs", "-q", "-t", "ext2", "-L", "lab-seed", "-d", str(seed), str(img), "4M"])
    shutil.rmtree(seed)  # the host key lives on in the image and in the node directory
    return img


# --------------------------------------------------------------------------- QEMU


def accel_option(accel: str) -> str:
    # TCG's translation cache defaults to 1 GiB per guest, more than the guest's own memory.
    return f"tcg,tb-size={TCG_CACHE_MIB}" if accel == "tcg" else accel


def kernel_args(node: Node) -> str:
    init = INITS[node.init].init
    args = KERNEL_ARGS.replace(SERIAL, f"console={arch.ARCHES[node.arch].console}")
    return args + (f" init={init}" if init else "")


def image_of(node: Node, images: Mapping[str, Image]) -> Image:
    return images[flavour_of(node.init, node.arch)]


def guest_accel(node: Node, accel: str) -> str:
    """KVM runs guests of this machine's own CPU only; any other is emulated."""
    return "tcg" if arch.emulated(node.arch) else accel


def qemu_argv(plan: LabPlan, node: Node, ndir: Path, img: Image, accel: str) -> list[str]:
    for path in (ndir, img.disk):
        # QEMU reads `-drive file=...,if=...` as a list: a comma would start a new option.
        if "," in str(path):
            raise LabError(f"QEMU cannot take a path with a comma: {str(path)!r}")
    a = arch.ARCHES[node.arch]
    return [
        "ip", "netns", "exec", node.ns,
        qemu_path(a.name), "-name", f"{plan.name}-{node.alias}", *a.machine,
        "-accel", accel_option(guest_accel(node, accel)), "-m", str(MEMORY_MIB), "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", str(img.kernel), "-initrd", str(img.initrd), "-append", kernel_args(node),
        "-drive", f"file={ndir / OVERLAY},if=virtio,format=qcow2",
        "-drive", f"file={ndir / SEED_IMG},if=virtio,format=raw,readonly=on",
        "-netdev", f"tap,id=net0,ifname={ifname(plan.name, IF_TAP)},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net0,mac={mac(plan.name, node.alias)}",
        "-device", "virtio-rng-pci",
        "-serial", f"file:{ndir / CONSOLE}",
        "-pidfile", str(ndir / PID_FILE),
        "-daemonize",
    ]  # fmt: skip


def start(
    plan: LabPlan,
    guests: Mapping[str, Path],
    lab: Path,
    images: Mapping[str, Image],
    accel: str,
) -> None:
    """Overlay, seed disk and QEMU for each guest (the image of its init, `images` by
    flavour); QEMU daemonizes once the VM runs."""
    jobs: list[tuple[Sequence[str], str | None]] = []
    for alias, ndir in guests.items():
        (ndir / OVERLAY).unlink(missing_ok=True)
        disk = image_of(plan.node(alias), images).disk
        jobs.append(
            (["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(disk), "-F", "raw",
              str(ndir / OVERLAY)], None)
        )  # fmt: skip
    run_all(jobs)
    for alias, ndir in guests.items():
        write_seed(plan, plan.node(alias), ndir, lab)
    run_all([
        (qemu_argv(plan, plan.node(a), d, image_of(plan.node(a), images), accel), None)
        for a, d in guests.items()
    ])  # fmt: skip


def qemu_pid(ndir: Path) -> int | None:
    """The pid in the guest's pid file, if that process is still its QEMU (pids are reused)."""
    pid = read_pid(ndir / PID_FILE)
    if not pid_alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if str(ndir / PID_FILE).encode() in cmdline else None


def stop(node_dirs: Sequence[Path], timeout: float = 10) -> list[int]:
    """Stop each guest's QEMU by the pid in its pid file; returns the pids stopped."""
    pids = [p for p in (qemu_pid(d) for d in node_dirs) if p]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # the overlay is thrown away: nothing to flush
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise LabError(f"QEMU processes {pids} would not die", EXIT_FAILED)
        time.sleep(0.01)
    return pids


# --------------------------------------------------------------------------- ssh


def ssh_argv(
    lab: Path, alias: str, remote: str, *, tty: bool = False, probe: bool = False
) -> list[str]:
    opts = ["-q", *(["-t"] if tty else [])]
    if probe:  # a guest still booting must not hold the caller for ssh's default timeout
        opts += ["-o", f"ConnectTimeout={SSH_PROBE_TIMEOUT}"]
    return ["ssh", "-F", str(lab / "ssh_config"), *opts, alias, remote]


def as_root(argv: Sequence[str]) -> str:
    """The remote command line that runs argv as root through the guest's sudo rule, which
    allows only `sh` (the narrowest rule mesh-push works with)."""
    if not argv:
        return "sudo -n /bin/sh -i"
    return "sudo -n /bin/sh -c " + shlex.quote('exec "$@"') + " sh " + shlex.join(argv)


def exec_argv(lab: Path, alias: str, argv: Sequence[str]) -> list[str]:
    return ssh_argv(lab, alias, as_root(argv), tty=not argv and sys.stdin.isatty())


def probe_ssh(lab: Path, aliases: Sequence[str]) -> dict[str, bool]:
    """Whether each guest's sshd lets the controller in now (all at once)."""
    procs = {
        a: subprocess.Popen(
            ssh_argv(lab, a, "true", probe=True),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for a in aliases
    }  # fmt: skip
    deadline = time.monotonic() + SSH_PROBE_TIMEOUT * 3
    answers = {}
    for alias, proc in procs.items():
        try:
            # Connected, yet no answer: a guest shutting down, or one too busy to log in.
            answers[alias] = proc.wait(timeout=max(0.1, deadline - time.monotonic())) == 0
        except subprocess.TimeoutExpired:
            proc.kill()  # the ssh this function started
            proc.wait()
            answers[alias] = False
    return answers


def wait_ssh(lab: Path, guests: Mapping[str, Path], timeout: float) -> dict[str, float]:
    """Wait until every guest lets the controller in; returns seconds each took."""
    t0 = time.monotonic()
    ready: dict[str, float] = {}
    while len(ready) < len(guests):
        waiting = [a for a in guests if a not in ready]
        for alias in waiting:
            if qemu_pid(guests[alias]) is None:
                raise LabError(f"the guest {alias} stopped while booting: "
                               f"{console_tail(guests[alias])}", EXIT_FAILED)  # fmt: skip
        for alias, ok in probe_ssh(lab, waiting).items():
            if ok:
                ready[alias] = time.monotonic() - t0
        if len(ready) < len(guests):
            if time.monotonic() - t0 > timeout:
                late = [a for a in guests if a not in ready]
                tails = "; ".join(f"{a}: {console_tail(guests[a])}" for a in late)
                raise LabError(f"no ssh to {', '.join(late)} after {timeout:g} s ({tails})",
                               EXIT_FAILED)  # fmt: skip
            time.sleep(1)
    return ready


def console_tail(ndir: Path, lines: int = 3) -> str:
    try:
        text = (ndir / CONSOLE).read_text(errors="replace")
    except FileNotFoundError:
        return "(no console output)"
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " / ".join(tail) or "(no console output)"


# --------------------------------------------------------------------------- reboot


def boot_id(lab: Path, alias: str) -> str | None:
    argv = ssh_argv(lab, alias, "cat /proc/sys/kernel/random/boot_id", probe=True)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SSH_PROBE_TIMEOUT * 3)
    except subprocess.TimeoutExpired:
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


@dataclass(frozen=True)
class Reboot:
    seconds: float  # from the reboot command until sshd answered on the new boot
    boot_id: str
    command: str  # the guest's init's own (`systemctl reboot`, `/sbin/reboot`, ...)


def reboot(lab: Path, node: Node, ndir: Path, timeout: float) -> Reboot:
    """A real reboot by the guest's own init (QEMU resets it in place), then wait until its
    sshd answers from a new boot."""
    alias = node.alias
    command = INITS[node.init].reboot
    # A TCG guest on a busy machine can take longer than one probe to let us in.
    deadline = time.monotonic() + min(timeout, 60)
    while (before := boot_id(lab, alias)) is None and time.monotonic() < deadline:
        time.sleep(1)
    if before is None:
        raise LabError(f"{alias} does not answer over ssh: cannot reboot it", EXIT_FAILED)
    t0 = time.monotonic()
    # The session dies with the guest's sshd: its exit code says nothing.
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(ssh_argv(lab, alias, as_root(command)),
                       capture_output=True, timeout=30)  # fmt: skip
    while True:
        now = boot_id(lab, alias)
        if now and now != before:
            return Reboot(time.monotonic() - t0, now, shlex.join(command))
        if qemu_pid(ndir) is None:
            raise LabError(f"the guest {alias} stopped instead of rebooting: "
                           f"{console_tail(ndir)}", EXIT_FAILED)  # fmt: skip
        if time.monotonic() - t0 > timeout:
            raise LabError(f"{alias} was not back {timeout:g} s after `{shlex.join(command)}` "
                           f"({console_tail(ndir)})", EXIT_FAILED)  # fmt: skip
        time.sleep(1)
