"""Quoting is belt and braces: whatever a value holds, the programs mesh-push runs on hosts
pass it on as one intact argument and run nothing of it.

The model objects are built directly (dataclasses.replace on the seed plan), past every check
of the inventory, with each of more than 60 hostile values (HOSTILE: command substitutions,
backticks, `;`, `&&`, newlines, both kinds of quotes, a leading dash, globs, `~`, spaces,
unicode, printf formats, a very long value, empty-ish ones, the scripts' own here-document
delimiters, paths) in every field the templates interpolate: mesh name, interfaces, bridge,
ports, MTUs, timers, host names, addresses, MACs, keys, endpoints, DNS names, VNIs, costs,
the controller's private key, the apply's digest, the rollback token, the ping and measure
targets. Fields that cannot stop a script share a case (FIELDS); every program that
interpolates the field is rendered (host script, down script, re-resolver, facts, gather,
apply, the rollback timer, confirm, rolled-back, rotate-key, ping, measure) and run under
`sh`, in a sandbox:

* `unshare --mount --pid --net` then `chroot` into a tmpfs that holds only a read-only /usr
  (and /etc/alternatives), this test's directory at /w, and empty /etc/wireguard,
  /var/lib/mesh-push, /etc/systemd/system, /run/wireguard, /tmp and /sys/class/net: nothing
  the scripts write can reach the machine. A few such sandboxes run side by side, each its
  cases one after the other, those directories emptied and filled with what the case says
  was there before (a fake /sys/class/net/NAME/ifalias, a boot unit, an older install);
  whatever a case left running is killed before the next (its pids are the sandbox's);
* /usr/local/sbin, first in the scripts' PATH, holds stubs for `ip`, `wg`, `bridge`,
  `brctl`, `wireguard-go`, `sysctl`, `systemctl`, `setsid`, `ping`, `getent`, `modprobe`,
  `flock`, `seq` and `sleep` (`sha256sum` is the real one): each appends its argv to the
  case's log and exits 0 (or prints what the script needs: a key, a lookup). The log is
  NUL-separated (argv cannot hold a NUL, so it is exact), one record per call: argument
  count, name, args;
* each run has a time limit (20 s, KILL).

Then for each case: the expected calls appear in the log with the hostile value as one
whole argument (the calls are derived from the same model objects, so a value split in two
or cut short fails), the files it should write hold the value, the exit code is the one
expected (a refusal where an interface name can only be `.`/`..`), and no file named CANARY
exists anywhere: in the case directory, in /w, or in the sandbox's file systems.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mesh_push import modes
from mesh_push.core import model
from mesh_push.core.model import Mesh
from mesh_push.engine import measure
from mesh_push.host import programs as hostcmd
from mesh_push.host import templates as render
from mesh_push.host.boot import SystemdBoot
from mesh_push.modes import scripts
from mesh_push.modes.base import Plan
from mesh_push.modes.stp.plan import StpHost
from tests.root.seed import seed_plan

CANARY = "CANARY"  # relative: each case runs in its own directory (and no `/` in the value)
LONG = "$(touch CANARY)`touch CANARY`;touch CANARY&&" * 4 + "x" * 40

HOSTILE: list[str] = [
    "$(touch CANARY)",
    "`touch CANARY`",
    ";touch CANARY",
    "; touch CANARY;",
    "&& touch CANARY",
    "|| touch CANARY",
    "| touch CANARY",
    "&touch CANARY&",
    "\ntouch CANARY\n",
    "\r\ntouch CANARY",
    "x'; touch CANARY; '",
    'x"; touch CANARY; "',
    "'$(touch CANARY)'",
    '"$(touch CANARY)"',
    "'\"'\"'`touch CANARY`",
    "$(touch${IFS}CANARY)",
    ">CANARY",
    "<CANARY",
    "\nMESH_PUSH_PORTS\ntouch CANARY\nMESH_PUSH_PORTS",
    "\nMESH_PUSH_VXLANS\ntouch CANARY\n",
    "\nMESH_PUSH_KEY\ntouch CANARY\n",
    "\nMESH_PUSH_RERESOLVE\ntouch CANARY\n",
    "EOF\ntouch CANARY\nEOF",
    "-x",
    "--help",
    "-f",
    "-",
    "*",
    "?",
    "[a-z]*",
    "{a,b}",
    "~",
    "~root",
    "a b",
    "  two  spaces  ",
    "\t",
    " ",
    "''",
    '""',
    "'",
    '"',
    "\\",
    "\\n\\t\\x41",
    "$HOME",
    "${PATH}",
    "$((1+1))",
    "!!",
    "#not a comment",
    "%s%n%x%%",
    "ünïcødé-ñame",
    "名前",
    "a\u2028b",
    "\x1b[31mred",
    "=",
    "a=b",
    "(",
    ")",
    LONG,
    "",
    ".",
    "..",
    ".hidden",
    "a/b",
    "../../../w/CANARY",
]
assert len(HOSTILE) >= 40

STUB_NAMES = ["ip", "wg", "bridge", "brctl", "wireguard-go", "sysctl", "systemctl", "setsid",
              "ping", "getent", "modprobe", "flock", "seq", "sleep", "vtysh"]  # fmt: skip
# evpn mode's FRR, by the absolute paths its scripts call: stubs like the others, over the
# real /usr/lib/frr (the host script refuses without FRR installed).
FRR_STUBS = ["frrinit.sh", "zebra"]
FAKE_PRIVATE = "c3R1Yi1wcml2YXRlLWtleS1mb3ItdGhlLXNhbmRib3g9PQ=="
FAKE_PUBLIC = "c3R1Yi1wdWJsaWMta2V5LWZvci10aGUtc2FuZGJveD09PQ=="
FAKE_PSK = "c3R1Yi1wcmUtc2hhcmVkLWtleS1mb3ItdGhlLXNhbmRiPQ=="
RESOLVED = "198.51.100.9"  # what the getent stub says every name is
NOW = "203.0.113.1:1"  # where the wg stub says a named peer is now
READS = {("wg", "show"), ("ip", "-d"), ("ip", "-o"), ("ip", "-j")}  # calls that change nothing
# What a script in its read-only mode (MESH_PUSH_CHECK=1) may also call: a key's public half,
# whether the kernel has WireGuard, what a name resolves to.
CHECK_READS = {("wg", "pubkey"), ("modprobe", "-nq"), ("getent", "ahosts")}

STUB = f"""#!/bin/sh
printf '%s\\0' "$#" "${{0##*/}}" "$@" >> "$STUB_CASE/log"
case ${{0##*/}} in
  wg)
    case $1 in
      genkey) echo {FAKE_PRIVATE} ;;
      genpsk) echo {FAKE_PSK} ;;
      pubkey) cat > /dev/null; echo {FAKE_PUBLIC} ;;
      show)
        case $3 in
          endpoints) cat "$STUB_CASE/endpoints" 2>/dev/null ;;
          public-key) [ -z "${{STUB_SHOW_PUBLIC:-}}" ] || echo {FAKE_PUBLIC} ;;
        esac ;;
    esac ;;
  getent) printf '%s\\tSTREAM %s\\n%s\\tDGRAM\\n' {RESOLVED} "$3" {RESOLVED} ;;
  # The apply runs (here, not detached); the rollback timer after the program (case.sh); the
  # re-resolver loop not at all.
  setsid)
    if [ "$1" = sh ] && [ "$2" = -c ]; then "$@"
    else case $2 in */armed.sh) printf '%s\0' "$2" >> "$STUB_CASE/deferred" ;; esac
    fi ;;
  ping) exit 1 ;;
  # A re-resolver loop run by this test ends at its first nap.
  sleep) if [ -n "${{STUB_SLEEP_ENDS_LOOP:-}}" ]; then kill -TERM "$PPID"; fi ;;
esac
exit 0
"""

SANDBOX = """
set -e
W=$1
N=$2
R=$W/.root-$N
mkdir -p "$R"
mount -t tmpfs -o mode=0755 mesh-push-sandbox "$R"
mkdir -p "$R/usr" "$R/w" "$R/proc" "$R/dev" "$R/tmp" "$R/sys/class/net" "$R/etc/wireguard" \
  "$R/etc/systemd/system" "$R/var/lib/mesh-push" "$R/run/wireguard" "$R/etc/frr" "$R/var/run"
mount --rbind /usr "$R/usr"
mount -o remount,bind,ro "$R/usr"
# Debian's awk (and others) are links through /etc/alternatives.
if [ -d /etc/alternatives ]; then
  mkdir -p "$R/etc/alternatives"
  mount --bind /etc/alternatives "$R/etc/alternatives"
  mount -o remount,bind,ro "$R/etc/alternatives"
fi
mount --bind "$W/stub" "$R/usr/local/sbin"
if [ -d /usr/lib/frr ]; then mount --bind "$W/frr" "$R/usr/lib/frr"; fi
mount --bind "$W" "$R/w"
for l in bin sbin lib lib64 lib32 libx32; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$R/$l"; fi
done
mount -t proc proc "$R/proc"
# What evpn's host script writes there (a link's forwarding), in a file system of its own.
mount -t tmpfs -o mode=0755 mesh-push-sandbox-conf "$R/proc/sys/net/ipv4/conf"
mknod -m 666 "$R/dev/null" c 1 3
mknod -m 666 "$R/dev/zero" c 1 5
mknod -m 444 "$R/dev/urandom" c 1 9
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
printf 'root:x:0:\nfrr:x:101:\n' > "$R/etc/group"
exec chroot "$R" /bin/sh /w/worker.sh "$N"
"""

# One worker per sandbox, its cases one after the other: the directories a case may write
# are emptied before each.
WORKER = """
N=$1
DIRS="/var/lib/mesh-push /etc/wireguard /etc/systemd/system /run/wireguard /tmp /sys/class/net
  /etc/frr /var/run"
CONF=/proc/sys/net/ipv4/conf
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
while read -r c; do
  rm -rf $DIRS "$CONF"/* "$CONF"/.[!.]* /etc/hosts /etc/.hosts.mesh-push.* 2>/dev/null
  mkdir -p $DIRS
  # (cp cannot give /proc/sys its own modes, and says so: its files are checked after.)
  if [ -d "$c/root" ]; then cp -a "$c/root/." / 2>/dev/null; fi
  (
    cd "$c" || exit
    STUB_CASE=$c
    export STUB_CASE
    while read -r kv; do export "$kv"; done < env
    read -r args < args || true
    # The shell the case names (RUN_SHELL: dash's sh, BusyBox's, bash --posix), split in words.
    timeout -s KILL 20 ${RUN_SHELL:-sh} ./script $args < stdin > out 2> err
    echo $? > rc
    if [ -f deferred ]; then timeout -s KILL 20 xargs -0 -n 1 sh < deferred > deferred.out 2>&1; fi
  )
  # What the case left running (the re-resolver's `setsid &`, a stub here) finishes first, or
  # is killed: this worker is pid 1 of the sandbox's pid namespace, so every other pid is the
  # case's. (No fork in the check itself: the glob runs in this shell.)
  n=0
  while set -- /proc/[0-9]*; [ $# -gt 1 ] && [ $n -lt 100 ]; do
    /usr/bin/sleep 0.05; n=$((n + 1))
  done
  for p in /proc/[0-9]*; do [ "${p#/proc/}" = 1 ] || kill -9 "${p#/proc/}" 2>/dev/null; done
  tar -C / -cf "$c/state.tar" var/lib/mesh-push etc/wireguard etc/systemd/system run/wireguard \\
    tmp sys/class/net etc/frr var/run proc/sys/net/ipv4/conf 2>/dev/null
done < "/w/slice-$N"
find / /proc/sys/net/ipv4/conf -xdev -name CANARY > "/w/found-in-sandbox-$N" 2>/dev/null
true
"""


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    field: str
    value: str
    program: str
    script: str
    args: str = ""
    stdin: str = ""
    env: dict[str, str] = field(default_factory=dict)
    root: dict[str, str] = field(default_factory=dict)  # path → content ("->X": a symlink)
    endpoints: str = ""  # what `wg show IF endpoints` prints
    rc: int = 0
    calls: list[list[str]] = field(default_factory=list)  # each must appear, exactly
    absent: list[list[str]] = field(default_factory=list)  # none of these may appear
    only_reads: bool = False  # a refusal: nothing but reads
    stdout: str | None = None  # the whole output
    stdout_has: list[str] = field(default_factory=list)
    stderr_has: list[str] = field(default_factory=list)
    files: dict[str, str | None] = field(default_factory=dict)  # content; None: absent
    exists: list[str] = field(default_factory=list)

    def label(self) -> str:
        return f"{self.field}={self.value!r} in {self.program}"


@functools.cache
def base_plan() -> Plan:
    """The seed plan with rho's peer bob known by a DNS name (so the re-resolver runs once
    inside the host script) and re-resolution loops off (no loop to start)."""
    p = seed_plan()
    mesh = dataclasses.replace(p.mesh, wg_reresolve=0)
    peers = tuple(
        dataclasses.replace(pe, endpoint_name="bob.example.net", endpoint="bob.example.net:56560")
        if pe.name == "bob"
        else pe
        for pe in rho(p).peers
    )
    # Two peers and wires are enough (one known by name, one by address), and faster.
    keep = ("bob", "epsilon")
    q = with_iface(
        dataclasses.replace(p, mesh=mesh), peers=tuple(pe for pe in peers if pe.name in keep)
    )
    return with_rho(q, wires=tuple(w for w in rho(p).wires if w.name in keep))


def with_mesh(p: Plan, **change: Any) -> Plan:
    """The mesh changed, and rho's WireGuard interface with it: its name and port (and the
    port its peers listen on) are the mesh's in stp mode, and the plan holds them too."""
    q = dataclasses.replace(p, mesh=dataclasses.replace(p.mesh, **change))
    iface: dict[str, Any] = {}
    if "wg_interface" in change:
        iface["name"] = change["wg_interface"]
    if "wg_port" in change:
        iface["port"] = change["wg_port"]
        peers = tuple(dataclasses.replace(pe, port=change["wg_port"]) for pe in rho(q).peers)
        iface["peers"] = peers
    return with_iface(q, **iface) if iface else q


def rho(p: Plan) -> StpHost:
    """The host every script here is rendered for (found by number: its name may be hostile)."""
    hp = next(hp for hp in p.hosts if hp.host.number == 2)
    assert isinstance(hp, StpHost)
    return hp


def with_rho(p: Plan, **change: Any) -> Plan:
    hosts = tuple(
        dataclasses.replace(hp, **change) if hp.host.number == 2 else hp for hp in p.hosts
    )
    return dataclasses.replace(p, hosts=hosts)


def with_iface(p: Plan, **change: Any) -> Plan:
    """rho's one WireGuard interface (stp mode) changed: its name, port, address or peers."""
    (iface,) = rho(p).wg
    return with_rho(p, wg=(dataclasses.replace(iface, **change),))


def with_peer(p: Plan, peer: str, **change: Any) -> Plan:
    peers = tuple(
        dataclasses.replace(pe, **change) if pe.name == peer else pe for pe in rho(p).peers
    )
    return with_iface(p, peers=peers)


def with_wire(p: Plan, wire: str, **change: Any) -> Plan:
    wires = tuple(dataclasses.replace(w, **change) if w.name == wire else w for w in rho(p).wires)
    return with_rho(p, wires=wires)


def with_stp(p: Plan, **change: Any) -> Plan:
    return with_mesh(p, stp=dataclasses.replace(p.mesh.stp, **change))


def with_mtu(p: Plan, **change: Any) -> Plan:
    return with_mesh(p, mtu=dataclasses.replace(p.mesh.mtu, **change))


def dir_name_ok(name: str) -> bool:
    """Can be one directory entry (a fake /sys/class/net/NAME, a file name)."""
    return name not in ("", ".", "..") and "/" not in name and len(name.encode()) <= 255


@functools.cache
def env_templates() -> Any:
    return render.load_templates()


def host_script(p: Plan, wireguard: str = "auto") -> str:
    """rho's host script, as `up` renders it."""
    return scripts.host_script(modes.of(p.mesh), p, rho(p), env_templates(), wireguard=wireguard)


def down_script(p: Plan, purge: bool) -> str:
    return scripts.down_script(p.mesh, env_templates(), purge)


def facts_program(m: Mesh) -> str:
    """The first command of `up` with keys: host (the host makes its key)."""
    return hostcmd.facts(m, modes.of(m).gather_template, generate_key=True)


def s(v: object) -> str:
    return str(v)


# --- the host script


def host_calls(p: Plan, controller_key: bool, wireguard: str) -> list[list[str]]:
    """Every call rho's host script makes in the sandbox, where nothing exists yet and the
    stubs show nothing: what the template does, step by step."""
    m, hp = p.mesh, rho(p)
    wg, br = s(m.wg_interface), s(m.bridge)
    calls: list[list[str]] = []
    if not controller_key:
        calls.append(["wg", "genkey"])
    if wireguard == "wireguard-go":
        calls.append(["wireguard-go", wg])
    else:
        calls.append(["ip", "link", "add", "dev", wg, "type", "wireguard"])
    calls.append(["ip", "link", "set", "dev", wg, "alias", m.mark])
    calls.append(["wg", "set", wg, "private-key", m.key_file])
    if s(m.wg_port):
        calls.append(["wg", "set", wg, "listen-port", s(m.wg_port)])
    if s(m.mtu.wireguard):
        calls.append(["ip", "link", "set", "dev", wg, "mtu", s(m.mtu.wireguard)])
    calls.append(["ip", "addr", "add", s(hp.wg_address), "dev", wg])
    calls.append(["ip", "link", "set", "dev", wg, "up"])
    for pe in hp.peers:
        by_address = bool(pe.endpoint) and not pe.endpoint_name
        keepalive = s(pe.keepalive or "off")
        allowed = [s(pe.allowed_ips_text), keepalive, *([s(pe.endpoint)] if by_address else [])]
        if any(allowed):  # the stub shows nothing: only "" matches
            ips = s(",".join(str(n) for n in pe.allowed_ips))
            argv = ["wg", "set", wg, "peer", s(pe.public_key), "allowed-ips", ips]
            if by_address:
                argv += ["endpoint", s(pe.endpoint)]
            calls.append([*argv, "persistent-keepalive", keepalive])
    calls += reresolve_calls(p)
    calls.append(["ip", "link", "add", "name", br, "type", "bridge", "stp_state", "1"])
    calls.append(["ip", "link", "set", "dev", br, "alias", m.mark])
    opts = [
        ("stp_state", "1"),
        ("hello_time", s(m.stp.hello * 100)),
        ("forward_delay", s(m.stp.forward_delay * 100)),
        ("max_age", s(m.stp.max_age * 100)),
        ("ageing_time", s(m.stp.ageing * 100)),
        ("priority", s(hp.bridge_priority)),
    ]
    calls += [["ip", "link", "set", "dev", br, "type", "bridge", o, v] for o, v in opts if v]
    if s(hp.bridge_mac):
        calls.append(["ip", "link", "set", "dev", br, "address", s(hp.bridge_mac)])
    if s(m.mtu.bridge):
        calls.append(["ip", "link", "set", "dev", br, "mtu", s(m.mtu.bridge)])
    calls.append(["ip", "addr", "add", s(hp.bridge_address), "dev", br])
    for w in hp.wires:
        name = s(w.name)
        vxlan = ["id", s(w.vni), "remote", s(w.remote), "local", s(w.local)]
        calls.append(["ip", "link", "add", "name", name, "type", "vxlan", *vxlan,
                      "dstport", s(m.vxlan_port)])  # fmt: skip
        calls.append(["ip", "link", "set", "dev", name, "alias", m.mark])
        if s(m.mtu.bridge):
            calls.append(["ip", "link", "set", "dev", name, "mtu", s(m.mtu.bridge)])
        calls.append(["ip", "link", "set", "dev", name, "master", br])
        if s(w.cost):
            calls.append(["bridge", "link", "set", "dev", name, "cost", s(w.cost)])
        calls.append(["ip", "link", "set", "dev", name, "up"])
    calls.append(["ip", "link", "set", "dev", br, "up"])
    return calls


def named_peer_endpoints(p: Plan) -> str:
    return "".join(f"{pe.public_key}\t{NOW}\n" for _, pe in rho(p).named_peers)


def reresolve_calls(p: Plan) -> list[list[str]]:
    """`reresolve.sh once`: a named peer whose key the stub's `wg show` lists (awk's fields:
    a key with a blank in it is never found) is looked up, and moved to the stub's answer."""
    calls = []
    for iface, pe in rho(p).named_peers:
        key = s(pe.public_key)
        if key and not any(c in key for c in " \t\n"):
            calls.append(["getent", "ahosts", "--", s(pe.endpoint_name)])
            calls.append(["wg", "set", s(iface.name), "peer", key, "endpoint",
                          f"{RESOLVED}:{s(pe.port)}"])  # fmt: skip
    return calls


def refused(p: Plan) -> bool:
    """An interface name that always exists in the sandbox (/sys/class/net itself)."""
    names = [s(p.mesh.wg_interface), s(p.mesh.bridge), *(s(w.name) for w in rho(p).wires)]
    return any(n in ("", ".", "..") for n in names)


def host_case(
    name: str, value: str, p: Plan, public_key: str | None = None, wireguard: str = "auto"
) -> Case:
    """With `public_key`, keys: controller and that key rho's (the script names it in a
    comment, and expects the private key in place: the apply installs it)."""
    if public_key:
        p = with_mesh(p, keys="controller")
        p = with_rho(p, public_key=public_key)
    script = host_script(p, wireguard)
    c = Case(name, value, f"host.sh ({wireguard}{', controller key' if public_key else ''})",
             script, endpoints=named_peer_endpoints(p))  # fmt: skip
    if refused(p):
        c.rc, c.only_reads = 1, True
        c.stderr_has = ["refusing to touch it", 'step "ownership" failed']
        return c
    c.calls = host_calls(p, bool(public_key), wireguard)
    if public_key:
        c.root[p.mesh.key_file.lstrip("/")] = FAKE_PRIVATE + "\n"
        c.files[p.mesh.key_file.lstrip("/")] = FAKE_PRIVATE + "\n"
    if p.mesh.wg_reresolve and rho(p).named_peers:
        # The stub does not start the loop, so the script says so and stops.
        c.rc = 1
        c.stderr_has = ["the re-resolver did not start"]
        c.calls = [["setsid", "/bin/sh", f"{p.mesh.state_dir}/reresolve.sh", "loop"]]
    else:
        c.stdout_has = [f"changed: {s(p.mesh.wg_interface)} peer {s(pe.name)}"
                        for pe in rho(p).peers]  # fmt: skip
    return c


# --- the re-resolver on its own


def reresolve_case(name: str, value: str, p: Plan, mode: str) -> Case:
    script = scripts.reresolver(p, rho(p), env_templates())
    c = Case(name, value, f"reresolve.sh {mode}", script, args=mode)
    c.endpoints = named_peer_endpoints(p)
    if mode == "once":
        c.calls = reresolve_calls(p)
    else:
        c.env["STUB_SLEEP_ENDS_LOOP"] = "1"
        c.calls = [["sleep", s(p.mesh.wg_reresolve)]]
    return c


# --- the down script


def down_case(name: str, value: str, p: Plan) -> Case:
    """What is on the host before: this mesh's interfaces (its mark, or the legacy one under
    a name it plans), another mesh's and a legacy one under another name; its boot unit; an
    older install of this mesh."""
    m = p.mesh
    script = down_script(p, purge=True)
    c = Case(name, value, "down.sh", script)
    wg, br, host = s(m.wg_interface), s(m.bridge), s(m.hosts[2].name)
    root = c.root
    ours = []
    for iface, alias in ((wg, m.mark), (br, model.LEGACY_MARK), (host, model.LEGACY_MARK)):
        if dir_name_ok(iface):
            root[f"sys/class/net/{iface}/ifalias"] = alias + "\n"
            # sysfs ends every alias with a newline, and the shell drops those when it reads
            # it: a mark that ends in one is never seen again (the mesh finds nothing of its
            # own, and so takes nothing).
            if not alias.endswith("\n"):
                ours.append(iface)
    root["sys/class/net/eth9/ifalias"] = "mesh-push:other\n"
    root["sys/class/net/eth8/ifalias"] = "mesh-push\n"
    root[m.boot_unit.lstrip("/")] = "[Service]\n"
    root[m.boot_wants.lstrip("/")] = "->" + m.boot_unit
    root[f"{m.state_dir.lstrip('/')}/apply.sh"] = "exit 0\n"
    root["var/lib/mesh-push/apply.sh"] = (
        f"#!/bin/sh\n# mesh-push 0.0.9: host rho of mesh {m.name}. Generated: do not edit.\n"
    )
    root["etc/systemd/system/mesh-push.service"] = "[Service]\n"
    root[m.key_file.lstrip("/")] = FAKE_PRIVATE + "\n"
    c.calls = [["ip", "link", "del", "dev", i] for i in ours]
    c.absent = [["ip", "link", "del", "dev", "eth9"], ["ip", "link", "del", "dev", "eth8"]]
    legacy_ours = "\n" not in s(m.name)
    for path in (m.boot_unit, m.boot_wants, m.key_file, f"{m.state_dir}/apply.sh"):
        c.files[path.lstrip("/")] = None
    for path in ("var/lib/mesh-push/apply.sh", "etc/systemd/system/mesh-push.service"):
        if legacy_ours:
            c.files[path] = None
        else:
            c.exists.append(path)
    return c


# --- the short programs (hostcmd)


def facts_case(name: str, value: str, p: Plan, legacy: bool) -> Case:
    m = p.mesh
    c = Case(name, value, f"facts.sh{' (older key)' if legacy else ''}", facts_program(m))
    wg, br = s(m.wg_interface), s(m.bridge)
    # The state of every WireGuard interface (the mesh's among them), then the mode's part.
    c.calls = [["wg", "show", "all", what] for what in ("public-key", "listen-port",
               "latest-handshakes", "endpoints", "transfer", "allowed-ips",
               "persistent-keepalive", "preshared-keys")]  # fmt: skip
    c.calls += [["brctl", "showstp", br], ["ip", "-j", "-d", "addr", "show"]]
    c.calls += [["modprobe", "-nq", "wireguard"], ["wg", "pubkey"]]
    old = m.legacy_key_file
    if legacy and dir_name_ok(wg) and dir_name_ok(f"{wg}.key"):
        # The older install's key, under an interface with the legacy mark that uses it.
        c.env["STUB_SHOW_PUBLIC"] = "1"
        c.calls.append(["wg", "show", wg, "public-key"])  # whether that interface uses it
        c.root[f"sys/class/net/{wg}/ifalias"] = "mesh-push\n"
        c.root[old.lstrip("/")] = "older-key\n"
        c.files[m.key_file.lstrip("/")] = "older-key\n"
        c.files[old.lstrip("/")] = None
        c.absent = [["wg", "genkey"]]
    else:
        c.calls.append(["wg", "genkey"])
        c.files[m.key_file.lstrip("/")] = FAKE_PRIVATE + "\n"
    c.stdout_has = [f"public_key={FAKE_PUBLIC}"]
    return c


def gather_case(name: str, value: str, p: Plan) -> Case:
    m = p.mesh
    c = Case(name, value, "gather.sh", hostcmd.gather(m, modes.of(m).gather_template))
    c.calls = [["wg", "show", "all", "public-key"], ["brctl", "showstp", s(m.bridge)]]
    c.root[m.boot_unit.lstrip("/")] = "[Service]\n"
    c.root[m.boot_wants.lstrip("/")] = "->" + m.boot_unit
    c.stdout_has = ["hook=systemd\nscript="]
    return c


APPLIED = "#!/bin/sh\necho applied-ok\n"
APPLIED_SHA256 = hashlib.sha256(APPLIED.encode()).hexdigest()


def apply_case(
    name: str,
    value: str,
    p: Plan,
    digest: str | None,
    token: str | None,
    key: str | None = None,
) -> Case:
    """The apply of APPLIED, whose digest is `digest` (None: its real one; another: the host
    must refuse it, nothing run or recorded), armed with a timer when `token` is given, with
    the private key `key` (keys: controller) first on its standard input."""
    m = p.mesh
    arm = ""
    if token is not None:
        arm = hostcmd.arm(m, token, 1, down_script(p, purge=False))
    sent = APPLIED_SHA256 if digest is None else digest
    text = hostcmd.apply(m, sent, arm, install_key=key is not None)
    stdin = APPLIED if key is None else key + "\n" + APPLIED
    label = "apply.sh" + (" (armed)" if arm else "") + (" (key)" if key is not None else "")
    c = Case(name, value, label, text, stdin=stdin)
    if key is not None:
        c.files[m.key_file.lstrip("/")] = key + "\n"
    if digest is not None and digest != APPLIED_SHA256:
        c.rc = hostcmd.EXIT_BAD_DIGEST
        c.stderr_has = ["did not arrive whole", f"expected sha256 {digest}): refused"]
        for path in ("applied.sha256", "apply.sh", "pending.sh", "failed.sh"):
            c.files[f"{m.state_dir}/{path}".lstrip("/")] = None
        c.files[m.boot_unit.lstrip("/")] = None
        return c
    digest = APPLIED_SHA256
    c.stdout_has = ["applied-ok"]
    c.files[f"{m.state_dir}/applied.sha256".lstrip("/")] = digest + "\n"
    c.files[m.boot_unit.lstrip("/")] = hostcmd.boot_hook(m, SystemdBoot)["files"][0]["text"]
    c.files[m.boot_wants.lstrip("/")] = "->" + m.boot_unit
    if token is not None and token.endswith("\n"):
        # The shell drops the newlines a file ends with: the timer never finds its token in
        # armed.token, so it takes itself for superseded and does nothing. (Tokens are the
        # controller's own hex.)
        pass
    elif token is not None:
        # The timer fired (run after the program, as if no confirmation came): back to the
        # state before, here none (the down script), and said so.
        c.files[f"{m.state_dir}/rolled-back".lstrip("/")] = token + "\n"
        c.files[f"{m.state_dir}/applied.sha256".lstrip("/")] = None
        c.files[m.boot_unit.lstrip("/")] = None
        c.files[m.boot_wants.lstrip("/")] = None
    return c


# --- pre-shared keys


def psk_host_case(name: str, value: str, p: Plan, peer: str, fp: str | None) -> Case:
    """rho's script, its peer `peer` with a pre-shared key in place (file `peer` names) whose
    fingerprint the plan says is `fp`: the stub's `wg` has none, so the script sets it from
    the file, by its path, and keeps the file."""
    file = p.mesh.psk_file(peer)
    p = with_peer(p, EPS, name=peer, psk_file=file, psk_fp=fp)
    c = host_case(name, value, p)
    c.program += " (psk)"
    if c.rc:
        return c
    c.root[file.lstrip("/")] = FAKE_PSK + "\n"
    c.files[file.lstrip("/")] = FAKE_PSK + "\n"
    pub = s(rho(p).peers[[pe.name for pe in rho(p).peers].index(peer)].public_key)
    c.calls.append(["wg", "set", s(p.mesh.wg_interface), "peer", pub, "preshared-key", file])
    c.stdout_has.append(f"changed: {s(p.mesh.wg_interface)} peer {peer} preshared-key")
    return c


def psk_peer_case(v: str) -> list[Case]:
    """A peer's name names its pre-shared key's file: one path component, or refused."""
    p = base_plan()
    if not dir_name_ok(v):
        with pytest.raises(ValueError, match="cannot name a file on a host"):
            p.mesh.psk_file(v)
        return []
    return [psk_host_case("psk.peer", v, p, v, None)]


def apply_psk_case(name: str, value: str, peer: str, key: str) -> Case:
    """The apply with the pre-shared key `key` for `peer` on its stdin after the private
    key: written to its 0600 file, said without the key."""
    m = base_plan().mesh
    text = hostcmd.apply(m, APPLIED_SHA256, install_key=True, psks=[peer])
    c = Case(name, value, "apply.sh (psk)", text, stdin=f"{FAKE_PRIVATE}\n{key}\n{APPLIED}")
    c.files[m.key_file.lstrip("/")] = FAKE_PRIVATE + "\n"
    c.files[m.psk_file(peer).lstrip("/")] = key + "\n"
    c.stdout_has = ["applied-ok", f"changed: pre-shared key for {peer} installed"]
    return c


def psk_keys_case(v: str) -> list[Case]:
    """On a link's first end: a new key for one peer, the file's for another; both printed
    for the controller, nothing written."""
    if not dir_name_ok(v) or v == "bob":
        return []
    m = base_plan().mesh
    c = Case("psk-keys.peer", v, "psk-keys.sh", hostcmd.psk_keys(m, [v], ["bob"]))
    c.root[m.psk_file("bob").lstrip("/")] = "kept-key\n"
    c.files[m.psk_file("bob").lstrip("/")] = "kept-key\n"
    c.files[m.psk_file(v).lstrip("/")] = None
    c.calls = [["wg", "genpsk"]]
    c.stdout = f"{v} {FAKE_PSK}\nbob kept-key\n"
    return [c]


def confirm_case(name: str, value: str, p: Plan, token: str) -> Case:
    """Confirms its own rollout: armed by it, its apply ended well."""
    m = p.mesh
    c = Case(name, value, "confirm.sh", hostcmd.confirm(m, token))
    c.root[f"{m.state_dir}/apply.sh".lstrip("/")] = "exit 0\n"
    c.root[f"{m.state_dir}/apply.rc".lstrip("/")] = "0\n"
    c.root[f"{m.state_dir}/armed.token".lstrip("/")] = token + "\n"
    if token.endswith("\n"):
        c.rc = 1  # read back without its newline: not this rollout's (see apply_case)
        c.stderr_has = ["superseded"]
    elif dir_name_ok(f"confirmed.{token}"):
        c.files[f"{m.state_dir}/confirmed.{token}".lstrip("/")] = ""
    else:
        c.rc = 1  # touch cannot make it: not a file name
    return c


def rolled_back_case(name: str, value: str, p: Plan, token: str) -> Case:
    m = p.mesh
    c = Case(name, value, "rolled-back.sh", hostcmd.rolled_back(m, token))
    c.root[f"{m.state_dir}/rolled-back".lstrip("/")] = token + "\n"
    # The shell drops the newlines a file's content ends with: such a token reads as another.
    c.stdout = "rolled-back\n" if not token.endswith("\n") else "superseded\n"
    return c


def rotate_case(name: str, value: str, p: Plan) -> Case:
    m = p.mesh
    c = Case(name, value, "rotate-key.sh", hostcmd.rotate_key(m))
    c.calls = [["wg", "genkey"], ["wg", "pubkey"]]
    c.files[f"{m.key_file}.next".lstrip("/")] = FAKE_PRIVATE + "\n"
    c.stdout = FAKE_PUBLIC + "\n"
    return c


def ping_case(name: str, value: str, peer: str, address: str) -> Case:
    c = Case(name, value, "ping.sh", hostcmd.ping([(peer, address)]))
    c.calls = [["ping", "-c", "1", "-W", "2", "-q", "--", address]]
    c.stdout = peer + "\n"  # the stub never answers
    return c


def measure_case(name: str, value: str, peer: str, address: str, count: Any, mark: str) -> Case:
    c = Case(name, value, "measure.sh", hostcmd.measure([(peer, address)], count, mark))
    c.calls = [["ping", "-n", "-c", s(count), "-i", "0.2", "-W", "2", "--", address]]
    c.stdout = mark + peer + "\n"
    return c


# --------------------------------------------------------------------------- fields

Build = Callable[[str], list[Case]]
EPS = "epsilon"  # rho's peer known by address, and its wire


def mesh_field(name: str, attr: str, programs: Iterable[str]) -> tuple[str, Build]:
    def build(v: str) -> list[Case]:
        p = with_mesh(base_plan(), **{attr: v})
        return mesh_programs(name, v, p, programs)

    return name, build


def mesh_programs(name: str, v: str, p: Plan, programs: Iterable[str]) -> list[Case]:
    out: list[Case] = []
    for prog in programs:
        if prog == "host":
            out.append(host_case(name, v, p))
        elif prog == "host-go":
            out.append(host_case(name, v, p, wireguard="wireguard-go"))
        elif prog == "down":
            out.append(down_case(name, v, p))
        elif prog in ("once", "loop"):
            out.append(reresolve_case(name, v, p, prog))
        elif prog == "loop-on":
            out.append(reresolve_case(name, v, with_mesh(p, wg_reresolve=7), "loop"))
        elif prog == "facts":
            out.append(facts_case(name, v, p, legacy=False))
        elif prog == "facts-legacy":
            out.append(facts_case(name, v, p, legacy=True))
        elif prog == "gather":
            out.append(gather_case(name, v, p))
        elif prog == "apply":
            out.append(apply_case(name, v, p, None, None))
        elif prog == "apply-key":
            out.append(apply_case(name, v, p, None, None, key=FAKE_PRIVATE))
        elif prog == "apply-armed":
            out.append(apply_case(name, v, p, None, "fedcba9876543210"))
        elif prog == "confirm":
            out.append(confirm_case(name, v, p, "fedcba9876543210"))
        elif prog == "rolled-back":
            out.append(rolled_back_case(name, v, p, "fedcba9876543210"))
        elif prog == "rotate-key":
            out.append(rotate_case(name, v, p))
        else:
            raise AssertionError(prog)
    return out


def simple(name: str, change: Callable[[Plan, str], Plan], *programs: str) -> tuple[str, Build]:
    def build(v: str) -> list[Case]:
        return mesh_programs(name, v, change(base_plan(), v), programs or ("host",))

    return name, build


def mesh_name(v: str) -> list[Case]:
    p = with_mesh(base_plan(), name=v)
    if not dir_name_ok(v):
        # Not one path component: no path on a host is ever built of it (model.Mesh).
        with pytest.raises(ValueError, match="cannot name a file on a host"):
            host_script(p)
        with pytest.raises(ValueError, match="cannot name a file on a host"):
            facts_program(p.mesh)
        return []
    programs = ["host", "down", "loop-on", "facts", "gather", "apply", "apply-key", "apply-armed",
                "confirm", "rolled-back", "rotate-key"]  # fmt: skip
    return mesh_programs("mesh.name", v, p, programs)


def other_fields(v: str) -> list[Case]:
    """Every other field of rho's script at once (none of them can stop it, and the expected
    calls check each one): the WireGuard and VXLAN ports, MTUs, STP timers; rho's name
    (comments only), addresses, bridge MAC and priority; everything of its peer epsilon
    (key, allowed IP, endpoint, keepalive, name) and of its wire (VNI, addresses, cost); its
    named peer's name and DNS name; the private key the controller sends. And a host name
    among the down script's names (vorke's)."""
    p = with_mesh(base_plan(), wg_port=v, vxlan_port=v)
    p = with_mtu(p, wireguard=v, bridge=v)
    p = with_stp(p, hello=v, forward_delay=v, max_age=v, ageing=v)
    p = with_rho(
        p,
        host=dataclasses.replace(rho(p).host, name=v),
        bridge_address=v,
        bridge_mac=v,
        bridge_priority=v,
    )
    p = with_iface(p, address=v)
    p = with_peer(p, EPS, public_key=v, allowed_ips=(v,), endpoint=v, keepalive=v, name=v)
    p = with_peer(p, "bob", name=v, endpoint_name=v)
    p = with_wire(p, EPS, vni=v, local=v, remote=v, cost=v)
    hosts = list(base_plan().mesh.hosts)
    hosts[2] = dataclasses.replace(hosts[2], name=v)
    q = with_mesh(base_plan(), hosts=tuple(hosts))
    name = "other fields"
    return [host_case(name, v, p, public_key=v or None), reresolve_case(name, v, p, "once"),
            down_case(name, v, q)]  # fmt: skip


# Fields that cannot stop the script share a case; those that can (an interface name can be
# `.`, a named peer's key can hide it from the re-resolver, a re-resolution loop that the
# stubs never start) have their own.
FIELDS: dict[str, Build] = dict(
    [
        ("mesh.name", mesh_name),
        mesh_field("mesh.wg_interface", "wg_interface",
                   ["host", "host-go", "down", "once", "facts", "facts-legacy", "gather"]),
        mesh_field("mesh.bridge", "bridge", ["host", "down", "gather"]),
        mesh_field("mesh.wg_reresolve", "wg_reresolve", ["host", "loop"]),
        simple("named_peer.public_key", lambda p, v: with_peer(p, "bob", public_key=v),
               "host", "once"),
        simple("wire.name", lambda p, v: with_wire(p, EPS, name=v)),
        ("other fields", other_fields),
        ("psk.fingerprint", lambda v: [psk_host_case("psk.fingerprint", v, base_plan(), EPS, v)]),
        ("psk.peer", psk_peer_case),
        ("psk-keys.peer", psk_keys_case),
        # One line each, as the controller sends them.
        ("apply.psk", lambda v: [apply_psk_case("apply.psk", v, "bob", v)]
         if "\n" not in v and "\r" not in v else []),
        ("apply.psk-peer", lambda v: [apply_psk_case("apply.psk-peer", v, v, FAKE_PSK)]
         if dir_name_ok(v) else []),
        ("apply.digest", lambda v: [apply_case("apply.digest", v, base_plan(), v, None)]),
        # Read by `read -r` up to its newline: one line, as the controller sends it.
        ("apply.key", lambda v: [apply_case("apply.key", v, base_plan(), None, None, key=v)]
         if "\n" not in v and "\r" not in v else []),
        ("timer.token", lambda v: [apply_case("timer.token", v, base_plan(), None, v),
                                   confirm_case("timer.token", v, base_plan(), v),
                                   rolled_back_case("timer.token", v, base_plan(), v)]),
        ("ping.peer+address", lambda v: [ping_case("ping", v, v, "10.99.99.1"),
                                         ping_case("ping", v, "bob", v)]),
        ("measure.peer+address+count+mark",
         lambda v: [measure_case("measure", v, v, v, v, measure.MARK),
                    measure_case("measure", v, "bob", "10.88.88.1", 3, v)]),
    ]
)  # fmt: skip


# --------------------------------------------------------------------------- running


def write_case(d: Path, c: Case) -> None:
    d.mkdir()
    (d / "script").write_text(c.script)
    (d / "args").write_text(c.args)
    (d / "stdin").write_text(c.stdin)
    (d / "endpoints").write_text(c.endpoints)
    (d / "env").write_text("".join(f"{k}={v}\n" for k, v in c.env.items()))
    for rel, content in c.root.items():
        path = d / "root" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content.startswith("->"):
            path.symlink_to(content[2:])
        else:
            path.write_text(content)


WORKERS = 3


def run_sandbox(work: Path, cases: list[Case]) -> list[Path]:
    stub = work / "stub"
    stub.mkdir()
    (work / "frr").mkdir()
    for d, names in ((stub, STUB_NAMES), (work / "frr", FRR_STUBS)):
        for name in names:
            (d / name).write_text(STUB)
            (d / name).chmod(0o755)
    (work / "worker.sh").write_text(WORKER)
    (work / "cases").mkdir()
    dirs = []
    for i, c in enumerate(cases):
        d = work / "cases" / f"{i:05d}"
        write_case(d, c)
        dirs.append(d)
    for n in range(WORKERS):
        (work / f"slice-{n}").write_text("".join(f"/w/cases/{d.name}\n" for d in dirs[n::WORKERS]))
    sandbox = ["unshare", "--mount", "--pid", "--fork", "--net", "--propagation", "private",
               "sh", "-c", SANDBOX, "sandbox", str(work)]  # fmt: skip
    workers = [subprocess.Popen([*sandbox, str(n)]) for n in range(WORKERS)]
    for w in workers:
        assert w.wait(timeout=900) == 0
    return dirs


def read_log(path: Path) -> list[list[str]]:
    """The stubs' records: count, name, then count arguments, each NUL-terminated."""
    data = path.read_bytes().decode("utf-8", "surrogateescape") if path.exists() else ""
    fields = data.split("\0")
    calls, i = [], 0
    while i < len(fields) - 1:
        n = int(fields[i])
        calls.append(fields[i + 1 : i + 2 + n])
        i += 2 + n
    return calls


def state_files(tar_path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            if m.issym():
                out[m.name] = "->" + m.linkname
            elif m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                out[m.name] = f.read().decode("utf-8", "surrogateescape")
    return out


def check(c: Case, d: Path) -> list[str]:
    """What is wrong with case `c`, run in `d`."""
    wrong = []
    rc = int((d / "rc").read_text())
    out = (d / "out").read_bytes().decode("utf-8", "surrogateescape")
    err = (d / "err").read_bytes().decode("utf-8", "surrogateescape")
    calls = read_log(d / "log")
    files = state_files(d / "state.tar")
    if rc != c.rc:
        wrong.append(f"exit {rc}, expected {c.rc}: {err[-600:]!r}")
    for want in c.calls:
        if want not in calls:
            near = [x for x in calls if x[:2] == want[:2]][:6]
            wrong.append(f"no call {want!r}; calls like it: {near!r}")
    for bad in c.absent:
        if bad in calls:
            wrong.append(f"call {bad!r} made")
    if c.only_reads:
        reads = READS | CHECK_READS if c.env.get("MESH_PUSH_CHECK") == "1" else READS
        changing = [x for x in calls if tuple(x[:2]) not in reads]
        if changing:
            wrong.append(f"refused, yet called {changing!r}")
    if c.stdout is not None and out != c.stdout:
        wrong.append(f"stdout {out[:400]!r}, expected {c.stdout!r}")
    wrong += [f"stdout lacks {w!r}: {out[:600]!r}" for w in c.stdout_has if w not in out]
    wrong += [f"stderr lacks {w!r}: {err[:600]!r}" for w in c.stderr_has if w not in err]
    for path, content in c.files.items():
        if files.get(path) != content:
            wrong.append(f"{path}: {files.get(path)!r}, expected {content!r}")
    wrong += [f"{path} is gone" for path in c.exists if path not in files]
    # No key on any command line (`ps` would show it): the private key, the pre-shared keys the
    # stubs make, and whatever secret the case's stdin carried.
    given = {line for line in c.stdin.splitlines() if re.fullmatch(r"[A-Za-z0-9+/]{43}=", line)}
    keys = {FAKE_PRIVATE, FAKE_PSK, *given}
    on_argv = [x for x in calls if any(k in arg for k in keys for arg in x)]
    if on_argv:
        wrong.append(f"a key on a command line: {on_argv!r}")
    with tarfile.open(d / "state.tar") as tar:
        found = [n for n in tar.getnames() if n.split("/")[-1] == CANARY]
    if found or any(p.name == CANARY for p in d.rglob("*")):
        wrong.append(f"CANARY made: {found!r}")
    return wrong


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_hostile_values_stay_one_argument(name: str, tmp_path: Path) -> None:
    for tool in ("unshare", "chroot", "timeout", "tar", "xargs"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    cases = [c for v in HOSTILE for c in FIELDS[name](v)]
    assert cases or name == "mesh.name"
    dirs = run_sandbox(tmp_path, cases)
    problems = []
    for c, d in zip(cases, dirs, strict=True):
        problems += [f"{c.label()}: {w}" for w in check(c, d)]
    for n in range(WORKERS):
        assert not (tmp_path / f"found-in-sandbox-{n}").read_text(), "CANARY in the sandbox"
    assert not [p for p in tmp_path.rglob("*") if p.name == CANARY]
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problems)"


# The POSIX shells a host may have as /bin/sh: Debian's dash, BusyBox's ash (Alpine), bash.
SHELLS = ("sh", "busybox sh", "bash --posix")


@pytest.mark.parametrize("shell", SHELLS)
def test_the_sandbox_sees_a_plain_run_as_the_lab_does(tmp_path: Path, shell: str) -> None:
    """The expected calls are right: the unchanged plan passes every program's checks, under
    each shell a host may run them with (issue 30)."""
    if shutil.which(shell.split()[0]) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{shell} is not installed (scripts/install installs it)")
        pytest.skip(f"needs {shell.split()[0]}")
    p = base_plan()
    cases = mesh_programs("none", "", p, ["host", "host-go", "down", "once", "loop-on", "facts",
                          "facts-legacy", "gather", "apply", "apply-key", "apply-armed", "confirm",
                          "rolled-back", "rotate-key"])  # fmt: skip
    cases.append(host_case("none", "", p, public_key=FAKE_PUBLIC))
    cases.append(apply_case("none", "", p, None, None, key=FAKE_PRIVATE))
    for c in cases:
        c.env = {**c.env, "RUN_SHELL": shell}
    dirs = run_sandbox(tmp_path, cases)
    problems = [f"{c.label()}: {w}" for c, d in zip(cases, dirs, strict=True) for w in check(c, d)]
    assert not problems, "\n".join(problems)


def test_the_sandbox_sees_a_canary(tmp_path: Path) -> None:
    """The check can fail: an unquoted value, as a template without the filter would paste
    it, makes the canary, and the check says so."""
    value = "$(touch CANARY)"
    unquoted = Case("unquoted", value, "a script", f"ip link del dev {value}\n")
    quoted = Case("quoted", value, "a script", f"ip link del dev {shlex.quote(value)}\n")
    quoted.calls = [["ip", "link", "del", "dev", value]]
    dirs = run_sandbox(tmp_path, [unquoted, quoted])
    assert any("CANARY made" in w for w in check(unquoted, dirs[0]))
    assert check(quoted, dirs[1]) == []


def in_check_mode(c: Case) -> Case:
    """The same program and host as `c`, run as `--check` runs it: it may only read, and
    every file that was there stays as it was. Only a refusal still fails."""
    out = Case(c.field, c.value, c.program + " --check", c.script, endpoints=c.endpoints)
    out.env = {**c.env, "MESH_PUSH_CHECK": "1"}
    out.root = dict(c.root)
    out.rc = 1 if c.rc == 1 and c.only_reads else 0
    out.only_reads = True
    out.files = {path: v for path, v in c.root.items() if not v.startswith("->")}
    out.exists = [path for path, v in c.root.items() if v.startswith("->")]
    return out


def test_check_mode_changes_nothing_whatever_the_values(tmp_path: Path) -> None:
    """`--check` runs the host and down scripts with MESH_PUSH_CHECK=1: with hostile values in
    every field, nothing but reads is called, no file changes, no canary."""
    values = ["$(touch CANARY)", "\ntouch CANARY\n", "'; touch CANARY; '"]
    cases = [
        in_check_mode(c)
        for name in sorted(FIELDS)
        for v in values
        for c in FIELDS[name](v)
        if c.program.startswith(("host.sh", "down.sh"))
    ]
    assert len(cases) > 30
    dirs = run_sandbox(tmp_path, cases)
    problems = [f"{c.label()}: {w}" for c, d in zip(cases, dirs, strict=True) for w in check(c, d)]
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problems)"
