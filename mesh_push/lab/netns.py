"""Namespaces, veths and the per-host keeper process whose namespaces `lab exec` enters."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mesh_push.lab.addresses import (
    IF_BRIDGE,
    IF_CONTROLLER,
    IF_CONTROLLER_PEER,
    IF_GUEST_BRIDGE,
    IF_LAN,
    IF_SWITCH,
    IF_SWITCH_UP,
    IF_TAP,
    IF_UNDERLAY,
    LabPlan,
    Node,
    ifname,
    wan_ns,
)
from mesh_push.lab.errors import EXIT_FAILED, LabError
from mesh_push.lab.system import ip_batch, ip_batch_argv, pid_alive, read_pid, run, run_all

# Directories every host gets a private copy of. They must exist as mount points on the
# machine; creating an empty directory is the only trace the lab leaves outside /run/mesh-push.
PRIVATE_DIRS = {
    "/etc/wireguard": "etc-wireguard",
    "/var/lib/mesh-push": "var-lib-mesh-push",
    "/etc/systemd/system": "systemd",
    # A home of its own: the machine's root dotfiles (here a .bashrc that runs `pyenv rehash`
    # under a lock at every SSH session) must not run on the lab's hosts.
    "/root": "root-home",
}
PRIVATE_0700 = {"etc-wireguard", "var-lib-mesh-push"}
TMPFS_DIR = "/run/wireguard"
# FRR, where the machine has it: each host runs its own instances (pathspaces, /etc/frr/NAME)
# with nothing shared. Config, logs and crash logs are private directories like the above;
# the sockets and pid files a fresh tmpfs on /run/frr (/var/run is a symlink to /run), empty
# after every (emulated) reboot as on a real host. All of them belong to FRR's user.
FRR_PRIVATE_DIRS = {
    "/etc/frr": "etc-frr",
    "/var/log/frr": "var-log-frr",
    "/var/tmp/frr": "var-tmp-frr",  # crash logs, /var/tmp/frr/DAEMON.PID/
}
FRR_TMPFS_DIR = "/run/frr"
FRR_DAEMON = "/usr/lib/frr/zebra"
FRR_IDS_FILE = "frr-ids"  # "UID GID" of the user frr, in the host's directory
SSHD_PRIVSEP_DIR = "/run/sshd"
HOME_DIR = "/home"  # a fresh tmpfs on hosts with a login user

# Runs as the keeper: it is already in the host's network namespace (ip netns exec) and in
# fresh mount and UTS namespaces (unshare), so `hostname` and the mounts stay inside.
# Arguments arrive as $1.. ($0 is a label), never pasted into the script.
KEEPER_SCRIPT = """set -e
hostname "$1"
mount -t tmpfs -o mode=0755,size=16m mesh-push-lab /run/wireguard
mount --bind "$2/etc-wireguard" /etc/wireguard
mount --bind "$2/var-lib-mesh-push" /var/lib/mesh-push
mount --bind "$2/systemd" /etc/systemd/system
mount --bind "$2/root-home" /root
mount --bind "$2/hosts" /etc/hosts
if [ -e "$2/frr-ids" ]; then
  read -r frr_uid frr_gid < "$2/frr-ids"
  mount -t tmpfs -o "mode=0755,uid=$frr_uid,gid=$frr_gid,size=16m" mesh-push-lab-frr /run/frr
  mount --bind "$2/etc-frr" /etc/frr
  mount --bind "$2/var-log-frr" /var/log/frr
  mount --bind "$2/var-tmp-frr" /var/tmp/frr
fi
if [ -e "$2/etc/passwd" ]; then
  # A cloud-image-like host: its own accounts and sudo rules, and the login user's home.
  for f in passwd group shadow sudoers; do mount --bind "$2/etc/$f" "/etc/$f"; done
  read -r user uid gid < "$2/login"
  mount -t tmpfs -o mode=0755,size=1m mesh-push-lab-home /home
  mkdir -p "/home/$user/.ssh"
  cp "$2/authorized_keys" "/home/$user/.ssh/authorized_keys"
  chown -R "$uid:$gid" "/home/$user"
  chmod 700 "/home/$user/.ssh"
fi
echo $$ > "$2/keeper.pid.tmp"
mv "$2/keeper.pid.tmp" "$2/keeper.pid"
exec sleep infinity
"""


def write_hosts_file(hdir: Path, alias: str, names: Mapping[str, str] | None = None) -> None:
    """The host's own /etc/hosts: its name (sudo and others look it up, and must not wait for
    a DNS server the lab cannot reach) and any `names` (name → address) the lab serves.
    Rewritten in place: the keeper's bind mount holds on to this very file."""
    lines = ["127.0.0.1 localhost", f"127.0.1.1 {alias}", "::1 localhost ip6-localhost"]
    lines += [f"{addr} {name}" for name, addr in sorted((names or {}).items())]
    path = hdir / "hosts"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.truncate(0)
        f.write("\n".join(lines) + "\n")


def frr_ids() -> tuple[int, int] | None:
    """The uid and gid of FRR's user when FRR is installed on the machine, else None (and
    the lab's hosts get no FRR directories at all)."""
    if not os.path.exists(FRR_DAEMON):
        return None
    try:
        return pwd.getpwnam("frr").pw_uid, grp.getgrnam("frr").gr_gid
    except KeyError:
        return None


def ensure_mount_points() -> None:
    frr = (*FRR_PRIVATE_DIRS, FRR_TMPFS_DIR) if frr_ids() else ()
    for path in (*PRIVATE_DIRS, TMPFS_DIR, SSHD_PRIVSEP_DIR, HOME_DIR, *frr):
        os.makedirs(path, mode=0o755, exist_ok=True)


def make_frr_dirs(hdir: Path, ids: tuple[int, int] | None) -> None:
    """A host's private FRR directories, owned frr:frr 0755 as FRR's package makes them
    (FRR's pathspace directories /etc/frr/NAME come later, from mesh-push), and the file
    that tells its keeper to mount them. Nothing without FRR on the machine."""
    (hdir / FRR_IDS_FILE).unlink(missing_ok=True)
    if ids is None:
        return
    uid, gid = ids
    for sub in FRR_PRIVATE_DIRS.values():
        path = hdir / sub
        path.mkdir(mode=0o755, exist_ok=True)
        os.chown(path, uid, gid, follow_symlinks=False)
        path.chmod(0o755)
    (hdir / FRR_IDS_FILE).write_text(f"{uid} {gid}\n")


def root_create_lines(plan: LabPlan) -> list[str]:
    """Namespaces and veths, created straight inside their namespaces, so that nothing but
    the controller veth ever appears in the root namespace."""
    lab, wan = plan.name, wan_ns(plan.name)
    lines = [f"netns add {ns}" for ns in plan.namespaces]
    eth = ifname(lab, IF_UNDERLAY)
    for n in plan.nodes:
        if n.port:
            lines.append(
                f"link add name {n.port} netns {wan} type veth peer name {eth} netns {n.ns}"
            )
        elif n.jump:
            router = plan.node(n.jump)
            switch = plan.switch_ns(router)
            if switch is None:
                lines.append(
                    f"link add name {ifname(lab, IF_LAN)} netns {router.ns} "
                    f"type veth peer name {eth} netns {n.ns}"
                )
            else:
                port = plan.lan_port(n)
                lines.append(
                    f"link add name {port} netns {switch} type veth peer name {eth} netns {n.ns}"
                )
    for router, switch in plan.switches():
        lines.append(
            f"link add name {ifname(lab, IF_LAN)} netns {router.ns} "
            f"type veth peer name {ifname(lab, IF_SWITCH_UP)} netns {switch}"
        )
    lines.append(
        f"link add name {ifname(lab, IF_CONTROLLER)} type veth "
        f"peer name {ifname(lab, IF_CONTROLLER_PEER)} netns {wan}"
    )
    return lines


def controller_lines(plan: LabPlan) -> list[str]:
    ctl = ifname(plan.name, IF_CONTROLLER)
    # A /32 brings no prefix route of its own: the one route below is all the root gains.
    return [
        f"address add {plan.controller}/32 dev {ctl}",
        f"link set {ctl} up",
        f"route add {plan.network} dev {ctl} src {plan.controller}",
    ]


def disable_ipv6(iface: str) -> None:
    # Otherwise the veth gets an fe80:: address, a second address in the root namespace.
    # No such file: no IPv6 on this machine, nothing to disable.
    with contextlib.suppress(FileNotFoundError):
        Path(f"/proc/sys/net/ipv6/conf/{iface}/disable_ipv6").write_text("1\n")


def wan_lines(plan: LabPlan) -> list[str]:
    br = ifname(plan.name, IF_BRIDGE)
    lines = [f"link add name {br} type bridge", f"link set {br} up"]
    for port in [*(n.port for n in plan.nodes if n.port), ifname(plan.name, IF_CONTROLLER_PEER)]:
        lines += [f"link set {port} master {br}", f"link set {port} up"]
    return lines


def node_lines(plan: LabPlan, node: Node) -> list[str]:
    eth = ifname(plan.name, IF_UNDERLAY)
    if plan.is_guest(node):
        return guest_wire_lines(plan)
    lines = [
        "link set lo up",
        f"address add {node.address}/{node.prefixlen} dev {eth}",
        f"link set {eth} up",
    ]
    if node.role == "router":
        assert node.lan is not None
        lan = ifname(plan.name, IF_LAN)
        lines += [
            f"address add {node.lan.network_address + 1}/{node.lan.prefixlen} dev {lan}",
            f"link set {lan} up",
        ]
    if node.gateway:
        lines.append(f"route add default via {node.gateway}")
    return lines


def switch_lines(plan: LabPlan, router: Node) -> list[str]:
    sw = ifname(plan.name, IF_SWITCH)
    ports = [ifname(plan.name, IF_SWITCH_UP), *map(plan.lan_port, plan.behind(router))]
    lines = ["link set lo up", f"link add name {sw} type bridge", f"link set {sw} up"]
    for port in ports:
        lines += [f"link set {port} master {sw}", f"link set {port} up"]
    return lines


def guest_wire_lines(plan: LabPlan) -> list[str]:
    """vm kind: the host's namespace is only its cable. Its underlay veth and the tap of its
    QEMU guest are ports of one bridge, so the guest itself holds the host's underlay address
    on the wan (or its NAT LAN), and the namespace holds no address at all."""
    eth, tap = ifname(plan.name, IF_UNDERLAY), ifname(plan.name, IF_TAP)
    br = ifname(plan.name, IF_GUEST_BRIDGE)
    return [
        "link set lo up",
        f"link add name {br} type bridge",
        f"tuntap add dev {tap} mode tap",
        f"link set {eth} master {br}",
        f"link set {tap} master {br}",
        f"link set {eth} up",
        f"link set {tap} up",
        f"link set {br} up",
    ]


def configure(plan: LabPlan, jobs_extra: Sequence[tuple[Sequence[str], str | None]]) -> None:
    """One `ip -batch` per namespace, all at once, plus any extra jobs (nftables)."""
    jobs: list[tuple[Sequence[str], str | None]] = [
        (ip_batch_argv(wan_ns(plan.name)), "\n".join(wan_lines(plan)) + "\n")
    ]
    for n in plan.nodes:
        jobs.append((ip_batch_argv(n.ns), "\n".join(node_lines(plan, n)) + "\n"))
    for router, switch in plan.switches():
        jobs.append((ip_batch_argv(switch), "\n".join(switch_lines(plan, router)) + "\n"))
    run_all([*jobs, *jobs_extra])


def in_netns(ns: str, argv: Sequence[str]) -> list[str]:
    # nsenter --net, unlike `ip netns exec`, leaves the mounts alone: enough for nft/sysctl.
    return ["nsenter", f"--net=/run/netns/{ns}", "--", *argv]


# --------------------------------------------------------------------------- keepers


def start_keepers(jobs: Sequence[tuple[Node, Path]], timeout: float = 20) -> dict[str, int]:
    """Start one keeper per node (all at once) and wait until each has made its mounts."""
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    frr = frr_ids()
    for node, hdir in jobs:
        for sub in PRIVATE_DIRS.values():
            (hdir / sub).mkdir(mode=0o755, parents=True, exist_ok=True)
            # As on a fresh host: wireguard-tools makes /etc/wireguard 0700, and mesh-push
            # makes /var/lib/mesh-push itself, under umask 077.
            (hdir / sub).chmod(0o700 if sub in PRIVATE_0700 else 0o755)
        make_frr_dirs(hdir, frr)
        if not (hdir / "hosts").exists():
            write_hosts_file(hdir, node.alias)
        (hdir / "keeper.pid").unlink(missing_ok=True)
        with open(hdir / "keeper.log", "wb") as log:
            procs[node.alias] = (
                subprocess.Popen(
                    [
                        "ip", "netns", "exec", node.ns,
                        "unshare", "--mount", "--uts", "--propagation", "private",
                        "sh", "-c", KEEPER_SCRIPT, "mesh-push-keeper", node.alias, str(hdir),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    # Its own session: a Ctrl-C meant for the CLI must not kill the lab.
                    start_new_session=True,
                ),
                hdir,
            )  # fmt: skip
    pids: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while len(pids) < len(procs):
        for alias, (proc, hdir) in procs.items():
            if alias in pids:
                continue
            pid = read_pid(hdir / "keeper.pid")
            if pid:
                pids[alias] = pid
                at_host_priority(pid)
            elif proc.poll() is not None:
                text = (hdir / "keeper.log").read_text(errors="replace").strip()
                raise LabError(f"the keeper of {alias} failed: {text or proc.returncode}", 1)
        if len(pids) < len(procs):
            if time.monotonic() > deadline:
                raise LabError("keepers did not start in time", EXIT_FAILED)
            time.sleep(0.005)
    return pids


def at_host_priority(pid: int = 0) -> None:
    """A lab host stands for a machine of its own: its processes (keeper, sshd and all they
    start) run at the default priority, whatever the caller's. The test suite runs at nice 10
    (scripts/test), and with no WireGuard in the kernel, wireguard-go (a host process) carries
    every lab packet: at the suite's priority a saturated CPU delays the data path itself.
    `pid` 0: the calling process (a preexec_fn)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.setpriority(os.PRIO_PROCESS, pid, 0)


def enter(pid: int, argv: Sequence[str]) -> list[str]:
    """argv run inside a node: its network, mount and UTS namespaces, via its keeper."""
    return ["nsenter", f"--target={pid}", "--net", "--mount", "--uts", "--", *argv]


# --------------------------------------------------------------------------- teardown


def pids_in(namespaces: Iterable[str]) -> list[int]:
    """What `ip netns pids` lists for each namespace (one `ip -batch` for them all)."""
    names = list(namespaces)
    if not names:
        return []
    done = run(
        ip_batch_argv(force=True),
        input="".join(f"netns pids {ns}\n" for ns in names),
        check=False,
    )
    return sorted({int(tok) for tok in done.stdout.split() if tok.isdigit()})


def kill_namespaces(namespaces: Iterable[str], timeout: float = 10) -> None:
    """Kill every process `ip netns pids` lists, wait until they are gone, and repeat until
    the namespaces are empty (a dying sshd may have forked a session meanwhile)."""
    names = list(namespaces)
    deadline = time.monotonic() + timeout
    while pids := pids_in(names):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while any(pid_alive(p) for p in pids):
            if time.monotonic() > deadline:
                left = [p for p in pids if pid_alive(p)]
                raise LabError(f"processes {left} would not die", EXIT_FAILED)
            time.sleep(0.005)
        if time.monotonic() > deadline:
            raise LabError(f"namespaces {names} keep getting new processes", EXIT_FAILED)


def delete_namespaces(namespaces: Iterable[str]) -> None:
    ip_batch([f"netns delete {ns}" for ns in namespaces], force=True)


def links_with_prefix(prefix: str) -> list[str]:
    out = run(["ip", "-j", "link", "show"]).stdout
    return [str(link["ifname"]) for link in json.loads(out or "[]")
            if str(link.get("ifname", "")).startswith(prefix)]  # fmt: skip


def interfaces(ns: str) -> list[str]:
    out = run(["ip", "-n", ns, "-j", "link", "show"]).stdout
    return [str(link["ifname"]) for link in json.loads(out or "[]")]
