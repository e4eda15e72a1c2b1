"""The lab's operations: up, down, status, exec, cut, heal, reboot. Callers check for root."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesh_push.lab import addresses, arch, image, nat, netns, sshd, users, vm
from mesh_push.lab.addresses import IF_CONTROLLER, IF_LAN, IF_UNDERLAY, LabPlan, ifname, ns_prefix
from mesh_push.lab.errors import EXIT_FAILED, LabError
from mesh_push.lab.names import served_names
from mesh_push.lab.state import (
    LabState,
    keeper_pid,
    known_labs,
    make_dir,
    node_dir,
    remove_dir,
    sshd_pid,
)
from mesh_push.lab.system import ip_batch, ip_batch_argv, ip_json, netns_list, pid_alive, run, start

UNIT_DIR = "/etc/systemd/system/multi-user.target.wants"
BOOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def lab_name(inventory: Path | None, name: str | None) -> str:
    """The lab meant by -i / --name; with neither, the only lab there is."""
    if name:
        if not addresses_name_ok(name):
            raise LabError(f"{name!r} is not a lab name (1 to 6 lowercase letters or digits)")
        return name
    if inventory is not None:
        from mesh_push.inventory import load

        mesh = load(inventory)
        if mesh.lab is None:
            raise LabError(f"{inventory} has no `lab:` section")
        return mesh.lab.name
    labs = known_labs()
    if len(labs) == 1:
        return labs[0]
    if not labs:
        raise LabError("no lab is up: give -i INVENTORY or --name NAME")
    raise LabError(f"several labs are up ({', '.join(labs)}): say which with --name")


def addresses_name_ok(name: str) -> bool:
    from mesh_push.inventory.schema import LAB_NAME

    return bool(LAB_NAME.match(name))


def load_state(name: str) -> LabState:
    state = LabState.load(name)
    if state is None:
        raise LabError(f"lab {name} is not up (no {Path('/run/mesh-push/lab') / name}/state.json)")
    return state


# --------------------------------------------------------------------------- up


def leftovers(name: str) -> list[str]:
    found = [f"namespace {ns}" for ns in netns_list() if ns.startswith(ns_prefix(name))]
    ctl = ifname(name, IF_CONTROLLER)
    if ctl in netns.links_with_prefix(ns_prefix(name)):
        found.append(f"link {ctl}")
    if node_dir(name, "x").parent.parent.exists():
        found.append(f"directory {node_dir(name, 'x').parent.parent}")
    return found


def check_free(plan: LabPlan) -> None:
    if found := leftovers(plan.name):
        raise LabError(
            f"lab {plan.name} already exists ({', '.join(found[:4])}"
            f"{', ...' if len(found) > 4 else ''}): "
            f"run `mesh-push lab down --name {plan.name}` first"
        )
    clashes = addresses.overlaps(plan.network, ip_json("addr"), ip_json("route"))
    if clashes:
        raise LabError(
            f"lab.network {plan.network} overlaps what this machine already has: "
            + "; ".join(clashes)
            + ". Choose another lab.network (198.18.0.0/15 is meant for labs); nothing was changed."
        )


@dataclass(frozen=True)
class VmTimes:
    accel: str  # tcg or kvm
    image_seconds: float | None  # building the image; None when it came from the cache
    boot_seconds: float  # from starting the guests until every one answered over ssh


@dataclass(frozen=True)
class UpResult:
    state: LabState
    seconds: float
    vm: VmTimes | None = None


BOOT_TIMEOUT = 600.0  # five guests under TCG on two busy cores: about a minute and a half


def up(inventory: Path, progress: Callable[[str], None] = lambda _msg: None) -> UpResult:
    from mesh_push.inventory import load

    t0 = time.monotonic()
    mesh = load(inventory)
    plan = addresses.plan(mesh)
    check_free(plan)
    images: dict[str, image.Image] = {}
    if plan.kind == "vm":
        guest_nodes = [n for n in plan.nodes if plan.is_guest(n)]
        vm.require_tools(sorted({n.arch for n in guest_nodes}))
        flavours = sorted({image.flavour_of(n.init, n.arch) for n in guest_nodes})
        for flavour in flavours:
            if image.cached(flavour) is None:
                slow = (
                    "about 3 min"
                    if image.FLAVOURS[flavour].arch == "amd64"
                    else "under qemu-user, up to 40 min"
                )
                progress(f"building the {flavour} guest image once (Debian {image.SUITE}, "
                         f"{slow}) into {image.CACHE}")  # fmt: skip
            images[flavour] = image.ensure(flavour)
    # KVM is probed with an image of this machine's own CPU; other guests get TCG anyway.
    native = [i for f, i in images.items() if not arch.emulated(image.FLAVOURS[f].arch)]
    img = next(iter(native), None)
    booting = bool(images)
    netns.ensure_mount_points()
    lab = make_dir(plan.name)
    # Record what is about to exist before creating it: a crash leaves a complete list.
    state = LabState(
        plan,
        str(inventory.resolve()),
        namespaces=plan.namespaces,
        root_links=[ifname(plan.name, IF_CONTROLLER)],
    )
    state.save()
    try:
        node_dirs = {n.alias: node_dir(plan.name, n.alias) for n in plan.nodes}
        for d in node_dirs.values():
            d.mkdir(mode=0o700, parents=True)
        keygens = [start(argv) for argv, _ in sshd.keygen_jobs(lab, node_dirs)]
        ip_batch(netns.root_create_lines(plan))
        netns.disable_ipv6(ifname(plan.name, IF_CONTROLLER))
        ip_batch(netns.controller_lines(plan))
        routers = [n for n in plan.nodes if n.role == "router"]
        netns.configure(plan, [nat.wan_job(plan), *(nat.router_job(plan, r) for r in routers)])
        # vm kind: guests carry their own sshd; only the routers are namespace nodes.
        ns_nodes = [n for n in plan.nodes if not plan.is_guest(n)]
        guests = {n.alias: node_dirs[n.alias] for n in plan.nodes if plan.is_guest(n)}
        for proc in keygens:
            _, err = proc.communicate(timeout=60)
            if proc.returncode:
                raise LabError(f"ssh-keygen failed: {err.strip()}", EXIT_FAILED)
        (lab / sshd.CLIENT_KEY).chmod(0o600)
        for n in ns_nodes:
            sshd.write_node_files(n, node_dirs[n.alias], lab, plan.login)
        users.write_files(plan.login, lab, [node_dirs[n.alias] for n in ns_nodes])
        names = served_names(plan)  # static hosts known by DNS name: the lab is their DNS
        for n in plan.nodes:
            netns.write_hosts_file(node_dirs[n.alias], n.alias, names)
        times = None
        if booting:
            accel = vm.accelerator(img, lab) if img is not None else "tcg"
            progress(f"booting {len(guests)} guest(s) under {accel}")
            t_boot = time.monotonic()
            vm.start(plan, guests, lab, images, accel)
        keepers = netns.start_keepers([(n, node_dirs[n.alias]) for n in ns_nodes])
        sshd.start(keepers, {a: node_dirs[a] for a in keepers})
        sshd.write_client_files(plan, lab, node_dirs)
        if booting:
            vm.wait_ssh(lab, guests, BOOT_TIMEOUT)
            built = [i.built_seconds for i in images.values() if i.built_seconds is not None]
            times = VmTimes(accel, sum(built) if built else None, time.monotonic() - t_boot)
        state.phase = "up"
        state.save()
    except BaseException:
        # Leave nothing half-built behind, whatever went wrong (Ctrl-C included).
        down(plan.name)
        raise
    return UpResult(state, time.monotonic() - t0, times)


# --------------------------------------------------------------------------- down


def down(name: str) -> list[str]:
    """Remove everything of lab `name` that exists; safe to run twice or after a crash."""
    state = LabState.load(name)
    prefix = ns_prefix(name)
    present = set(netns_list())
    namespaces = {ns for ns in present if ns.startswith(prefix)}
    if state:
        namespaces |= {ns for ns in state.namespaces if ns in present}
    removed: list[str] = []
    # QEMU by the pids in its pid files first; whatever else runs in the namespaces next.
    guests = [d for d in node_dir(name, "x").parent.glob("*") if (d / vm.PID_FILE).exists()]
    removed += [f"QEMU pid {pid}" for pid in vm.stop(guests)]
    netns.kill_namespaces(sorted(namespaces))
    ctl = ifname(name, IF_CONTROLLER)
    links = set(state.root_links if state else []) | {ctl}
    existing = [ln for ln in netns.links_with_prefix(prefix) if ln in links]
    # The root end goes first: deleting a namespace frees its veths only asynchronously.
    ip_batch([f"link delete {ln}" for ln in existing], force=True)
    removed += [f"link {ln}" for ln in existing]
    netns.delete_namespaces(sorted(namespaces))
    removed += [f"namespace {ns}" for ns in sorted(namespaces)]
    lab = node_dir(name, "x").parent.parent
    if lab.exists():
        remove_dir(name)
        removed.append(f"directory {lab}")
    return removed


# --------------------------------------------------------------------------- status


def status(name: str) -> dict[str, Any]:
    state = LabState.load(name)
    present = set(netns_list())
    ctl = ifname(name, IF_CONTROLLER)
    out: dict[str, Any] = {
        "name": name,
        "phase": state.phase if state else None,
        "inventory": state.inventory if state else None,
        "controller_link": ctl if ctl in netns.links_with_prefix(ns_prefix(name)) else None,
        "nodes": [],
        "stray_namespaces": [],
    }
    planned: set[str] = set()
    if state:
        out["network"] = str(state.plan.network)
        out["controller"] = str(state.plan.controller)
        out["cuts"] = [list(c) for c in state.cuts]
        planned = set(state.plan.namespaces)
        out["kind"] = state.plan.kind
        guests = [n.alias for n in state.plan.nodes if state.plan.is_guest(n)]
        answers = vm.probe_ssh(state.dir, guests) if guests else {}
        for n in state.plan.nodes:
            kp, sp = keeper_pid(name, n.alias), sshd_pid(name, n.alias)
            sshd_alive = pid_alive(sp)
            if n.alias in answers:
                # A guest: QEMU keeps it alive; its sshd is inside, alive if it answers.
                kp, sp, sshd_alive = vm.qemu_pid(node_dir(name, n.alias)), None, answers[n.alias]
            out["nodes"].append(
                {
                    "alias": n.alias,
                    "kind": n.kind,
                    "namespace": n.ns,
                    "namespace_exists": n.ns in present,
                    "address": f"{n.address}/{n.prefixlen}",
                    "wan_address": str(n.wan_address),
                    "jump": n.jump,
                    "keeper_pid": kp,
                    "keeper_alive": pid_alive(kp),
                    "sshd_pid": sp,
                    "sshd_alive": sshd_alive,
                    "vm": n.alias in answers,
                }
            )
    out["stray_namespaces"] = sorted(
        ns for ns in present if ns.startswith(ns_prefix(name)) and ns not in planned
    )
    return out


def all_names() -> list[str]:
    names = set(known_labs())
    for ns in netns_list():
        head = ns.split("-", 1)[0]
        if "-" in ns and addresses_name_ok(head):
            names.add(head)
    return sorted(names)


# --------------------------------------------------------------------------- exec


def exec_argv(name: str, host: str, argv: Sequence[str]) -> list[str]:
    state = load_state(name)
    node = state.plan.node(host)
    if state.plan.is_guest(node):
        if vm.qemu_pid(node_dir(name, node.alias)) is None:
            raise LabError(f"{host} of lab {name} is not running (its QEMU is gone)", EXIT_FAILED)
        return vm.exec_argv(state.dir, node.alias, argv)
    pid = keeper_pid(name, node.alias)
    if not pid_alive(pid):
        raise LabError(f"{host} of lab {name} is not running (its keeper is gone)", EXIT_FAILED)
    assert pid is not None
    return netns.enter(pid, argv or ["sh"])


def exec_run(
    name: str, host: str, argv: Sequence[str], timeout: float | None = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        exec_argv(name, host, argv), capture_output=True, text=True, timeout=timeout
    )


# --------------------------------------------------------------------------- cut / heal


def _pair(state: LabState, a: str, b: str) -> tuple[str, str]:
    na, nb = state.plan.node(a), state.plan.node(b)
    if na.alias == nb.alias:
        raise LabError(f"cut and heal take two different hosts, not {a} twice")
    if na.wan_address == nb.wan_address:
        raise LabError(f"{a} and {b} share one wan address: the wan cannot separate them")
    x, y = sorted((na.alias, nb.alias))
    return (x, y)


def set_cut(name: str, a: str, b: str, cut: bool) -> LabState:
    state = load_state(name)
    pair = _pair(state, a, b)
    cuts = [c for c in state.cuts if c != pair] + ([pair] if cut else [])
    run(
        netns.in_netns(addresses.wan_ns(name), ["nft", "-f", "-"]),
        input=nat.cuts_script(state.plan, cuts),
    )
    state.cuts = cuts
    state.save()
    return state


# --------------------------------------------------------------------------- reboot


@dataclass(frozen=True)
class BootRun:
    unit: str
    argv: list[str]
    returncode: int
    ignore_failure: bool
    output: str


def reboot(name: str, host: str, timeout: float = 120) -> list[BootRun] | vm.Reboot:
    """A namespace host: emulated (below). A guest: a real reboot by its own init, waited
    for."""
    state = load_state(name)
    node = state.plan.node(host)
    ndir = node_dir(name, node.alias)
    if state.plan.is_guest(node):
        return vm.reboot(state.dir, node, ndir, max(timeout, 30))
    netns.kill_namespaces([node.ns])
    keep = {"lo", ifname(name, IF_UNDERLAY)}
    if node.role == "router":
        keep.add(ifname(name, IF_LAN))
    # A reboot forgets links, routes, addresses and firewall rules: start again from the
    # lab's own configuration of the underlay. Links of killed processes (wireguard-go's
    # TUN) vanish on their own, maybe while we list them: retry until none is left.
    for _ in range(50):
        gone = [i for i in netns.interfaces(node.ns) if i not in keep]
        if not gone:
            break
        run(
            [*ip_batch_argv(node.ns, force=True)],
            input="".join(f"link delete {i}\n" for i in gone),
            check=False,
        )
    else:
        raise LabError(f"links of {host} would not go away: {', '.join(gone)}", EXIT_FAILED)
    ip_batch(
        ["route flush table main", *(f"address flush dev {i}" for i in sorted(keep - {"lo"}))],
        netns=node.ns,
        force=True,
    )
    ip_batch(
        [ln for ln in netns.node_lines(state.plan, node) if ln != "link set lo up"],
        netns=node.ns,
    )
    run(netns.in_netns(node.ns, ["nft", "flush", "ruleset"]))
    if node.role == "router":
        argv, script = nat.router_job(state.plan, node)
        run(argv, input=script)
    # A new keeper: new mount namespace, so /run/wireguard is a fresh, empty tmpfs.
    pids = netns.start_keepers([(node, ndir)])
    sshd.start(pids, {node.alias: ndir})
    return run_boot_units(pids[node.alias], timeout)


def parse_unit(text: str) -> list[tuple[list[str], bool]]:
    """ExecStartPre/ExecStart/ExecStartPost commands of a unit's [Service], in order, each with
    whether its failure is ignored (the `-` prefix)."""
    phases: dict[str, list[tuple[list[str], bool]]] = {
        "ExecStartPre": [],
        "ExecStart": [],
        "ExecStartPost": [],
    }
    section = ""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if buf:
            line = buf + " " + line
            buf = ""
        if line.endswith("\\"):
            buf = line[:-1].rstrip()
            continue
        logical.append(line)
    for line in logical:
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service" or "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if key not in phases:
            continue
        if not value:
            phases[key].clear()  # systemd: an empty assignment resets the list
            continue
        ignore = False
        while value and value[0] in "-@:+!":
            ignore = ignore or value[0] == "-"
            value = value[1:]
        argv = shlex.split(value)
        if argv:
            phases[key].append((argv, ignore))
    return [*phases["ExecStartPre"], *phases["ExecStart"], *phases["ExecStartPost"]]


def run_boot_units(keeper: int, timeout: float) -> list[BootRun]:
    listing = run(
        netns.enter(keeper, ["find", UNIT_DIR, "-mindepth", "1", "-maxdepth", "1",
                             "-name", "*.service", "-printf", "%f\\n"]),
        check=False,
    )  # fmt: skip
    units = sorted(u for u in listing.stdout.split("\n") if u)
    runs: list[BootRun] = []
    env = {"PATH": BOOT_PATH, "LANG": "C.UTF-8"}
    for unit in units:
        text = run(netns.enter(keeper, ["cat", f"{UNIT_DIR}/{unit}"]), check=False).stdout
        for argv, ignore in parse_unit(text):
            try:
                done = subprocess.run(
                    netns.enter(keeper, argv),
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    env=env,
                    cwd="/",
                    preexec_fn=netns.at_host_priority,  # as its sshd's sessions run
                )
                code, output = done.returncode, (done.stdout + done.stderr)[-2000:]
            except subprocess.TimeoutExpired:
                code, output = 124, f"still running after {timeout:g} s"
            runs.append(BootRun(unit, argv, code, ignore, output))
            if code != 0 and not ignore:
                break  # systemd stops a unit at its first failing command
    failed = [r for r in runs if r.returncode != 0 and not r.ignore_failure]
    if failed:
        detail = "; ".join(f"{r.unit}: `{shlex.join(r.argv)}` exit {r.returncode}" for r in failed)
        raise LabError(f"rebooted, but boot units failed: {detail}", EXIT_FAILED)
    return runs


def lab_processes_rss_kib(name: str) -> int:
    """Memory the lab's processes use (sum of VmRSS), for the benchmark and status."""
    total = 0
    prefix = ns_prefix(name)
    for pid in netns.pids_in(ns for ns in netns_list() if ns.startswith(prefix)):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total
