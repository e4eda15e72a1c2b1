"""Every lab a test builds gets its name and its addresses here, so that two pytest-xdist
workers, or two checkouts running the suite at once, never build the same lab or take the
same range.

- The lab modules (tests/e2e) each own fixed labs, named in `LABS` with the /23 they take in
  198.18.0.0/16. Each module runs whole in one worker (`--dist loadfile`), and no two entries
  share a name or a range (tests/unit/test_labs.py), so two workers never meet.
- A run takes one of two *spaces* for the whole session (`claim_space`, a lock file held by
  pytest's main process and named to its workers in MESH_PUSH_TEST_SPACE): space 0 uses the
  table as written, space 1 the same names with "1" after them on 198.18.128.0/17. A third
  checkout waits for one of the two to finish.
- Labs made on the fly (tests/lab) take a free /23 of 198.19.0.0/16 with `claim_network`: a lock
  file per /23, held until the process ends, and a name made from it.

The user's own labs (inventory/lab*.yaml: 198.18.0.0/21) are in none of these ranges.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import sys
from pathlib import Path
from typing import IO

from mesh_push.lab.addresses import overlaps
from mesh_push.lab.system import ip_json

# A lab's name → the third octet of its /23 in 198.18.0.0/17 (space 0).
LABS: dict[str, int] = {
    "mpe": 8,  # test_mesh
    "mps": 12,  # test_stp_lab
    "mpc": 20,  # test_live_changes
    "mpw": 24,  # test_ci_workflow
    "mpr": 28,  # test_rollout
    "mpn": 32,  # test_dns_names_lab, stp
    "mpf": 36,  # test_faults
    "mpfc": 52,  # test_first_contact
    "mpsu": 56,  # test_sudo, passwordless
    "mpsp": 60,  # test_sudo, with a password
    "mpd": 64,  # test_drift
    "mpk": 68,  # test_ssh_keys_lab
    "mpm": 72,  # test_two_meshes
    "mpl": 76,  # test_lock_integrity
    "mpg": 80,  # test_graph_lab, stp
    "mpx": 84,  # test_monitoring_lab, stp
    "mpq": 88,  # test_check
    "mpv": 92,  # test_vm_lab (QEMU guests)
    "mpp": 96,  # test_psk, stp
    "mpe5": 104,  # test_evpn, five hosts
    "mpe20": 108,  # test_evpn, twenty hosts
    "mppev": 112,  # test_psk, evpn
    "mpnev": 116,  # test_dns_names_lab, evpn
    "mpgev": 120,  # test_graph_lab, evpn
    "mpmev": 124,  # test_monitoring_lab, evpn
    "mph": 44,  # test_home_hosts
    "mpfw": 48,  # test_firewall_lab, stp
    "mpfe": 100,  # test_firewall_lab, evpn
    "mptr": 16,  # test_transit_lab, stp
    "mpad": 10,  # test_adopt_lab
    "mpte": 40,  # test_transit_lab, evpn
    "mpln": 14,  # test_lan_links
    "mparm": 26,  # test_vm_arm (an arm64 QEMU guest; opt-in, -m arm)
    "mpvi": 18,  # test_vm_inits (QEMU guests of four inits; long)
}
SPACES = 2
SPACE_ENV = "MESH_PUSH_TEST_SPACE"
LOCKS = Path("/run/mesh-push/test-locks")
DYNAMIC = ipaddress.IPv4Network("198.19.0.0/16")

_held: list[IO[bytes]] = []  # lock files this process holds until it ends


def space() -> int:
    value = os.environ.get(SPACE_ENV, "0")
    if value not in {str(k) for k in range(SPACES)}:
        raise RuntimeError(f"{SPACE_ENV}={value!r}: expected 0..{SPACES - 1}")
    return int(value)


def lab(name: str, in_space: int | None = None) -> tuple[str, str]:
    """(the lab's name, the first three octets of its /23, like "198.18.88") in this run's
    space: what a lab module passes to labkit.lab_inventory."""
    k = space() if in_space is None else in_space
    octet = LABS[name] + 128 * k
    return (name if k == 0 else f"{name}{k}"), f"198.18.{octet}"


def _try_lock(path: Path) -> IO[bytes] | None:
    LOCKS.mkdir(parents=True, exist_ok=True, mode=0o700)
    f = path.open("ab")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def claim_space() -> int:
    """Take a space for this run (called once, by pytest's main process, as root) and name it
    in the environment the workers inherit. Blocks while other checkouts hold both."""
    for k in range(SPACES):
        f = _try_lock(LOCKS / f"space-{k}.lock")
        if f is not None:
            break
    else:
        print(f"tests: {SPACES} other test runs hold the lab spaces; waiting", file=sys.stderr)
        f = (LOCKS / "space-0.lock").open("ab")
        fcntl.flock(f, fcntl.LOCK_EX)
        k = 0
    _held.append(f)
    os.environ[SPACE_ENV] = str(k)
    return k


def claim_network() -> tuple[str, ipaddress.IPv4Network]:
    """A /23 of 198.19.0.0/16 that no other process of any run holds and the machine does not
    use, held until this process ends, and a lab name that is this /23's alone."""
    # What `lab up` itself refuses: the machine's own addresses and routes.
    addrs, routes = ip_json("addr"), ip_json("route")
    for index, net in enumerate(DYNAMIC.subnets(new_prefix=23)):
        if overlaps(net, addrs, routes):
            continue
        f = _try_lock(LOCKS / f"net-{net.network_address}.lock")
        if f is not None:
            _held.append(f)
            return f"mt{index}", net
    raise RuntimeError(f"no free /23 in {DYNAMIC} for a test lab")
