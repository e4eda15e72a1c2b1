"""The validated inventory: frozen data, no I/O. Built only by `inventory.load`."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Literal

EndpointKind = Literal["static", "dynamic", "nat"]
MtuPolicy = Literal["fragment", "clamp"]
KeyMode = Literal["host", "controller"]
# How host-side commands get root: `sudo` (as on cloud images, where the login is a sudo
# user) or `none` (the login is root already).
Become = Literal["sudo", "none"]
# How the lab's hosts let the controller in: as root, or like a cloud image, as a sudo user
# (without or with a sudo password) while root may not log in.
LabLogin = Literal["root", "sudo", "sudo-password"]
# What a lab host is: a network namespace on this machine's kernel, or a QEMU guest with
# Debian's own kernel, systemd and sshd (docs/lab.md#vm).
LabKind = Literal["netns", "vm"]

# Where mesh-push keeps its files on a host (the lab gives each host private copies). Each
# mesh owns only what is named after it: `Mesh.mark`, `.state_dir`, `.boot_unit`,
# `.boot_wants`, `.key_file`, `.psk_dir` (docs/host-files.md).
STATE_ROOT = "/var/lib/mesh-push"
KEY_DIR = "/etc/wireguard"
UNIT_DIR = "/etc/systemd/system"
WANTS_DIR = f"{UNIT_DIR}/multi-user.target.wants"
MARK_PREFIX = "mesh-push"
# Before meshes had names, every mesh used these: what an older mesh-push left on a host.
# An interface with the legacy mark and a name this mesh plans is still this mesh's (it is
# re-marked); the legacy script, unit and key are taken over when the script says it was
# this mesh's (host.sh.j2, facts.sh.j2, down.sh.j2).
LEGACY_MARK = MARK_PREFIX
# The interface names of a mesh whose inventory names none. They were wg0 and internet, the
# names people make by hand (wg-quick, the write-up): a mesh made under those keeps them
# (engine/names.py), and its first `up` writes them into its inventory.
DEFAULT_NAMES = {"wireguard.interface": "mpwg", "bridge.name": "mpbr"}
LEGACY_NAMES = {"wireguard.interface": "wg0", "bridge.name": "internet"}
# The protocol number of the routes a mesh adds (evpn: its VTEPs' unreachable network), which
# tells them from anyone else's; unassigned in iproute2's rt_protos.
NOROUTE_PROTO = 233
# evpn: the priority of the ip rule that lets VXLAN from a VTEP reach the VTEPs' network, and
# (one more) of the rule that sends it nowhere else. Before `main` (32766); every mesh on a
# host uses the same two, each rule told apart by its VTEP.
VTEP_RULE_PREF = 20000
LEGACY_STATE_DIR = STATE_ROOT
LEGACY_BOOT_UNIT = f"{UNIT_DIR}/mesh-push.service"
LEGACY_BOOT_WANTS = f"{WANTS_DIR}/mesh-push.service"

# Push order: hosts others dial first, so their peers find them listening. Dynamic and NAT
# hosts dial only static ones (a link needs a static end), never each other: one wave.
ENDPOINT_RANK: dict[EndpointKind, int] = {"static": 0, "dynamic": 1, "nat": 1}


@dataclass(frozen=True)
class SshTarget:
    """How the controller reaches a host. None means: ask ssh_config, then the default."""

    address: str | None = None
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    via: str | None = None
    become: Become | None = None


@dataclass(frozen=True)
class Host:
    name: str
    endpoint: EndpointKind
    # Public endpoint, static hosts only: an IP address, or a DNS name (a str, validated,
    # without a trailing dot) that every peer resolves itself, again and again.
    address: IPv4Address | IPv6Address | str | None
    number: int  # host part of its overlay addresses (resolved, never None)
    ssh: SshTarget = field(default_factory=SshTarget)
    public_key: str | None = None
    location: str | None = None
    # `transit: false`: a leaf, never on the path between two other hosts while another
    # path exists (a host at home should not carry two VPSes' traffic).
    transit: bool = True
    # TX checksum offload on the host's VXLAN devices (the write-up's `ethtool -K WIRE tx off`):
    # the host's `tx_checksum`, else the mesh's; None leaves it as the kernel has it.
    tx_checksum: bool | None = None
    # How the mesh comes back at boot: "auto" (the init the host runs) or an init's name
    # (host/boot.py), the host's `boot`, else the mesh's.
    boot: str = "auto"

    @property
    def dns_name(self) -> str | None:
        return self.address if isinstance(self.address, str) else None


@dataclass(frozen=True)
class LinkEndpoint:
    host: str
    address: IPv4Address | IPv6Address
    port: int | None = None


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    vni: int
    latency_ms: float | None = None
    cost: int | None = None
    # A WireGuard pre-shared key for this link: `mesh.psk`, unless the link says otherwise
    # (inventory.load resolves it).
    psk: bool = False
    # The link's `endpoints`: where its far end dials each host named there on this link
    # (a LAN address, so that two hosts behind one NAT link over their LAN): (host, address,
    # port; None: the port the host listens on for this link).
    endpoints: tuple[LinkEndpoint, ...] = ()

    @property
    def hosts(self) -> tuple[str, str]:
        return (self.a, self.b)

    def reached_at(self, name: str) -> LinkEndpoint | None:
        """Where the other end dials `name` on this link, when the link says."""
        return next((e for e in self.endpoints if e.host == name), None)

    def other(self, name: str) -> str:
        return self.b if name == self.a else self.a


@dataclass(frozen=True)
class Stp:
    hello: int = 2
    forward_delay: int = 15
    max_age: int = 20
    root: str | None = None
    # MAC table ageing (s). After a failover the far side keeps sending to MACs learnt on
    # the dead wire until they age out (at forward_delay during a topology change): a short
    # ageing time bounds that, at the price of some flooding on a quiet network.
    ageing: int = 300
    # Wires are named prefix + the peer's name ("" by default, as in the write-up): two meshes
    # with different prefixes can both link the same two hosts.
    wire_prefix: str = ""


@dataclass(frozen=True)
class Evpn:
    asn: int = 65000
    vni: int = 100  # the segment's VXLAN id (links' VNIs only number the links)


@dataclass(frozen=True)
class Mtu:
    policy: MtuPolicy
    underlay: int
    wireguard: int
    bridge: int  # also every wire's MTU


@dataclass(frozen=True)
class SshDefaults:
    user: str = "root"
    port: int = 22
    identity: str | None = None
    become: Become | None = None  # None: sudo unless the login user is root
    config: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class LabSettings:
    name: str
    network: IPv4Network
    login: LabLogin = "root"
    kind: LabKind = "netns"
    # `lab.lans`: NAT hosts that share one router and one LAN (a home with a Pi and a NAS);
    # every other NAT host has a router and a LAN of its own.
    lans: tuple[tuple[str, ...], ...] = ()
    # `lab.init` (kind vm): the init system each guest boots, by host (others: systemd).
    inits: tuple[tuple[str, str], ...] = ()
    # `lab.arch` (kind vm): each guest's CPU architecture, by host (others: amd64).
    arches: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Mesh:
    source: Path
    name: str
    wg_interface: str
    wg_port: int
    wg_network: IPv4Network
    bridge: str
    bridge_network: IPv4Network
    vxlan_port: int
    mtu: Mtu
    stp: Stp
    keys: KeyMode
    ssh: SshDefaults
    hosts: tuple[Host, ...]
    links: tuple[Link, ...]
    state_file: Path
    keystore: Path
    lab: LabSettings | None = None
    # Seconds between re-resolutions of peers' DNS names on each host; 0: only at apply.
    wg_reresolve: int = 60
    # The default keystore of mesh-push before it was per inventory (one per mesh name):
    # named in advice only, never used. None when mesh.keystore is set.
    legacy_keystore: Path | None = None
    # `mesh.psk`: the links' default for a pre-shared key (each Link.psk is resolved).
    psk: bool = False
    # How the hosts' bridges are joined: the name of a mode (mesh_push.modes), each of which
    # has its settings in the field of its name.
    mode: str = "stp"
    evpn: Evpn = field(default_factory=Evpn)
    # mesh.name was not set: `name` is the file's stem, which `up` writes into the file (a
    # mesh must not be renamed by moving its inventory).
    name_from_file: bool = False
    # Of "wireguard.interface" and "bridge.name", those the inventory does not set.
    unnamed: frozenset[str] = frozenset()
    # IPv6 on the bridge (`mesh.bridge.network6`, or the /64 `mesh.ipv6: ula` derives from
    # the mesh's name): host n gets the n-th address of it; None: IPv4 only.
    bridge_network6: IPv6Network | None = None
    # IPv6 on the WireGuard tunnels too (`mesh.wireguard.network6`, a /64): stp, host n's
    # interface gets its n-th address; evpn, each link's interfaces a /127 of it, by VNI.
    wg_network6: IPv6Network | None = None
    # `mesh.names.domain`: every host's /etc/hosts gets a block naming every host's bridge
    # address NAME.DOMAIN and NAME (modes/names.py); None: no block.
    names_domain: str | None = None

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def _file_name(self) -> str:
        """The mesh's name as one component of a host path. The inventory allows no other
        (its checks); this refuses to build a path out of anything else, whatever made it."""
        if self.name in ("", ".", "..") or "/" in self.name or "\0" in self.name:
            raise ValueError(f"mesh name {self.name!r} cannot name a file on a host")
        return self.name

    @property
    def mark(self) -> str:
        """The alias (ifalias) of every interface this mesh made: no other is ever changed."""
        return f"{MARK_PREFIX}:{self.name}"

    @property
    def names_begin(self) -> str:
        """The first line of the mesh's block in a host's /etc/hosts (modes/names.py)."""
        return f"# BEGIN {self.mark} names (mesh-push writes this block: do not edit)"

    @property
    def names_end(self) -> str:
        return f"# END {self.mark} names"

    @property
    def state_dir(self) -> str:
        """The host's copy of this mesh's last applied script, its digest, logs, rollback."""
        return f"{STATE_ROOT}/{self._file_name}"

    @property
    def boot_name(self) -> str:
        """What the mesh's boot hook is named after, under every init (host/boot.py)."""
        return f"mesh-push-{self._file_name}"

    @property
    def boot_unit(self) -> str:
        """The systemd unit that re-runs the last applied script at boot."""
        return f"{UNIT_DIR}/mesh-push-{self._file_name}.service"

    @property
    def boot_wants(self) -> str:
        """The link that enables the boot unit."""
        return f"{WANTS_DIR}/mesh-push-{self._file_name}.service"

    @property
    def key_file(self) -> str:
        """The host's WireGuard private key: made there (or delivered), read only by `wg`."""
        return f"{KEY_DIR}/mesh-push-{self._file_name}.key"

    @property
    def psk_dir(self) -> str:
        """The host's pre-shared keys, one 0600 file per peer, named after the peer."""
        return f"{KEY_DIR}/mesh-push-{self._file_name}.psk"

    def psk_file(self, peer: str) -> str:
        """The pre-shared key this host uses with `peer`. Host names are safe names (the
        inventory's checks); this refuses a path out of anything else, whatever made it."""
        if peer in ("", ".", "..") or "/" in peer or "\0" in peer:
            raise ValueError(f"host name {peer!r} cannot name a file on a host")
        return f"{self.psk_dir}/{peer}"

    @property
    def frr_pathspace(self) -> str:
        """The mesh's own FRR instance (mode evpn runs one; `down` and every host script stop
        it where it runs): /etc/frr/NAME, /run/frr/NAME, `vtysh -N`."""
        return f"mesh-push-{self._file_name}"

    @property
    def legacy_key_file(self) -> str:
        """Where an older mesh-push kept the key: taken over by `up` (facts.sh.j2) when the
        interface that uses it carries the legacy mark."""
        return f"{KEY_DIR}/{self.wg_interface}.key"

    def links_of(self, name: str) -> tuple[Link, ...]:
        return tuple(lk for lk in self.links if name in lk.hosts)
