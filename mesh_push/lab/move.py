"""`lab move HOST ADDRESS`: a host's wan address changes, as a VPS's or a dynamic-DNS host's
does. Its underlay address, its sshd, the controller's ssh_config and known_hosts, the cut
list and every host's /etc/hosts (the lab's DNS) follow; nothing tells the mesh."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from mesh_push.lab import nat, netns, sshd
from mesh_push.lab.addresses import IF_UNDERLAY, Node, ifname, wan_ns
from mesh_push.lab.errors import EXIT_FAILED, LabError
from mesh_push.lab.names import moved, served_names
from mesh_push.lab.ops import load_state
from mesh_push.lab.state import LabState, keeper_pid, node_dir, sshd_pid
from mesh_push.lab.system import ip_batch, pid_alive, run


@dataclass(frozen=True)
class MoveResult:
    state: LabState
    old: Node
    new: Node

    @property
    def changed(self) -> bool:
        return self.old.address != self.new.address


def move(name: str, host: str, address: str) -> MoveResult:
    state = load_state(name)
    if state.plan.is_guest(state.plan.node(host)):
        raise LabError(f"lab move works on namespace hosts only; {host} is a QEMU guest")
    plan = moved(state.plan, host, address)
    old, new = state.plan.node(host), plan.node(host)
    if old.address == new.address:
        return MoveResult(state, old, new)
    keeper = keeper_pid(name, old.alias)
    if not pid_alive(keeper):
        raise LabError(f"{host} of lab {name} is not running (its keeper is gone)", EXIT_FAILED)
    assert keeper is not None
    eth = ifname(name, IF_UNDERLAY)
    # The old address goes first: were the new one added beside it in the same subnet, it
    # would be a secondary, and deleting the primary would take it along.
    ip_batch(
        [
            f"address del {old.address}/{old.prefixlen} dev {eth}",
            f"address add {new.address}/{new.prefixlen} dev {eth}",
        ],
        netns=new.ns,
    )
    state.plan = plan
    state.save()
    # In place: each keeper's bind mount holds on to its file's inode.
    names = served_names(plan)
    dirs = {n.alias: node_dir(name, n.alias) for n in plan.nodes}
    for n in plan.nodes:
        netns.write_hosts_file(dirs[n.alias], n.alias, names)
    _restart_sshd(name, new, dirs[new.alias], keeper, state)
    sshd.write_client_files(plan, state.dir, dirs)
    if state.cuts:  # they name wan addresses
        run(
            netns.in_netns(wan_ns(name), ["nft", "-f", "-"]),
            input=nat.cuts_script(plan, state.cuts),
        )
    return MoveResult(state, old, new)


def _restart_sshd(name: str, node: Node, ndir: Path, keeper: int, state: LabState) -> None:
    """Its sshd listens on the old address: a new one takes over. Sessions stay open."""
    pid = sshd_pid(name, node.alias)
    if pid_alive(pid) and _in_netns(pid, node.ns):
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid):
            if time.monotonic() > deadline:
                raise LabError(f"the sshd of {node.alias} (pid {pid}) would not stop", EXIT_FAILED)
            time.sleep(0.01)
    sshd.write_node_files(node, ndir, state.dir, state.plan.login)
    sshd.start({node.alias: keeper}, {node.alias: ndir})


def _in_netns(pid: int | None, ns: str) -> bool:
    """Whether `pid` lives in lab namespace `ns`: a pid file is never trusted on its own."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return False
