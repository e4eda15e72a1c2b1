"""The CPU architectures of `kind: vm` guests (`lab.arch`, issue 30): amd64, and arm64 like
the write-up's Raspberry Pi. A guest of this machine's own architecture may run under KVM; any
other is emulated by QEMU's TCG. An image of another architecture is built by mmdebstrap
`--arch`, whose chroot runs that architecture's maintainer scripts through qemu-user and the
kernel's binfmt_misc (`foreign`).
"""

from __future__ import annotations

import contextlib
import platform
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mesh_push.lab.errors import LabError
from mesh_push.lab.system import run


@dataclass(frozen=True)
class Arch:
    name: str  # Debian's name, as `lab.arch` and mmdebstrap --arch say it
    qemu: str  # the system emulator
    qemu_package: str  # the Debian package that has it
    machine: tuple[str, ...]  # board and CPU options
    console: str  # the serial port the kernel writes to
    kernel: str  # Debian's kernel package
    binfmt: str  # qemu-user's binfmt_misc entry, to run its programs on another machine


# arm64: QEMU's `virt` board (PCI, so the same virtio-*-pci devices as on amd64, and a PL011
# serial port, ttyAMA0). cortex-a72, the Raspberry Pi 4's CPU: under TCG it boots as fast as
# `max,pauth-impdef=on` (28 s against 25 to 27 to the login prompt) and well over twice as
# fast as plain `max` (77 s), whose emulated pointer authentication Debian's kernel uses.
ARCHES = {
    "amd64": Arch(
        "amd64", "qemu-system-x86_64", "qemu-system-x86", (), "ttyS0", "linux-image-amd64",
        "qemu-x86_64",
    ),
    "arm64": Arch(
        "arm64", "qemu-system-aarch64", "qemu-system-arm", ("-M", "virt", "-cpu", "cortex-a72"),
        "ttyAMA0", "linux-image-arm64", "qemu-aarch64",
    ),
}  # fmt: skip
DEFAULT = "amd64"

_MACHINES = {"x86_64": "amd64", "aarch64": "arm64"}


def native() -> str | None:
    """This machine's architecture, in Debian's words (None: one no guest has)."""
    return _MACHINES.get(platform.machine())


def emulated(arch: str) -> bool:
    """Whether a guest of `arch` runs on another CPU than this machine's: TCG only, and its
    image needs qemu-user to be built."""
    return arch != native()


# --------------------------------------------------------------------------- binfmt_misc

BINFMT = Path("/proc/sys/fs/binfmt_misc")
# qemu-user-static's own registrations, in binfmt_misc's `register` format (systemd-binfmt
# reads the same files).
BINFMT_CONF = Path("/usr/lib/binfmt.d")


def registration(arch: Arch) -> str:
    """The line that registers qemu-user for `arch` with binfmt_misc: qemu-user-static's own,
    with the F flag (the kernel opens the interpreter now, so that it works inside the
    image's chroot, which has no qemu of its own)."""
    conf = BINFMT_CONF / f"{arch.binfmt}.conf"
    try:
        line = next(ln for ln in conf.read_text().splitlines() if ln.startswith(":"))
    except (FileNotFoundError, StopIteration):
        raise LabError(
            f"{conf} is missing: run scripts/install (qemu-user-static), which lets this "
            f"machine build an {arch.name} guest image"
        ) from None
    fields = line.split(":")
    # :name:type:offset:magic:mask:interpreter:flags
    if len(fields) != 8 or fields[1] != arch.binfmt:
        raise LabError(f"{conf}: not a binfmt_misc registration of {arch.binfmt}: {line!r}")
    if "F" not in fields[7]:
        fields[7] += "F"
    return ":".join(fields)


@contextlib.contextmanager
def foreign(name: str) -> Iterator[None]:
    """While it lasts, this machine runs `name`'s programs through qemu-user. binfmt_misc is
    mounted only if it is not, qemu-user registered only if it is not; afterwards exactly that
    is undone (on failure too), so whatever the machine had before stays as it was."""
    arch = ARCHES[name]
    if not emulated(name):
        yield
        return
    if shutil.which("arch-test") is None:  # mmdebstrap asks it whether arm64 runs here
        raise LabError("arch-test is not installed: run scripts/install (arch-test)")
    binfmt = BINFMT
    mounted = registered = False
    entry = binfmt / arch.binfmt
    try:
        if not (binfmt / "register").exists():
            run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)])
            mounted = True
        if not entry.exists():
            line = registration(arch)
            (binfmt / "register").write_text(line + "\n")
            registered = True
        elif entry.read_text().splitlines()[:1] == ["disabled"]:
            raise LabError(
                f"{entry} is disabled: {arch.name} programs cannot run on this machine "
                f"(`echo 1 > {entry}` enables it)"
            )
        yield
    finally:
        if registered:
            entry.write_text("-1\n")  # unregisters this one entry
        if mounted:
            run(["umount", str(binfmt)], check=False)
