"""Command line: the arguments of every command, and `main`. A command's handler (handlers.py,
or the lab's) is imported only when it runs, so that `mesh-push --help` stays fast: only
argparse and the standard library load for it."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mesh_push import __version__
from mesh_push.core.problems import InventoryError, UsageError, printable
from mesh_push.files.fsutil import LocalFileError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# --check: every host answered and some would change (as `terraform plan -detailed-exitcode`
# says 2, which is taken here by usage errors).
EXIT_PENDING = 3
# The question before a change was answered no: nothing was changed, and no host failed.
EXIT_DECLINED = 4
SERVE_INTERVAL_S = 30.0  # status --serve: one gather (a round trip per host) every 30 s

# A handler: a function, or the name of one in handlers.py (imported when it runs).
Handler = Callable[[argparse.Namespace], int] | str


def _inventory_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i", "--inventory", required=True, type=Path, metavar="FILE", help="inventory YAML file"
    )


def _templates_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--templates",
        type=Path,
        metavar="DIR",
        help="render the scripts from the plan with DIR's templates where DIR has one under the "
        "same path as the built-in ones (stp/host.sh.j2, evpn/host.sh.j2, scripts/down.sh.j2, "
        "scripts/reresolve.sh.j2, include/...); the host programs are always the built-in ones",
    )


def _check_args(p: argparse.ArgumentParser, what: str, diff: bool = True) -> None:
    p.add_argument(
        "--check",
        action="store_true",
        help=f"change nothing: connect, gather, and have each host say what {what} would "
        "change there now, as the same 'changed:' lines (exit 0: nothing, 3: changes pending)",
    )
    if diff:
        p.add_argument(
            "--diff",
            action="store_true",
            help="with --check: also show how each host's script differs from the one it "
            "last applied",
        )


def _graph_arg(p: argparse.ArgumentParser) -> None:
    # The formats are picture.FORMATS; not imported here, so that --help stays fast.
    p.add_argument(
        "--graph",
        type=Path,
        metavar="FILE",
        help="also write the mesh as a Graphviz picture: FILE.dot or FILE.gv is the DOT text; "
        "FILE.svg or FILE.png is drawn by Graphviz's `dot` (Debian package graphviz), with the "
        "DOT beside it as FILE.dot (docs/graph.md)",
    )


def _limit_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--limit", metavar="HOST[,HOST...]", help=what)


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of tables")


_CHANGES = (
    "0 done (and verified), 1 a host failed or verification failed, 2 bad usage or a bad "
    "inventory (nothing pushed), 3 with --check: changes pending, 4 answered no at the "
    "prompt (nothing changed)"
)
# What each command's --help says of it: whether it reaches hosts, and its exit codes
# (docs/ci.md#exit-codes). 130 if interrupted, for all.
CONTRACT: dict[str, tuple[str, str]] = {
    "plan": ("no (the inventory, and the state file if there is one)",
             "0 the inventory is valid, 2 it is not (every problem on stderr) or bad usage"),
    "render": ("no (the inventory, the state file, the keystore)",
               "0 written, 2 bad usage, inventory or template"),
    "up": ("yes, over SSH: every host (--limit: some)", _CHANGES),
    "rotate-keys": ("yes, over SSH: every host", _CHANGES),
    "down": ("yes, over SSH: every host (HOST...: those, and every other host to drop them)",
             _CHANGES),
    "status": ("yes, over SSH: every host (--limit: some), read only",
               "0 healthy, 1 a host unhealthy or unreachable (or the tree not the planned "
               "one), 2 bad usage or a bad inventory"),
    "measure": ("yes, over SSH: every host (--limit: some), read only (--write changes the "
                "inventory)",
                "0 measured, 1 a host failed, 2 bad usage or a bad inventory, 3 with --diff: "
                "the new latencies would change the plan"),
    "import": ("yes, over SSH: every host, read only",
               "0 the inventory is complete, 1 something could not be mapped or a host could "
               "not be read (each said on stderr and in the file), 2 bad usage or a bad input"),
}  # fmt: skip


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    example: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    contacts, exits = CONTRACT[name]
    p = sub.add_parser(
        name,
        help=summary,
        description=f"{summary}\n\ncontacts hosts: {contacts}\nexit codes: {exits}; 130 "
        f"if interrupted\n\nexample:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesh-push",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Build a private layer-2 network over SSH: one WireGuard tunnel per link, one VXLAN\n"
            "wire on top of it, every wire a port of an STP bridge on each host.\n\n"
            "typical use:\n"
            "  mesh-push plan -i inventory/seed.yaml     # what the network will be\n"
            "  mesh-push up -i inventory/seed.yaml       # build it\n"
            "  mesh-push status -i inventory/seed.yaml   # is it healthy?\n\n"
            "exit codes: 0 ok, 1 a host failed or is unhealthy, 2 bad usage or bad inventory,\n"
            "  3 (with --check) changes pending, 4 answered no at a prompt (nothing changed);\n"
            "  each command's --help says its own, and whether it contacts hosts"
        ),
    )
    parser.add_argument("--version", action="version", version=f"mesh-push {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _command(
        sub,
        "plan",
        "Validate the inventory and show hosts, links, addresses, VNIs, MTUs and push waves.",
        "mesh-push plan -i inventory/seed.yaml --json\n"
        "  mesh-push plan -i inventory/seed.yaml --cut bob,epsilon --graph cut.svg\n"
        "  mesh-push plan -i inventory/seed.yaml --zone > vpn.example.zone",
        "plan",
    )
    _inventory_arg(p)
    _json_arg(p)
    _graph_arg(p)
    p.add_argument(
        "--cut",
        metavar="A,B",
        help="show what 802.1D converges to after losing the wire between hosts A and B "
        "(--graph then draws that tree)",
    )
    p.add_argument(
        "--zone",
        nargs="?",
        const="forward",
        choices=("forward", "reverse", "reverse6"),
        help="print the hosts' names (mesh.names) as a DNS zone for a server of your own: "
        "A (and AAAA) records; `reverse`: the bridge network's PTR records; `reverse6`: those "
        "of its IPv6 /64",
    )
    p.add_argument(
        "--all-pairs",
        action="store_true",
        help="list every host pair and its path over the tree (by default only up to 50 hosts; "
        "past that a summary: n hosts make n(n-1)/2 pairs)",
    )

    p = _command(
        sub,
        "render",
        "Write one idempotent shell script per host into a directory (made 0700 if missing; "
        "files 0600). Reads the keystore, writes nothing else.",
        "mesh-push render -i inventory/seed.yaml -o out/",
        "render",
    )
    _inventory_arg(p)
    _templates_arg(p)
    _json_arg(p)
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")

    p = _command(
        sub,
        "up",
        "Build or update the mesh: facts from every host, plan, confirm, apply in waves "
        "(static hosts, then dynamic and NAT; jump hosts first), verify handshakes, STP, pings.",
        "mesh-push up -i inventory/lab.yaml --yes",
        "up",
    )
    _inventory_arg(p)
    _templates_arg(p)
    _json_arg(p)
    ssh_args(p)
    _trust_state_arg(p)
    p.add_argument("-y", "--yes", action="store_true", help="apply without asking")
    p.add_argument("--no-verify", action="store_true", help="skip the checks after applying")
    p.add_argument(
        "--adopt",
        action="store_true",
        help="take over interfaces of the planned names that someone else made (by hand, "
        "wg-quick) where they match the plan, in place, keys kept; what does not match is "
        "still refused (docs/adopt.md)",
    )
    _check_args(p, "`up`")
    g = p.add_argument_group("rollouts (see docs/ci.md)")
    g.add_argument(
        "--limit",
        metavar="HOST[,HOST...]",
        help="only these hosts; their peers elsewhere are left alone (never removed)",
    )
    g.add_argument(
        "--with-peers",
        action="store_true",
        help="with --limit: also update the limited hosts' peers on other hosts",
    )
    g.add_argument(
        "--serial", type=int, metavar="N", help="apply in batches of N hosts, the first a canary"
    )
    g.add_argument(
        "--max-fail",
        default="100%",
        metavar="N|N%",
        help="stop before the next batch once more hosts than this have failed (default 100%%)",
    )
    g.add_argument(
        "--confirm-timeout",
        type=float,
        metavar="SECONDS",
        help="each host arms a rollback to its previous state; unless the controller confirms "
        "over a fresh SSH connection within SECONDS of the apply's end, the host rolls back by "
        "itself (5 to 86400)",
    )

    p = _command(
        sub,
        "rotate-keys",
        "Give hosts new WireGuard key pairs (made on the hosts with `keys: host`, so no private "
        "key leaves them), update every peer, verify. All hosts unless some are named. With "
        "--psk, new pre-shared keys for their links instead.",
        "mesh-push rotate-keys -i inventory/lab.yaml rho pi0 --yes\n"
        "  mesh-push rotate-keys -i inventory/lab.yaml --psk rho --yes\n"
        "  mesh-push rotate-keys -i inventory/lab.yaml --older-than 90d --yes",
        "rotate_keys",
    )
    _inventory_arg(p)
    _templates_arg(p)
    _json_arg(p)
    ssh_args(p)
    _trust_state_arg(p)
    p.add_argument(
        "hosts", nargs="*", metavar="HOST[,HOST...]", help="hosts to rotate (default: all)"
    )
    p.add_argument("-y", "--yes", action="store_true", help="rotate without asking")
    p.add_argument(
        "--psk",
        action="store_true",
        help="replace the pre-shared keys of the hosts' links (mesh.psk), not their key pairs",
    )
    p.add_argument(
        "--older-than",
        type=age_seconds,
        metavar="AGE",
        help="rotate exactly the keys older than AGE (90d, 12h, 30m or seconds), as `status` "
        "tells their age: key pairs, or with --psk the links' pre-shared keys; names no host",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the checks after applying")
    _check_args(p, "the rotation (new keys stood in for, none made)")

    p = _command(
        sub,
        "down",
        "Remove everything `up` created on every host (interfaces, wireguard-go, scripts, "
        "boot hook). Private keys stay unless --purge. With HOST...: take only those off "
        "the live mesh: every other host drops them first (an `up` of the mesh without "
        "them, verified), then they are taken down and removed from the inventory with "
        "their links (comments kept; numbers and VNIs that would move written down).",
        "mesh-push down -i inventory/lab.yaml --yes pi0",
        "down",
    )
    p.add_argument(
        "hosts",
        nargs="*",
        metavar="HOST[,HOST...]",
        help="hosts to take off the mesh (default: the whole mesh)",
    )
    p.add_argument("--limit", metavar="HOST[,HOST...]", help="the same as naming the hosts")
    _inventory_arg(p)
    _templates_arg(p)
    _json_arg(p)
    ssh_args(p)
    p.add_argument("-y", "--yes", action="store_true", help="do it without asking")
    p.add_argument("--purge", action="store_true", help="also delete the hosts' private keys")
    p.add_argument(
        "--keep",
        action="store_true",
        help="hand the mesh back instead: remove mesh-push's marks, state and boot unit and "
        "leave the interfaces running (docs/adopt.md)",
    )
    _check_args(p, "`down`", diff=False)

    p = _command(
        sub,
        "status",
        "Gather WireGuard and STP state from every host at once and judge the mesh.",
        "mesh-push status -i inventory/lab.yaml --json\n"
        "  mesh-push status -i inventory/lab.yaml --graph status.svg",
        "status",
    )
    _inventory_arg(p)
    _json_arg(p)
    _graph_arg(p)
    ssh_args(p)
    _limit_arg(p, "only these hosts' state and their wires (the others are not contacted)")
    p.add_argument(
        "--watch", type=positive_seconds, metavar="SECONDS", help="refresh every SECONDS"
    )
    g = p.add_argument_group("Prometheus (metrics: docs/monitoring.md)")
    g.add_argument(
        "--prometheus",
        type=Path,
        metavar="FILE",
        help="also write the metrics to FILE in node_exporter's textfile format, atomically "
        "(name it *.prom in the textfile collector's directory); rewritten at every --watch",
    )
    g.add_argument(
        "--serve",
        type=listen_address,
        metavar="ADDR:PORT",
        help="serve /metrics and /healthz on ADDR:PORT (e.g. 127.0.0.1:9105; port 0: any free "
        "one) until SIGINT or SIGTERM, gathering every --interval seconds in the background: "
        "however many scrapes arrive, one gather runs at a time",
    )
    g.add_argument(
        "--interval",
        type=positive_seconds,
        metavar="SECONDS",
        help=f"with --serve: seconds between gathers (default {SERVE_INTERVAL_S:g})",
    )

    _measure(sub)
    from mesh_push.lab import cli as lab_cli

    lab_cli.register(sub)
    return parser


def _measure(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _command(
        sub,
        "measure",
        "Ping every link's far end over WireGuard from both ends and show (or --write into "
        "the inventory) the median round trips as latency_ms.",
        "mesh-push measure -i inventory/lab.yaml --write",
        "measure",
    )
    _inventory_arg(p)
    p.add_argument("--count", type=int, default=10, metavar="N", help="pings per link end (10)")
    _limit_arg(p, "only these hosts' links, measured from these hosts' ends")
    p.add_argument(
        "--write", action="store_true", help="rewrite the links' latency_ms in the inventory"
    )
    p.add_argument(
        "--diff",
        action="store_true",
        help="write nothing; show what the new latencies would change in the plan (stp: the "
        "root, each wire end's state, each pair's path; evpn: each pair's path) and exit 3 "
        "when it would change",
    )
    _json_arg(p)
    ssh_args(p)

    p = _command(
        sub,
        "import",
        "Read a network built by hand (or by wg-quick) into an inventory: its WireGuard "
        "interface, VXLAN wires, bridge and STP timers, each host's number, endpoint kind and "
        "public key, one link per wire pair. The input lists only the hosts and how to reach "
        "them. Then `up --adopt` takes it over in place (docs/adopt.md).",
        "mesh-push import -i hosts.yaml -o inventory/mine.yaml",
        "import_network",
    )
    p.add_argument(
        "-i", "--inventory", required=True, type=Path, metavar="FILE",
        help="the hosts and how to reach them (hosts:, ssh:; the rest is read from the hosts)",
    )  # fmt: skip
    p.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE",
        help="the inventory to write (never over an existing file without --force)",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    _json_arg(p)
    ssh_args(p)


def age_seconds(text: str) -> float:
    """An age: a number with d, h, m or s after it (seconds without); argparse makes anything
    else a usage error (exit 2)."""
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}.get(text[-1:], 0)
    number = text[:-1] if unit else text
    if not unit:
        unit = 1
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 90d, 12h, 30m or 3600")
    return float(int(number) * unit)


def positive_seconds(text: str) -> float:
    """A number of seconds above 0; argparse makes anything else a usage error (exit 2)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # `not 0 < value < inf` also refuses nan, which every comparison answers False.
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def listen_address(text: str) -> tuple[str, int]:
    from mesh_push.monitoring.serve import parse_listen

    try:
        return parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _trust_state_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-state",
        action="store_true",
        help="give peers a public key from the state file even where none of them has it and "
        "its host is not reached (after a rotation made from another controller)",
    )


def ssh_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accept-new",
        action="store_true",
        help="trust a host key seen for the first time and add it to known_hosts "
        "(a changed key is refused even then)",
    )
    p.add_argument(
        "-K",
        "--ask-become-pass",
        action="store_true",
        help="ask once for the sudo password of hosts whose sudo wants one (or set "
        "MESH_PUSH_BECOME_PASSWORD_FILE; see docs/hosts.md)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        if isinstance(handler, str):
            from mesh_push.cli import handlers

            handler = getattr(handlers, handler)
        assert callable(handler)
        code: int = handler(args)
    except InventoryError as e:
        print(f"mesh-push: the inventory has {len(e.problems)} problem(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, LocalFileError) as e:
        print(f"mesh-push: {printable(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mesh-push: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
