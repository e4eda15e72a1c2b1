"""What the lab test modules share: running this tree's `mesh-push`, a renamed and renumbered copy
of inventory/lab.yaml (or of inventory/lab-evpn.yaml), an inventory put in evpn mode, each
link's ends as the plan has them in either mode, a template with a snippet injected, and a lab
that is brought up for a block and always taken down after it. Each module keeps its own lab
name and network (per mode, for a module that runs in both) so that they never collide."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests import zygote

ROOT = Path(__file__).resolve().parents[2]
# The hosts of inventory/lab.yaml and their numbers (a host's bridge address is 10.99.99.N).
HOSTS = ["bob", "rho", "vorke", "epsilon", "pi0"]
NUMBER = {"bob": 1, "rho": 2, "vorke": 3, "epsilon": 4, "pi0": 5}


def cli_argv(*args: str) -> list[str]:
    """The command line that runs this tree's mesh-push with `args`."""
    return [sys.executable, "-m", "mesh_push.cli", *args]


def mesh_push(
    *args: str, check: bool = False, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run mesh-push from the repository root, uncoloured; with check, a non-zero exit fails.
    Forked from the test process's zygote (tests/zygote.py): a process of its own, without
    Python's imports to pay again each time."""
    res = zygote.run(args, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"}, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(
            f"mesh-push {' '.join(args)} → {res.returncode}\n{res.stdout}\n{res.stderr}"
        )
    return res


def lab_exec(lab: str, host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    """`cmd` on lab host `host`, as `mesh-push lab exec` runs it (tests/lab tests that), but
    without a Python process of its own each time: the suite runs thousands."""
    from mesh_push.lab.errors import LabError
    from mesh_push.lab.ops import exec_run

    try:
        return exec_run(lab, host, cmd, timeout=300)
    except LabError as e:
        return subprocess.CompletedProcess(list(cmd), e.code, "", f"mesh-push: {e}\n")


def lab_cat(lab: str, host: str, path: str) -> str | None:
    """A file on a lab host (None: it cannot be read)."""
    res = lab_exec(lab, host, "cat", path)
    return res.stdout if res.returncode == 0 else None


def whole_boot_script(lab: str, host: str, state: str) -> str:
    """The host's boot script (`state`/apply.sh) is the one its record says was applied, whole;
    returns its text."""
    script = lab_cat(lab, host, f"{state}/apply.sh")
    assert script is not None, host
    digest = hashlib.sha256(script.encode()).hexdigest()
    assert lab_cat(lab, host, f"{state}/applied.sha256") == digest + "\n", host
    return script


# The two modes, for tests that run in both: the write-up's five hosts as each mode's lab
# inventory, and the /24 prefix of its addresses.
MODES = ("stp", "evpn")
LAB_INVENTORY = {
    "stp": ("inventory/lab.yaml", "198.18.0"),
    "evpn": ("inventory/lab-evpn.yaml", "198.18.4"),
}


def lab_inventory(dest: Path, lab: str, prefix: str, mode: str = "stp") -> Path:
    """Write inventory/lab.yaml (with mode evpn, inventory/lab-evpn.yaml: the same hosts and
    links) to `dest` as lab `lab` on `prefix`.0/23 (`prefix` like "198.18.8"), every address
    of its network moved to `prefix`.x; returns `dest`."""
    source, old = LAB_INVENTORY[mode]
    text = (ROOT / source).read_text()
    text, renamed = re.subn(
        r"lab:\n  name: \w+\n  network: \S+",
        f"lab:\n  name: {lab}\n  network: {prefix}.0/23",
        text,
    )
    assert renamed == 1, f"{source} has no `lab:` section to rename"
    text = text.replace(f"{old}.", f"{prefix}.")
    assert f"name: {lab}" in text and f"{old}." not in text
    dest.write_text(text)
    return dest


def in_mode(text: str, mode: str) -> str:
    """An stp inventory's text in `mode`: for evpn, `mode: evpn` in its `mesh:` section and
    its `stp:` line (with the comments just above it) dropped, as an evpn mesh refuses
    `mesh.stp`."""
    if mode == "stp":
        return text
    assert mode == "evpn", mode
    text, dropped = re.subn(r"(?m)^(  #.*\n)*  stp: .*\n", "", text)
    assert dropped == 1, "no `stp:` line in the inventory's `mesh:` section"
    assert text.count("mesh:\n") == 1
    return text.replace("mesh:\n", "mesh:\n  mode: evpn\n")


@dataclass(frozen=True)
class End:
    """A link's end at a host, as `plan --json` plans it. stp: the host's one WireGuard
    interface and port, its WireGuard address; evpn: the link's own interface (WG-VNI) on
    port wireguard.port + VNI, its /31."""

    interface: str
    port: int  # the interface's listen port
    address: str  # the host's tunnel address on the link (bare)
    peer_address: str  # the far end's: what a ping over this link goes to
    allowed_ips: str  # the peer's allowed-ips, as `wg set` takes them (comma-separated)
    endpoint: str | None  # the peer's endpoint (`ADDRESS:PORT`, `NAME:PORT`) if it has one
    keepalive: int | None


def link_ends(inventory: Path) -> dict[tuple[str, str], End]:
    """(host, peer) → the end at `host` of its link with `peer`, from `plan --json`."""
    plan = json.loads(mesh_push("plan", "-i", str(inventory), "--json", check=True).stdout)
    bare = {h["name"]: h["wg_address"].split("/")[0] for h in plan["hosts"]}
    if plan["evpn"] is None:  # stp: one interface, one port, the host's WireGuard address
        pairs = [(h["name"], pe["name"]) for h in plan["hosts"] for pe in h["peers"]]
        addr = {(h, peer): bare[h] for h, peer in pairs}
        port = {k: plan["wireguard"]["port"] for k in pairs}
    else:
        links = {(h["name"], lk["peer"]): lk for h in plan["evpn"]["hosts"] for lk in h["links"]}
        addr = {k: lk["address"].split("/")[0] for k, lk in links.items()}
        port = {k: lk["port"] for k, lk in links.items()}
    ends = {}
    for h in plan["hosts"]:
        for pe in h["peers"]:
            k = (h["name"], pe["name"])
            ends[k] = End(
                pe["interface"],
                port[k],
                addr[k],
                addr[(pe["name"], h["name"])],
                ",".join(pe["allowed_ips"]),
                pe["endpoint"],
                pe["keepalive"],
            )
    return ends


def templates_with(
    dest_dir: Path,
    inject: str,
    before: str = 'step "bridge"\n',
    template: str = "stp/host.sh.j2",
) -> Path:
    """A directory for `--templates` (`dest_dir`/templates) that holds only `template` (its
    path under templates/; by default stp mode's host script, inventory/lab.yaml's mode),
    with `inject` put just before its first `before`: every other template, and what it
    includes, is the built-in one."""
    out = dest_dir / "templates"
    text = (ROOT / "templates" / template).read_text()
    assert before in text, f"{template} has no {before!r}"
    dest = out / template
    dest.parent.mkdir(parents=True)
    dest.write_text(text.replace(before, inject + before, 1))
    return out


@contextlib.contextmanager
def lab_up(lab: str, inventory: Path) -> Iterator[None]:
    """Lab `lab` built from `inventory` for the block (any leftover of it removed first), and
    always taken down after it."""
    mesh_push("lab", "down", "--name", lab)
    try:
        mesh_push("lab", "up", "-i", str(inventory), check=True)
        yield
    finally:
        mesh_push("lab", "down", "--name", lab)


def sample_cmdlines(stop: threading.Event, seen: set[str]) -> None:
    """Every process's command line, sampled until `stop`: what `ps` would have shown. Raw
    system calls, and each distinct line decoded once: a scan of /proc every 5 ms, with the
    suite's hundreds of lab processes, cost a core's worth through every `up` it watched."""
    raw: set[bytes] = set()
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                fd = os.open(f"/proc/{pid}/cmdline", os.O_RDONLY)
            except OSError:
                continue
            try:
                data = chunk = os.read(fd, 65536)
                while chunk:
                    chunk = os.read(fd, 65536)
                    data += chunk
            except OSError:
                continue
            finally:
                os.close(fd)
            if data not in raw:
                raw.add(data)
                seen.add(data.replace(b"\0", b" ").decode(errors="replace"))
        time.sleep(0.005)


# What `--check` must leave byte-identical on a host (issue 16): the links with their details,
# every WireGuard interface and peer, the bridge ports, and the files mesh-push keeps. Left
# out is what moves by itself: timers, counters, handshakes, what STP elects (port states,
# roles, root and designated bridges, topology changes and the ageing they shorten; a bridge's
# own id is its priority and address), and private keys (never printed: the file digests
# cover them).
SNAPSHOT = r"""
ip -j -d link show
echo '=== wg'
wg show all dump | awk -F '\t' 'NF == 5 {print $1, $3, $4, $5} NF == 9 {print $1, $2, $4, $5, $9}' \
  | sort
echo '=== files'
for f in $(find /var/lib/mesh-push /etc/wireguard /etc/systemd/system ! -type d | sort)
do
  printf '%s %s ' "$f" "$(stat -c '%a %U %s %Y' "$f")"; sha256sum < "$f"
done
"""
MOVING = re.compile(
    r"_timer$|^(state|role|topology_change\w*|ageing_time|root_id|root_port|"
    r"root_path_cost|designated_\w+|bridge_id|config_pending|stats\w*|operstate|linkmode)$"
)


def _still(value: object) -> object:
    if isinstance(value, dict):
        return {
            # Of the flags only UP is set by hand; the others follow the carrier.
            k: ["UP"] if k == "flags" and "UP" in v else [] if k == "flags" else _still(v)
            for k, v in value.items()
            if not MOVING.search(k)
        }
    if isinstance(value, list):
        return [_still(v) for v in value]
    return value


def snapshot(lab: str, host: str) -> str:
    """The host's state as `--check` must leave it (SNAPSHOT), as one comparable text."""
    res = lab_exec(lab, host, "sh", "-c", SNAPSHOT)
    assert res.returncode == 0, res.stderr
    links, _, rest = res.stdout.partition("=== wg\n")
    still = sorted((_still(x) for x in json.loads(links)), key=lambda x: str(x))
    return json.dumps(still, indent=1, sort_keys=True) + "\n=== wg\n" + rest


class Pings:
    """A 20 ms ping from the first host of each pair to the second's `address`, until
    stopped: then, per pair, how many echoes went unanswered."""

    INTERVAL = 0.02

    def __init__(self, lab: str, targets: dict[tuple[str, str], str]) -> None:
        from mesh_push.lab.netns import at_host_priority
        from mesh_push.lab.ops import exec_argv

        ping = ["ping", "-n", "-O", "-i", str(self.INTERVAL), "-W", "1"]
        self.procs = {
            pair: subprocess.Popen(
                exec_argv(lab, pair[0], [*ping, address]),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                preexec_fn=at_host_priority,
            )
            for pair, address in targets.items()
        }

    def stop(self) -> dict[tuple[str, str], int]:
        lost = {}
        for pair, p in self.procs.items():
            p.send_signal(signal.SIGINT)
            out, _ = p.communicate(timeout=20)
            sent = re.search(r"(\d+) packets transmitted, (\d+) received", out)
            assert sent, out[-500:]
            # The echo in flight when ping was stopped is counted as lost by ping: not here.
            lost[pair] = max(0, int(sent.group(1)) - int(sent.group(2)) - 1)
        return lost
