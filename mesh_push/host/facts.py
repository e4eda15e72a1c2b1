"""A host's facts (what it has: tools, kernel WireGuard, its init, its key, the script it last
applied), as the first command prints them, and the ways hosts differ, each one small class
chosen from those facts, as sshuttle picks its methods: how the WireGuard interface is made
(the kernel's, or wireguard-go), and how the mesh comes back at boot (host/boot.py). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mesh_push.host import boot
from mesh_push.host.state import HostState, sections


@dataclass(frozen=True)
class Facts:
    public_key: str | None  # of the host's current private key
    applied: str  # digest of the last script applied there ("" for none)
    kernel_wireguard: bool
    wireguard_go: bool
    wg: bool
    brctl: bool
    flock: bool = True  # util-linux flock: the host lock (templates/include/lock.sh.j2)
    # `ip` is iproute2's: BusyBox's own (Alpine's without iproute2) has no VXLAN or WireGuard.
    iproute2: bool = True
    init: str = boot.NONE  # the init system it runs (host/boot.py)


@dataclass
class Gathered:
    """What Stage Gather read of each host: its facts and its state."""

    facts: dict[str, Facts]
    states: dict[str, HostState]


def parse_facts(text: str) -> Facts:
    """The `=== facts` section of the first command (templates/programs/facts.sh.j2)."""
    kv = {}
    secs = sections(text)
    for line in secs.get("facts", "").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            kv[k.strip()] = v.strip()
    return Facts(
        public_key=kv.get("public_key") or None,
        applied=kv.get("applied", ""),
        kernel_wireguard=kv.get("kernel_wireguard") == "yes",
        wireguard_go=bool(kv.get("wireguard_go")),
        wg=bool(kv.get("wg")),
        brctl=bool(kv.get("brctl")),
        flock=bool(kv.get("flock")),
        iproute2=kv.get("iproute2", "yes") == "yes",
        init=boot.parse(secs.get("boot", "")).init,
    )


class NoBackend(Exception):
    """The host lacks what mesh-push needs; the message says what to install."""


class WireGuard:
    name: ClassVar[str]

    @staticmethod
    def supported(facts: Facts) -> bool:
        raise NotImplementedError


class KernelWireGuard(WireGuard):
    name = "kernel"

    @staticmethod
    def supported(facts: Facts) -> bool:
        return facts.kernel_wireguard


class WireGuardGo(WireGuard):
    """Userspace, where the kernel has none (wg-quick falls back the same way)."""

    name = "wireguard-go"

    @staticmethod
    def supported(facts: Facts) -> bool:
        return facts.wireguard_go


WIREGUARD: tuple[type[WireGuard], ...] = (KernelWireGuard, WireGuardGo)


@dataclass(frozen=True)
class Backends:
    wireguard: type[WireGuard]
    boot: type[boot.Boot]


def choose(facts: Facts, boot_setting: str = boot.AUTO) -> Backends:
    """The first supported WireGuard; the init the host runs (or `boot_setting`, the
    inventory's `boot`, when it names one); else NoBackend naming what is missing."""
    if not facts.wg:
        raise NoBackend("`wg` is not installed there: apt-get install wireguard-tools")
    if not facts.flock:
        raise NoBackend(
            "`flock` is not installed there (mesh-push's host lock needs it): "
            "apt-get install util-linux"
        )
    if not facts.iproute2:
        raise NoBackend(
            "`ip` there is not iproute2's (BusyBox's cannot make VXLAN or WireGuard "
            "interfaces): apt-get install iproute2 (Alpine: apk add iproute2)"
        )
    wireguard = next((b for b in WIREGUARD if b.supported(facts)), None)
    if wireguard is None:
        raise NoBackend(
            "no WireGuard there: the kernel has no wireguard module and wireguard-go is not "
            "installed (use a kernel of 5.6 or later, or apt-get install wireguard-go)"
        )
    hook = boot.choose(boot_setting, facts.init)
    if hook is None:
        raise NoBackend(boot.missing(facts.init))
    return Backends(wireguard, hook)
