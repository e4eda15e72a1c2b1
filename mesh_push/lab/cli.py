"""`mesh-push lab ...`: real hosts on this machine. Only argparse at import time: the lab's
modules load when a lab command runs, so `mesh-push --help` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], int]

EPILOG = """\
commands:
  up       build one network namespace + sshd per inventory host (NAT hosts behind a router),
           or with `lab: {kind: vm}` one QEMU guest per host
  down     remove everything a lab made (also after a crashed `up`)
  status   what exists: namespaces, addresses, keeper and sshd processes
  exec     run a command on a lab host:  mesh-push lab exec bob -- ip -br addr
  cut      drop underlay traffic between two hosts (a,b);  heal  restores it
  reboot   kill a host's processes and links, restart sshd and its boot units (a guest:
           a real reboot by its own init)
  move     give a host known by DNS name (or a dynamic one) a new wan address

example:
  sudo mesh-push lab up -i inventory/lab.yaml
  ssh -F /run/mesh-push/lab/mplab/ssh_config pi0 hostname
  sudo mesh-push lab down -i inventory/lab.yaml
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser(
        "lab",
        help="Real hosts on this machine for trying mesh-push (root only).",
        description="Real hosts on this machine: network namespaces, real sshds, NAT "
        "routers. Root only.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lab.set_defaults(handler=lambda _args: _usage(lab))
    cmds = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")

    p = _cmd(cmds, "up", "Build the lab of an inventory (it needs a `lab:` section).", _up)
    p.add_argument("-i", "--inventory", required=True, type=Path, metavar="FILE")
    _json(p)

    p = _cmd(cmds, "down", "Remove every namespace, link, process and file of a lab.", _down)
    _which(p)

    p = _cmd(cmds, "status", "Show what a lab (or every lab) consists of.", _status)
    _which(p)
    _json(p)

    p = _cmd(cmds, "exec", "Run a command inside a lab host (exit code passed through).", _exec)
    _which(p)
    p.add_argument("host", metavar="HOST")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")

    for name, summary, handler in (
        ("cut", "Drop underlay traffic between two hosts (idempotent).", _cut),
        ("heal", "Restore underlay traffic between two hosts (idempotent).", _heal),
    ):
        p = _cmd(cmds, name, summary, handler)
        _which(p)
        # Two hosts as every host list is written (`a,b`), or as two words (`a b`).
        p.add_argument("hosts", nargs="+", metavar="HOST,HOST")

    p = _cmd(
        cmds,
        "reboot",
        "Reboot one host: a guest for real (by its own init); a namespace host is emulated, "
        "then its boot units run.",
        _reboot,
    )
    _which(p)
    p.add_argument("host", metavar="HOST")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="per boot command; for a guest, for the whole reboot (120)",
    )

    p = _cmd(cmds, "move", "Give a host a new wan address, as a dynamic-DNS host gets.", _move)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = MOVE_EPILOG
    _which(p)
    p.add_argument("host", metavar="HOST", help="a static host known by DNS name, or a dynamic one")
    p.add_argument("address", metavar="ADDRESS", help="a free address of the lab's wan")
    _json(p)


def _cmd(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    exits = "the command's own" if name == "exec" else "0 done, 1 failed"
    description = (
        f"{summary}\n\ncontacts hosts: no (the lab's namespaces and guests on this machine, "
        f"as root)\nexit codes: {exits}, 2 bad usage or not root; 130 if interrupted"
    )
    p = cmds.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=_guarded(handler))
    return p


def _which(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-i", "--inventory", type=Path, metavar="FILE", help="the lab of this inventory")
    g.add_argument("--name", metavar="NAME", help="the lab called NAME (lab.name)")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of lines")


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        from mesh_push.lab.errors import LabError
        from mesh_push.lab.system import require_root

        try:
            require_root()
            return handler(args)
        except LabError as e:
            print(f"mesh-push: {e}", file=sys.stderr)
            return e.code

    return run


def _name(args: argparse.Namespace) -> str:
    from mesh_push.lab.ops import lab_name

    return lab_name(args.inventory, args.name)


def _up(args: argparse.Namespace) -> int:
    from mesh_push.files import become
    from mesh_push.lab import users
    from mesh_push.lab.ops import up

    result = up(args.inventory, progress=lambda msg: print(f"mesh-push: {msg}", file=sys.stderr))
    plan, lab, times = result.state.plan, result.state.dir, result.vm
    if args.json:
        extra: dict[str, Any] = {}
        if times:
            extra["vm"] = {
                "accel": times.accel,
                "image_seconds": None if times.image_seconds is None
                else round(times.image_seconds, 1),
                "boot_seconds": round(times.boot_seconds, 1),
            }  # fmt: skip
        _print_json(
            {"seconds": round(result.seconds, 3), "dir": str(lab), **plan.to_json(), **extra}
        )
        # (the sudo password, where there is one, is in the lab's directory: become_password)
        return 0
    print(f"lab {plan.name} is up in {result.seconds:.1f} s ({plan.network}, controller "
          f"{plan.controller})")  # fmt: skip
    if times:
        built = "cached" if times.image_seconds is None else f"built in {times.image_seconds:.0f} s"
        print(f"  QEMU guests ({times.accel}): image {built}, booted in {times.boot_seconds:.0f} s")
    for n in plan.nodes:
        via = f" via {n.jump}" if n.jump else ""
        print(f"  {n.alias:<16} {n.kind:<8} {n.address}{via}")
    print(f"try: ssh -F {lab / 'ssh_config'} {plan.nodes[0].alias} hostname")
    if plan.login != "root":
        print(f"hosts log in as {users.USER} with sudo; root may not log in")
    if plan.login == "sudo-password":
        print(
            f"the sudo password: {become.PASSWORD_FILE_ENV}={lab / users.PASSWORD_FILE} "
            "mesh-push up ..."
        )
    return 0


def _down(args: argparse.Namespace) -> int:
    from mesh_push.lab.ops import down

    name = _name(args)
    removed = down(name)
    print(f"lab {name}: " + (f"removed {len(removed)} things" if removed else "nothing to remove"))
    for item in removed:
        print(f"  {item}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from mesh_push.lab.ops import all_names, status

    names = [_name(args)] if (args.inventory or args.name) else all_names()
    labs = [status(n) for n in names]
    if args.json:
        _print_json(labs)
        return 0
    if not labs:
        print("no lab")
    for lab in labs:
        print(
            f"lab {lab['name']}: {lab['phase'] or 'no state'}, network {lab.get('network', '?')}, "
            f"controller link {lab['controller_link'] or 'absent'}"
        )
        for n in lab["nodes"]:
            if lab.get("kind") == "vm" and n["kind"] != "router":
                # A guest: QEMU is what keeps it; its sshd is inside, alive if it answers.
                procs = (f"qemu {_alive(n['keeper_pid'], n['keeper_alive'])}  sshd "
                         f"{'answers' if n['sshd_alive'] else 'DOES NOT ANSWER'}")  # fmt: skip
            else:
                procs = (f"keeper {_alive(n['keeper_pid'], n['keeper_alive'])}  sshd "
                         f"{_alive(n['sshd_pid'], n['sshd_alive'])}")  # fmt: skip
            print(
                f"  {n['alias']:<16} {n['kind']:<8} {n['address']:<18} ns "
                f"{'ok' if n['namespace_exists'] else 'MISSING'}  {procs}"
            )
        for a, b in lab.get("cuts", []):
            print(f"  cut: {a} <-> {b}")
        for ns in lab["stray_namespaces"]:
            print(f"  stray namespace: {ns}")
    healthy = all(n["sshd_alive"] and n["keeper_alive"] for lab in labs for n in lab["nodes"])
    return 0 if healthy else 1


def _alive(pid: int | None, alive: bool) -> str:
    return f"{pid} up" if alive else f"{pid or '-'} DOWN"


def _exec(args: argparse.Namespace) -> int:
    from mesh_push.lab.ops import exec_argv

    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    full = exec_argv(_name(args), args.host, argv)
    sys.stdout.flush()
    # Replace this process: exit code, signals and the terminal belong to the command.
    os.execvp(full[0], full)


def _cut(args: argparse.Namespace) -> int:
    return _set_cut(args, True)


def _heal(args: argparse.Namespace) -> int:
    return _set_cut(args, False)


def _set_cut(args: argparse.Namespace, cut: bool) -> int:
    from mesh_push.core.values import host_list
    from mesh_push.lab.errors import LabError
    from mesh_push.lab.ops import set_cut

    name = _name(args)
    pair = host_list(args.hosts)
    if len(pair) != 2:
        raise LabError(f"expected two hosts (HOST,HOST), got {len(pair)}: {' '.join(args.hosts)}")
    a, b = pair
    state = set_cut(name, a, b, cut)
    print(f"lab {name}: {'cut' if cut else 'healed'} {a} <-> {b}"
          f" ({len(state.cuts)} cut(s) now)")  # fmt: skip
    return 0


def _reboot(args: argparse.Namespace) -> int:
    from mesh_push.lab.ops import reboot
    from mesh_push.lab.vm import Reboot

    name = _name(args)
    runs = reboot(name, args.host, args.timeout)
    if isinstance(runs, Reboot):
        print(f"lab {name}: rebooted {args.host} ({runs.command}), its sshd answered again "
              f"after {runs.seconds:.1f} s; its own init runs its boot hooks")  # fmt: skip
        return 0
    print(f"lab {name}: rebooted {args.host}, {len(runs)} boot command(s) run")
    for r in runs:
        print(f"  {r.unit}: {' '.join(r.argv)} -> exit {r.returncode}")
    return 0


def _move(args: argparse.Namespace) -> int:
    from mesh_push.lab.move import move

    name = _name(args)
    res = move(name, args.host, args.address)
    old, new = res.old, res.new
    if args.json:
        _print_json(
            {
                "lab": name,
                "host": new.alias,
                "dns_name": new.dns_name,
                "old": str(old.address),
                "new": str(new.address),
                "changed": res.changed,
            }
        )
        return 0
    if not res.changed:
        print(f"lab {name}: {new.alias} is at {new.address} already")
        return 0
    print(f"lab {name}: moved {new.alias} from {old.address} to {new.address}")
    if new.dns_name:
        print(f"  every lab host now resolves {new.dns_name} to {new.address}")
    return 0


MOVE_EPILOG = """\
Nothing tells the mesh: peers of a host known by DNS name find it again by re-resolving the
name (mesh.wireguard.reresolve), those of a dynamic host when it sends to them. Its underlay
address, its sshd, the lab's ssh_config and known_hosts, the cut list and every lab host's
/etc/hosts (the lab's only DNS) follow the move.

example:
  sudo mesh-push lab move hub 198.18.0.40
"""


def _print_json(data: Any) -> None:
    from mesh_push.views.console import print_json

    print_json(data)  # strict JSON, as every --json
