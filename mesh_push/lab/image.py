"""The guest image of a `kind: vm` lab: Debian 12 built from Debian packages with mmdebstrap,
once per recipe, cached under /var/cache/mesh-push/vm/<hash of the recipe>/.

Every guest boots the cached kernel and initrd directly (no boot loader) with the cached
ext4 image as the backing file of its own copy-on-write overlay, so the image is never
written after it is built. Per-host settings (address, hostname, host key, login) come from
a small seed disk that `lab-guest-seed.service` applies at every boot (see vm.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mesh_push.lab import arch
from mesh_push.lab.errors import EXIT_FAILED, LabError
from mesh_push.lab.system import run

CACHE = Path(os.environ.get("MESH_PUSH_VM_CACHE", "/var/cache/mesh-push/vm"))
SUITE = "bookworm"
IMAGE_SIZE = "1500M"
GUEST_USER = "debian"  # as on Debian's cloud images (users.USER)
SEED_UNIT = "lab-guest-seed.service"

# What a real host needs for mesh-push (wg, ip, bridge, brctl, flock, setsid, timeout, ps,
# systemd) and for the tests (ping), and nothing for wireguard-go: the kernel has WireGuard.
# frr: the routing daemons of `mode: evpn` (one instance per mesh, frr@mesh-push-NAME).
PACKAGES = (
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "kmod",
    "openssh-server",
    "sudo",
    "wireguard-tools",
    "iproute2",
    "bridge-utils",
    "iputils-ping",
    "procps",
    "frr",
)

# Small initramfs: only what finds the root disk. The default (MODULES=most) packs every
# storage driver, and unpacking it costs seconds under TCG.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4", "crc32c_generic")

# Applies the seed disk (/dev/vdb, made by vm.py for each host) at every boot, before the
# network and sshd start: the overlay keeps the guest's state, the seed its identity.
SEED_SCRIPT = r"""#!/bin/sh
set -eu
mkdir -p /run/lab-seed
mount -o ro /dev/vdb /run/lab-seed
trap 'umount /run/lab-seed' EXIT
cp -a /run/lab-seed/root/. /
home=/home/{user}
chown -R {user}:{user} "$home/.ssh"
chmod 700 "$home/.ssh"
chmod 600 "$home/.ssh/authorized_keys"
if [ -s /run/lab-seed/password-hash ]; then
  usermod -p "$(cat /run/lab-seed/password-hash)" {user}
else
  usermod -p '*' {user}
fi
hostname -F /etc/hostname
""".replace("{user}", GUEST_USER)

SEED_UNIT_TEXT = """[Unit]
Description=Identity of this lab guest (address, hostname, host key, login) from its seed disk
DefaultDependencies=no
Wants=dev-vdb.device
After=dev-vdb.device local-fs.target
Before=sysinit.target network-pre.target systemd-networkd.service ssh.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/lab-guest-seed

[Install]
WantedBy=sysinit.target
"""

# The sshd of a cloud image: the sudo user only, by key; its host key comes from the seed.
SSHD_CONF = f"""# lab guest: as on cloud images
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin no
AllowUsers {GUEST_USER}
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 100:30:200
MaxSessions 64
"""

# Runs on the machine with the new root file system as $1 (mmdebstrap's customize hook).
CUSTOMIZE = f"""set -eu
r=$1
install -m 0755 /dev/stdin "$r/usr/local/sbin/lab-guest-seed" <<'EOF'
{SEED_SCRIPT}EOF
cat > "$r/etc/systemd/system/{SEED_UNIT}" <<'EOF'
{SEED_UNIT_TEXT}EOF
cat > "$r/etc/ssh/sshd_config.d/lab.conf" <<'EOF'
{SSHD_CONF}EOF
rm -f "$r"/etc/ssh/ssh_host_*
mkdir -p "$r/etc/systemd/journald.conf.d"
printf '[Journal]\\nStorage=volatile\\n' > "$r/etc/systemd/journald.conf.d/lab.conf"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\\n' > "$r/etc/fstab"
chroot "$r" useradd --create-home --shell /bin/bash --uid 1000 --user-group {GUEST_USER}
chroot "$r" usermod -p '*' {GUEST_USER}
chroot "$r" systemctl enable {SEED_UNIT} systemd-networkd.service
# As docs/evpn.md asks of a host: FRR installed, its default instance not running (an evpn
# mesh runs its own and refuses to share the namespace's routes with another zebra).
chroot "$r" systemctl disable frr.service
# Timers that would reach for the internet the guests have no route to.
chroot "$r" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \\
  e2scrub_reap.service fstrim.timer getty@tty1.service
sed -i 's/^MODULES=.*/MODULES=list/' "$r/etc/initramfs-tools/initramfs.conf"
printf '%s\\n' {" ".join(INITRAMFS_MODULES)} >> "$r/etc/initramfs-tools/modules"
chroot "$r" update-initramfs -u -k all
"""


# Guests without systemd (issue 30): the same packages but systemd's, and an init system from
# Debian's packages. sysvinit-core with sysv-rc runs LSB scripts; its image also boots runit
# as PID 1 (`init=/lib/runit/runit-init`: the `runit` package, whose stage 1 runs the rcS
# scripts and stage 2 the rc2.d ones, and starts sshd from openssh-server's own /etc/sv/ssh).
# OpenRC replaces sysv-rc (they conflict), so it has an image of its own: Debian's OpenRC,
# under sysvinit's PID 1.
COMMON = tuple(p for p in PACKAGES if p not in ("systemd-sysv", "udev"))
SYSV_PACKAGES = (*COMMON, "sysvinit-core", "sysv-rc", "initscripts", "runit")
OPENRC_PACKAGES = (*COMMON, "sysvinit-core", "openrc", "initscripts")

# Applies the seed, then the guest's address and route (no systemd-networkd here), before
# sshd and everything that needs the network.
SEED_LSB = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          lab-guest-seed
# Required-Start:    mountkernfs $local_fs
# Required-Stop:
# X-Start-Before:    ssh $network
# Default-Start:     S
# Default-Stop:
# Short-Description: Identity and address of this lab guest, from its seed disk
### END INIT INFO
case "$1" in
  start) /usr/local/sbin/lab-guest-seed && sh /etc/lab-net.sh ;;
esac
"""

SYSV_CUSTOMIZE = f"""set -eu
r=$1
install -m 0755 /dev/stdin "$r/usr/local/sbin/lab-guest-seed" <<'EOF'
{SEED_SCRIPT}EOF
install -m 0755 /dev/stdin "$r/etc/init.d/lab-guest-seed" <<'EOF'
{SEED_LSB}EOF
cat > "$r/etc/ssh/sshd_config.d/lab.conf" <<'EOF'
{SSHD_CONF}EOF
rm -f "$r"/etc/ssh/ssh_host_*
printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\\n' > "$r/etc/fstab"
chroot "$r" useradd --create-home --shell /bin/bash --uid 1000 --user-group {GUEST_USER}
chroot "$r" usermod -p '*' {GUEST_USER}
chroot "$r" update-rc.d lab-guest-seed defaults
# As docs/evpn.md asks of a host: FRR installed, its default instance not started at boot.
chroot "$r" update-rc.d -f frr remove
# Nobody logs in on a console.
sed -i 's/^\\([0-9]*:[0-9]*:respawn:.*getty.*\\)$/#\\1/' "$r/etc/inittab"
sed -i 's/^MODULES=.*/MODULES=list/' "$r/etc/initramfs-tools/initramfs.conf"
printf '%s\\n' {" ".join(INITRAMFS_MODULES)} >> "$r/etc/initramfs-tools/modules"
chroot "$r" update-initramfs -u -k all
"""


# arm64 guests (`lab.arch`): the systemd image with Debian's arm64 kernel, nothing else
# changed. The initramfs modules are the same: on QEMU's `virt` board the disks are virtio
# PCI devices as on amd64, behind a PCI host bridge that Debian's arm64 kernel has built in.
ARM64_PACKAGES = tuple(arch.ARCHES["arm64"].kernel if p == "linux-image-amd64" else p
                       for p in PACKAGES)  # fmt: skip


@dataclass(frozen=True)
class Flavour:
    name: str
    packages: tuple[str, ...]
    customize: str
    arch: str = arch.DEFAULT


FLAVOURS = {
    "systemd": Flavour("systemd", PACKAGES, CUSTOMIZE),
    "sysv": Flavour("sysv", SYSV_PACKAGES, SYSV_CUSTOMIZE),
    "openrc": Flavour("openrc", OPENRC_PACKAGES, SYSV_CUSTOMIZE),
    "systemd-arm64": Flavour("systemd-arm64", ARM64_PACKAGES, CUSTOMIZE, "arm64"),
}


@dataclass(frozen=True)
class GuestInit:
    """A guest's init system: the image it boots, what the kernel runs as PID 1 (None: the
    image's /sbin/init), and how it is rebooted from inside."""

    flavour: str
    init: str | None
    reboot: tuple[str, ...]


INITS = {
    "systemd": GuestInit("systemd", None, ("systemctl", "reboot")),
    "runit": GuestInit("sysv", "/lib/runit/runit-init", ("/lib/runit/runit-init", "6")),
    "sysvinit": GuestInit("sysv", None, ("/sbin/reboot",)),
    "openrc": GuestInit("openrc", None, ("/sbin/reboot",)),
}


def flavour_of(init: str, arch_name: str) -> str:
    """The image a guest of this init and architecture boots (arm64: systemd only, checked
    by the inventory)."""
    base = INITS[init].flavour
    return base if arch_name == arch.DEFAULT else f"{base}-{arch_name}"


def recipe(flavour: str = "systemd") -> str:
    """Everything the image is made of: its hash names the cache entry."""
    f = FLAVOURS[flavour]
    # systemd's recipe is as it was before there were others: its cached image stays good.
    # Every other one is named, its architecture with it (systemd-arm64).
    named = [] if flavour == "systemd" else [f.name]
    return "\n".join(["v1", SUITE, IMAGE_SIZE, *named, *f.packages, f.customize])


def recipe_hash(flavour: str = "systemd") -> str:
    return hashlib.sha256(recipe(flavour).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Image:
    dir: Path
    kernel: Path
    initrd: Path
    disk: Path  # raw ext4, the read-only backing file of every overlay
    built_seconds: float | None  # None: taken from the cache


def cached(flavour: str = "systemd") -> Image | None:
    d = CACHE / recipe_hash(flavour)
    img = Image(d, d / "vmlinuz", d / "initrd.img", d / "disk.img", None)
    return img if all(p.exists() for p in (img.kernel, img.initrd, img.disk)) else None


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    # Two labs (or test runs) starting at once build the image once.
    CACHE.mkdir(parents=True, exist_ok=True, mode=0o755)
    with open(CACHE / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure(flavour: str = "systemd", log: Path | None = None) -> Image:
    """The cached image, built first if there is none for this recipe."""
    if img := cached(flavour):
        return img
    with _locked():
        if img := cached(flavour):
            return img
        return _build(flavour, log)


def stale() -> list[Path]:
    """Cache entries of older recipes, never used again (700 MB each). Every flavour's
    current image stays, whichever was just built: amd64's and arm64's, of every init."""
    current = {recipe_hash(f) for f in FLAVOURS}
    return sorted(
        old
        for old in CACHE.iterdir()
        if old.is_dir() and old.name not in current and not old.name.startswith(".")
    )


def _build(flavour: str, log: Path | None) -> Image:
    for tool in ("mmdebstrap", "mke2fs"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed: run scripts/install (apt-get install "
                           "mmdebstrap e2fsprogs qemu-system-x86 qemu-utils)")  # fmt: skip
    t0 = time.monotonic()
    f = FLAVOURS[flavour]
    final = CACHE / recipe_hash(flavour)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
    try:
        rootfs = work / "rootfs"
        hook = work / "customize.sh"
        hook.write_text(f.customize)
        argv = [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            f"--arch={f.arch}",
            "--aptopt=APT::Install-Recommends false",
            # Documentation and translations: a third of the image, read by nobody in a lab.
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            "--include=" + ",".join(f.packages),
            f'--customize-hook=sh {hook} "$1"',
            SUITE,
            str(rootfs),
        ]
        # Another architecture's maintainer scripts (and update-initramfs) run under qemu-user:
        # several times slower than natively.
        with arch.foreign(f.arch):
            done = run(argv, check=False, timeout=3600 if arch.emulated(f.arch) else 1800)
        if log is not None:
            log.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            tail = "\n    ".join(done.stderr.strip().splitlines()[-8:])
            raise LabError(f"building the guest image failed (mmdebstrap):\n    {tail}",
                           EXIT_FAILED)  # fmt: skip
        boot = rootfs / "boot"
        kernels = sorted(boot.glob("vmlinuz-*"))
        initrds = sorted(boot.glob("initrd.img-*"))
        if not kernels or not initrds:
            raise LabError("the guest image has no kernel or initrd in /boot", EXIT_FAILED)
        shutil.copy2(kernels[-1], work / "vmlinuz")
        shutil.copy2(initrds[-1], work / "initrd.img")
        run(["mke2fs", "-q", "-t", "ext4", "-L", "lab-root", "-d", str(rootfs),
             str(work / "disk.img"), IMAGE_SIZE], timeout=600)  # fmt: skip
        shutil.rmtree(rootfs)
        hook.unlink()
        (work / "recipe.txt").write_text(recipe(flavour) + "\n")
        (work / "disk.img").chmod(0o444)  # only ever a backing file
        seconds = time.monotonic() - t0
        (work / "built_seconds").write_text(f"{seconds:.1f}\n")
        work.chmod(0o755)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(work, final)
        for old in stale():
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Image(final, final / "vmlinuz", final / "initrd.img", final / "disk.img", seconds)
