"""The inventory's `mesh`, `ssh` and `lab` sections, and the whole assembled into a Mesh: each
mode reads its own section and checks what it needs of the rest (modes/*/settings.py)."""

from __future__ import annotations

import hashlib
import os
import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any, cast

from mesh_push import modes
from mesh_push.core.model import (
    DEFAULT_NAMES,
    LEGACY_NAMES,
    Become,
    KeyMode,
    LabKind,
    LabLogin,
    LabSettings,
    Mesh,
    Mtu,
    MtuPolicy,
    SshDefaults,
)
from mesh_push.core.problems import InventoryError, Problem, Problems
from mesh_push.core.section import Draft, Section, kind
from mesh_push.core.values import (
    DOMAIN_MAX,
    dns_label_problem,
    ifname_problem,
    name_problem,
    quoted,
)
from mesh_push.host import boot
from mesh_push.inventory.files import MAX_BYTES
from mesh_push.inventory.hosts import BECOME, path_field, read_hosts, user_field
from mesh_push.inventory.links import read_links
from mesh_push.inventory.yamldoc import compose

LAB_ROOT = Path("/run/mesh-push/lab")
LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,5}$")
LAB_LOGINS: tuple[LabLogin, ...] = ("root", "sudo", "sudo-password")
LAB_KINDS: tuple[LabKind, ...] = ("netns", "vm")
# `lab.arch`: a guest's CPU (Debian's names). arm64 guests boot systemd only: the images of
# other inits are amd64's alone, each arm64 image costing many minutes of emulated building.
LAB_ARCHES = ("amd64", "arm64")
MESH_NAME_MAX = 64
CONNECT_TIMEOUT_MAX = 3600.0
RERESOLVE_MAX = 86_400
# wg-quick assumes the worst case (IPv6 underlay): 80 bytes of WireGuard overhead.
WG_OVERHEAD = 80
VXLAN_OVERHEAD = 50
MIN_MTU = 1280


def lab_dir(name: str) -> Path:
    return LAB_ROOT / name


def parse(text: str, file: Path, hosts_only: bool = False) -> Mesh:
    """The inventory in `text` (read from `file`). `hosts_only` (`mesh-push import`'s input):
    hosts and how to reach them are enough; no links, and a host without `endpoint` counts as
    static when it has an address, else dynamic, only to be reached."""
    if len(text) > MAX_BYTES:
        raise InventoryError([Problem(file, (), None, f"is more than {MAX_BYTES} bytes")])
    data, lines, early, silenced = compose(text, file)
    problems = Problems(file, lines)
    problems.items.extend(early)
    problems.silenced |= silenced
    if data is None:
        problems.add((), "the inventory is empty: it needs at least `hosts:` and `links:`")
        problems.raise_if_any()
    if not isinstance(data, dict):
        problems.add(
            (),
            f"the inventory must be a YAML mapping with `hosts:` and `links:`, not {kind(data)}",
        )
        problems.raise_if_any()
    if hosts_only:
        data = _hosts_only(data)
    top = Section(data, (), problems)
    base = file.parent

    m = top.sub("mesh")
    name = m.get("name", str, None)
    name_from_file = False
    wg = m.sub("wireguard")
    wg_if = wg.get("interface", str, None)
    wg_port = wg.int_in("port", 1, 65535, 51820)
    wg_net = wg.network("network", "10.88.88.0/24")
    wg_net6 = wg.network6("network6")
    reresolve = wg.int_in("reresolve", 0, RERESOLVE_MAX, 60)
    wg.done()
    br = m.sub("bridge")
    br_name = br.get("name", str, None)
    br_net = br.network("network", "10.99.99.0/24")
    br_net6 = br.network6("network6")
    br.done()
    unnamed = frozenset(
        key for key, sec in (("wireguard.interface", wg), ("bridge.name", br))
        if sec.data.get(key.split(".")[1]) is None
    )  # fmt: skip
    wg_if = DEFAULT_NAMES["wireguard.interface"] if "wireguard.interface" in unnamed else wg_if
    br_name = DEFAULT_NAMES["bridge.name"] if "bridge.name" in unnamed else br_name
    vxlan_port = m.int_in("vxlan_port", 1, 65535, 4789)
    tx_checksum: bool | None = m.get("tx_checksum", bool, None, "true or false")
    boot_setting: str | None = m.choice("boot", boot.SETTINGS, None)
    mtu = _mtu(m, problems)
    mode_name: str = m.choice("mode", modes.NAMES, modes.DEFAULT) or modes.DEFAULT
    # Each mode's own section (named after it) is read by that mode, whichever is chosen: a
    # mistake in it is reported all the same, and so is the section of a mode not chosen.
    mode_secs = {n: m.sub(n) for n in modes.NAMES}
    settings: dict[str, Any] = {n: modes.named(n).read_settings(s) for n, s in mode_secs.items()}
    for other, sec in mode_secs.items():
        if other != mode_name and sec.data:
            problems.add(
                sec.path, f"applies to mesh.mode {other} only, and this mesh is {mode_name}"
            )
    keys: KeyMode = m.choice("keys", ("host", "controller"), "host")
    psk = m.get("psk", bool, False, "true or false")
    state = path_field(m, "state")
    if state is not None and not state.endswith(".json"):
        # A name that says what it is: mesh.state must never aim at a file of something else.
        problems.add((*m.path, "state"), f"must name a .json file, not {state!r}")
        state = None
    keystore = path_field(m, "keystore")
    names_domain = _names(m.sub("names"), "names" in m.data, problems)
    want_ula = m.choice("ipv6", ("ula",), None) == "ula"
    if want_ula and br_net6 is not None:
        problems.add((*m.path, "ipv6"), "mesh.bridge.network6 is set too: one or the other")
    m.done()

    for p, value in (((*wg.path, "interface"), wg_if), ((*br.path, "name"), br_name)):
        if isinstance(value, str) and (why := ifname_problem(value)):
            problems.add(p, why)
    if isinstance(wg_if, str) and wg_if == br_name:
        problems.add((*br.path, "name"), "the bridge and the WireGuard interface need two names")
    if wg_net and br_net and wg_net.overlaps(br_net):
        problems.add((*br.path, "network"), f"overlaps the WireGuard network {wg_net}")

    if isinstance(name, str):
        if why := name_problem(name, MESH_NAME_MAX):
            problems.add((*m.path, "name"), f"{why} (it names the keystore directory)")
    elif "name" not in m.data or m.data["name"] is None:
        name, name_from_file = file.stem, True
        if why := name_problem(name, MESH_NAME_MAX):
            problems.add(
                (*m.path, "name"),
                f"not set, and the file's name {quoted(name)} cannot stand in for it ({why}): "
                "set mesh.name",
            )
    if want_ula and br_net6 is None and isinstance(name, str):
        br_net6 = ula(name)
    if wg_net6 is not None and wg_net6 == br_net6:
        problems.add((*wg.path, "network6"), f"is the bridge's IPv6 network {br_net6} too")
    lab = _lab(top.sub("lab"), problems)
    if lab:
        for p, net in (((*wg.path, "network"), wg_net), ((*br.path, "network"), br_net)):
            if net and net.overlaps(lab.network):
                problems.add(p, f"overlaps the lab's network {lab.network}")
    ssh = _ssh_defaults(top.sub("ssh"), base, lab, problems)

    # Where a name is left to the defaults the mesh may keep the old one (engine/names.py).
    own_ifaces = ({wg_if, br_name} | {LEGACY_NAMES[key] for key in unnamed}) - {None}
    if boot_setting is None:
        # A namespace lab's hosts run no init of their own: `lab reboot` runs their systemd
        # units, so they boot as systemd hosts do.
        boot_setting = "systemd" if lab and lab.kind == "netns" else boot.AUTO
    hosts = read_hosts(
        top, problems, own_ifaces, [n for n in (wg_net, br_net) if n], tx_checksum, boot_setting
    )
    links = [] if hosts_only else read_links(top, problems, {h.name: h for h in hosts}, bool(psk))
    if names_domain:
        for h in hosts:
            if why := dns_label_problem(h.name):
                problems.add(("hosts", h.name), f"{why}: mesh.names makes it a DNS name")
    draft = Draft(wg_if, wg_port, tuple(hosts), tuple(links))
    if not hosts_only:
        modes.named(mode_name).check(settings[mode_name], draft, problems)
    top.done()
    problems.raise_if_any()

    state_file = _path(state, base) if state else base / f"{file.stem}.state.json"
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    default_keystore = data_home / "mesh-push" / inventory_id(file, name) / "keys"
    return Mesh(
        source=file,
        name=name,
        wg_interface=wg_if,
        wg_port=wg_port,
        wg_network=cast(IPv4Network, wg_net),
        bridge=br_name,
        bridge_network=cast(IPv4Network, br_net),
        vxlan_port=vxlan_port,
        mtu=cast(Mtu, mtu),
        keys=keys,
        ssh=ssh,
        hosts=tuple(hosts),
        links=tuple(lk for _p, lk in links),
        state_file=state_file,
        keystore=_path(keystore, base) if keystore else default_keystore,
        legacy_keystore=None if keystore else data_home / "mesh-push" / name / "keys",
        lab=lab,
        wg_reresolve=60 if reresolve is None else reresolve,
        psk=bool(psk),
        mode=mode_name,
        name_from_file=name_from_file,
        unnamed=unnamed,
        names_domain=names_domain,
        bridge_network6=br_net6,
        wg_network6=wg_net6,
        # Each mode's settings in the field named after it.
        **settings,
    )


def ula(mesh_name: str) -> IPv6Network:
    """`mesh.ipv6: ula`: the first /64 of a unique local /48 (RFC 4193), its 40-bit global
    ID the low 40 bits of a SHA-1 digest, as section 3.2.2 says, here of the mesh's name (so
    the same mesh always gets the same network)."""
    global_id = hashlib.sha1(mesh_name.encode()).digest()[-5:]
    return IPv6Network((int.from_bytes(b"\xfd" + global_id + bytes(10), "big"), 64))


def _names(sec: Section, present: bool, problems: Problems) -> str | None:
    """`mesh.names`: the domain of the hosts' names on the mesh (lower case), or None."""
    domain = sec.get("domain", str, None)
    sec.done()
    if domain is None:
        if present:
            problems.add(sec.path, "needs `domain:`, the DNS domain of the hosts' names")
        return None
    domain = domain.lower().removesuffix(".")
    labels = domain.split(".")
    why = next((w for w in map(dns_label_problem, labels) if w), None)
    if why or len(domain) > DOMAIN_MAX:
        problems.add(
            (*sec.path, "domain"),
            f"{quoted(domain)} is not a DNS domain: "
            + (why or f"longer than {DOMAIN_MAX} characters"),
        )
        return None
    return domain


def _hosts_only(data: dict[str, Any]) -> dict[str, Any]:
    hosts = data.get("hosts")
    if isinstance(hosts, dict):
        hosts = {
            n: {"endpoint": "static" if "address" in b else "dynamic", **b}
            if isinstance(b, dict) else b
            for n, b in hosts.items()
        }  # fmt: skip
    return {**{k: v for k, v in data.items() if k != "links"}, "hosts": hosts}


def inventory_id(file: Path, name: str) -> str:
    """What names this inventory's own state on the controller (its default keystore): the
    mesh name and a short hash of the inventory file's absolute path, so that
    prod/mesh.yaml and staging/mesh.yaml, both named `mesh`, never share keys."""
    where = os.path.realpath(file)
    return f"{name}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def _path(value: str, base: Path) -> Path:
    try:
        p = Path(value).expanduser()
    except RuntimeError:  # ~user of no known user: path_problem reported it
        p = Path(value)
    return p if p.is_absolute() else base / p


def _mtu(m: Section, problems: Problems) -> Mtu | None:
    raw = m.raw("mtu", "fragment")
    path = (*m.path, "mtu")
    if isinstance(raw, str):
        sec = Section({"policy": raw}, path, problems)
    elif not isinstance(raw, dict):
        problems.add(path, f"must be fragment, clamp or a mapping with policy:, not {kind(raw)}")
        return None
    else:
        sec = Section(raw, path, problems)
    policy: MtuPolicy | None = sec.choice("policy", ("fragment", "clamp"), "fragment")
    underlay = sec.int_in("underlay", 576, 65535, 1500)
    bridge = sec.int_in("bridge", 68, 65535, None)
    sec.done()
    if policy is None or underlay is None:
        return None
    if policy == "fragment":
        # Frames of any size cross: wg0 is big enough and the underlay fragments the UDP.
        bridge = bridge or 1500
        wg = bridge + VXLAN_OVERHEAD
        if bridge < MIN_MTU or wg > 65535:
            problems.add(path, f"fragment cannot give a bridge MTU of {bridge} (1280 to 65485)")
            return None
        return Mtu("fragment", underlay, wg, bridge)
    wg = underlay - WG_OVERHEAD
    most = wg - VXLAN_OVERHEAD
    bridge = bridge or most
    if bridge > most or bridge < MIN_MTU:
        problems.add(
            path,
            f"clamp cannot give a bridge MTU of {bridge} over a {underlay}-byte underlay: "
            f"it must be between {MIN_MTU} and {most}",
        )
        return None
    return Mtu("clamp", underlay, wg, bridge)


def _lab(sec: Section, problems: Problems) -> LabSettings | None:
    if not sec.ok:
        return None
    name = sec.get("name", str, "mplab")
    net = sec.network("network", "198.18.0.0/23")
    kind: LabKind = sec.choice("kind", LAB_KINDS, "netns") or "netns"
    # A VM guest is a cloud image: its login is the sudo user, never root.
    login: LabLogin = sec.choice("login", LAB_LOGINS, "sudo" if kind == "vm" else "root")
    lans = sec.get("lans", list, [], "a list of lists of NAT hosts that share a LAN")
    init = sec.get("init", dict, {}, "a mapping of host name to systemd, runit, openrc or sysvinit")
    arch = sec.get("arch", dict, {}, "a mapping of host name to amd64 or arm64")
    sec.done()
    inits: list[tuple[str, str]] = []
    for host, what in init.items():
        if not isinstance(host, str) or what not in boot.KINDS:
            problems.add(
                (*sec.path, "init", str(host)), "must be systemd, runit, openrc or sysvinit"
            )
        elif kind != "vm":
            problems.add((*sec.path, "init"), "only a `kind: vm` lab's guests boot an init")
        else:
            inits.append((host, what))
    arches: list[tuple[str, str]] = []
    for host, what in arch.items():
        if not isinstance(host, str) or what not in LAB_ARCHES:
            problems.add((*sec.path, "arch", str(host)), f"must be amd64 or arm64, not {what!r}")
        elif kind != "vm":
            problems.add(
                (*sec.path, "arch"), "only a `kind: vm` lab's guests have a CPU of their own"
            )
        elif what == "arm64" and dict(inits).get(host, "systemd") != "systemd":
            problems.add(
                (*sec.path, "arch", host),
                f"an arm64 guest boots systemd only, not {dict(inits)[host]} (lab.init.{host})",
            )
        elif what != "amd64":
            arches.append((host, what))
    shared: list[tuple[str, ...]] = []
    for i, group in enumerate(lans):
        if not isinstance(group, list) or not all(isinstance(h, str) for h in group):
            problems.add((*sec.path, "lans", i), "must be a list of host names, like [pi0, nas]")
        else:
            shared.append(tuple(group))
    if isinstance(name, str) and not LAB_NAME.match(name):
        problems.add((*sec.path, "name"), "must be 1 to 6 lowercase letters or digits")
        return None
    if kind == "vm" and login not in (None, "sudo"):
        # `lab exec` and `lab reboot` reach a guest through its sudo rule, without a password.
        problems.add((*sec.path, "login"), "a `kind: vm` lab logs in as a sudo user: `sudo` only")
        return None
    if net is None:
        return None
    return LabSettings(name, net, login or "root", kind, tuple(shared), tuple(inits), tuple(arches))


def _ssh_defaults(
    sec: Section, base: Path, lab: LabSettings | None, problems: Problems
) -> SshDefaults:
    user = user_field(sec, "user") or "root"
    port = sec.int_in("port", 1, 65535, 22)
    identity = path_field(sec, "identity")
    become: Become | None = sec.choice("become", BECOME, None)
    config = path_field(sec, "config")
    known = path_field(sec, "known_hosts")
    timeout = sec.get("connect_timeout", float, 10.0)
    sec.done()
    if isinstance(timeout, float) and timeout <= 0:
        problems.add((*sec.path, "connect_timeout"), "must be more than 0 seconds")
    elif isinstance(timeout, float) and timeout > CONNECT_TIMEOUT_MAX:
        problems.add(
            (*sec.path, "connect_timeout"), f"must be at most {CONNECT_TIMEOUT_MAX:g} seconds"
        )
    labdir = lab_dir(lab.name) if lab else None
    return SshDefaults(
        user=user,
        port=port,
        identity=str(_path(identity, base)) if identity else None,
        become=become,
        config=_path(config, base) if config else (labdir / "ssh_config" if labdir else None),
        known_hosts=_path(known, base) if known else (labdir / "known_hosts" if labdir else None),
        connect_timeout=timeout or 10.0,
    )
