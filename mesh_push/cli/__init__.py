"""Command line. Heavy modules (fabric, rich, jinja2) are imported inside commands, so that
`mesh-push --help` stays fast."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mesh_push import __version__
from mesh_push.core.problems import InventoryError, printable
from mesh_push.files.fsutil import LocalFileError

if TYPE_CHECKING:
    from mesh_push.core.model import Mesh
    from mesh_push.engine import rollout
    from mesh_push.engine.changes import Changes
    from mesh_push.engine.commands import Run
    from mesh_push.engine.connect import Access

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# --check: every host answered and some would change (as `terraform plan -detailed-exitcode`
# says 2, which is taken here by usage errors).
EXIT_PENDING = 3
SERVE_INTERVAL_S = 30.0  # status --serve: one gather (a round trip per host) every 30 s

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A user's mistake outside the inventory: printed without a traceback, exit 2."""


def _inventory_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i", "--inventory", required=True, type=Path, metavar="FILE", help="inventory YAML file"
    )


def _templates_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--templates",
        type=Path,
        metavar="DIR",
        help="render the host and down scripts (host.sh.j2, reresolve.sh.j2, down.sh.j2) from "
        "the templates in DIR instead of the built-in ones",
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


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of tables")


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    example: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=summary,
        description=f"{summary}\n\nexample:\n  {example}",
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
            "  3 (with --check) changes pending"
        ),
    )
    parser.add_argument("--version", action="version", version=f"mesh-push {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _command(
        sub,
        "plan",
        "Validate the inventory and show hosts, links, addresses, VNIs, MTUs and push waves.",
        "mesh-push plan -i inventory/seed.yaml --json\n"
        "  mesh-push plan -i inventory/seed.yaml --cut bob-epsilon --graph cut.svg",
        cmd_plan,
    )
    _inventory_arg(p)
    _json_arg(p)
    _graph_arg(p)
    p.add_argument(
        "--cut",
        metavar="A-B",
        help="show what 802.1D converges to after losing the wire between hosts A and B "
        "(--graph then draws that tree)",
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
        cmd_render,
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
        cmd_up,
    )
    _inventory_arg(p)
    _templates_arg(p)
    _json_arg(p)
    ssh_args(p)
    p.add_argument("-y", "--yes", action="store_true", help="apply without asking")
    p.add_argument("--no-verify", action="store_true", help="skip the checks after applying")
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
        "  mesh-push rotate-keys -i inventory/lab.yaml --psk rho --yes",
        cmd_rotate_keys,
    )
    _inventory_arg(p)
    _templates_arg(p)
    _json_arg(p)
    ssh_args(p)
    p.add_argument("hosts", nargs="*", metavar="HOST", help="hosts to rotate (default: all)")
    p.add_argument("-y", "--yes", action="store_true", help="rotate without asking")
    p.add_argument(
        "--psk",
        action="store_true",
        help="replace the pre-shared keys of the hosts' links (mesh.psk), not their key pairs",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the checks after applying")
    _check_args(p, "the rotation (new keys stood in for, none made)")

    p = _command(
        sub,
        "down",
        "Remove everything `up` created on every host (interfaces, wireguard-go, scripts, "
        "boot hook). Private keys stay unless --purge.",
        "mesh-push down -i inventory/lab.yaml --yes",
        cmd_down,
    )
    _inventory_arg(p)
    _templates_arg(p)
    _json_arg(p)
    ssh_args(p)
    p.add_argument("-y", "--yes", action="store_true", help="do it without asking")
    p.add_argument("--purge", action="store_true", help="also delete the hosts' private keys")
    _check_args(p, "`down`", diff=False)

    p = _command(
        sub,
        "status",
        "Gather WireGuard and STP state from every host at once and judge the mesh.",
        "mesh-push status -i inventory/lab.yaml --json\n"
        "  mesh-push status -i inventory/lab.yaml --graph status.svg",
        cmd_status,
    )
    _inventory_arg(p)
    _json_arg(p)
    _graph_arg(p)
    ssh_args(p)
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

    for register in _extra_commands():
        register(sub)
    return parser


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


def become_password(args: argparse.Namespace) -> str | None:
    from mesh_push.files import become

    try:
        return become.password(args.ask_become_pass)
    except become.BecomePasswordError as e:
        raise UsageError(str(e)) from None


def _extra_commands() -> list[
    Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
]:
    from mesh_push.engine import measure
    from mesh_push.lab import cli as lab_cli

    return [lab_cli.register, measure.register]


def cmd_plan(args: argparse.Namespace) -> int:
    from mesh_push import inventory
    from mesh_push.engine import keys
    from mesh_push.files import picture
    from mesh_push.modes import plan
    from mesh_push.modes.stp import graph
    from mesh_push.views import report

    if args.graph:
        picture.check(args.graph)
    mesh = inventory.load(args.inventory)
    _stp_only(mesh, {"--graph": args.graph, "--cut": args.cut})
    # Read only: `plan` makes no key, and writes nothing but --graph.
    known = keys.public_keys(mesh)
    p = plan.build(mesh, known)
    cut = _parse_cut(args.cut, mesh) if args.cut else None
    if args.graph:
        _wrote(picture.write(graph.plan_graph(p, cut).source, args.graph))
    if args.json:
        report.print_json(report.plan_json(p, cut, args.all_pairs))
    else:
        report.show_plan(p, cut, args.all_pairs)
    return EXIT_OK


def _stp_only(mesh: Mesh, options: dict[str, object]) -> None:
    """Options that draw or simulate the spanning tree: an evpn mesh has none."""
    given = [option for option, value in options.items() if value]
    if mesh.mode == "evpn" and given:
        raise UsageError(f"{', '.join(given)}: the spanning tree's, and mesh {mesh.name} is evpn")


def _wrote(paths: list[Path]) -> None:
    # stderr: with --json, stdout holds the one JSON document.
    print("mesh-push: wrote " + ", ".join(printable(str(x)) for x in paths), file=sys.stderr)


def _parse_cut(text: str, mesh: Mesh) -> tuple[str, str]:
    from mesh_push.modes.stp.tree import edge

    names = {h.name for h in mesh.hosts}
    for i, ch in enumerate(text):
        a, b = text[:i], text[i + 1 :]
        if ch == "-" and a in names and b in names:
            if any({lk.a, lk.b} == {a, b} for lk in mesh.links):
                return edge(a, b)
            raise UsageError(f"--cut {text}: there is no link between {a} and {b}")
    raise UsageError(f"--cut {text}: expected HOST-HOST with two hosts of the inventory")


def cmd_render(args: argparse.Namespace) -> int:
    from mesh_push import inventory
    from mesh_push.engine import keys
    from mesh_push.host import templates as render
    from mesh_push.modes import plan

    mesh = inventory.load(args.inventory)
    # Read only: `render` makes no key; it writes the scripts, and nothing else.
    known = keys.public_keys(mesh)
    missing = [h.name for h in mesh.hosts if h.name not in known]
    if missing:
        if mesh.keys == "controller":
            why = (
                f": they are made by `mesh-push up` (keys: controller), into {mesh.keystore}; "
                f"or set public_key in {mesh.source}.{keys.legacy_hint(mesh)}"
            )
        else:
            why = (
                f": run `mesh-push up` once (keys: host), set public_key in {mesh.source}, "
                "or use `keys: controller`"
            )
        raise UsageError("public keys unknown for " + ", ".join(missing) + why)
    p = plan.build(mesh, known)
    written = render.write_all(p, args.output, render.load_templates(args.templates))
    if args.json:
        from mesh_push.views.report import print_json

        print_json({"scripts": {path.stem: str(path) for path in written}})
    else:
        for path in written:
            print(path)
    return EXIT_OK


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("not on a terminal and --yes not given: refusing to change hosts")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_up(args: argparse.Namespace) -> int:
    return _converge(args, rotate=None)


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from mesh_push import inventory

    mesh = inventory.load(args.inventory)
    names = args.hosts or [h.name for h in mesh.hosts]
    unknown = sorted(set(names) - {h.name for h in mesh.hosts})
    if unknown:
        raise UsageError(f"not hosts of {mesh.source}: {', '.join(unknown)}")
    if args.psk:
        from mesh_push.engine import psk

        if not psk.links_of(mesh, names):
            raise UsageError(
                f"no link of {', '.join(names)} has a pre-shared key (mesh.psk, or a link's psk)"
            )
        return _converge(args, rotate=None, rotate_psk=names)
    return _converge(args, rotate=names)


def _rollout_options(args: argparse.Namespace, mesh: Mesh) -> rollout.Options:
    from mesh_push.engine import rollout

    names = [h.name for h in mesh.hosts]
    try:
        opts = rollout.Options(
            limit=rollout.parse_limit(getattr(args, "limit", None), names),
            with_peers=getattr(args, "with_peers", False),
            serial=getattr(args, "serial", None),
            max_fail=getattr(args, "max_fail", "100%"),
            confirm_timeout=getattr(args, "confirm_timeout", None),
        )
        opts.budget(len(names))
        rollout.batches(names, opts.serial)
        rollout.check_confirm_timeout(opts.confirm_timeout)
    except rollout.RolloutError as e:
        raise UsageError(str(e)) from None
    return opts


def _access(args: argparse.Namespace) -> Access:
    from mesh_push.engine.connect import Access

    return Access(args.accept_new, become_password(args))


def _converge(
    args: argparse.Namespace, rotate: list[str] | None, rotate_psk: list[str] | None = None
) -> int:
    from mesh_push import inventory
    from mesh_push.engine import commands
    from mesh_push.host import templates as render
    from mesh_push.views import report

    mesh = inventory.load(args.inventory)
    opts = _rollout_options(args, mesh)
    templates = render.load_templates(args.templates)
    if args.diff and not args.check:
        raise UsageError("--diff goes with --check (it shows what would change)")
    progress = report.Progress(enabled=not args.json)
    if args.check:
        return _finish(
            args,
            commands.check_up(
                mesh, _access(args), templates, opts, progress.host, rotate, args.diff, rotate_psk
            ),
        )
    if rotate is not None and not _confirm(
        f"make new key pairs for {', '.join(rotate)}?", args.yes
    ):
        return EXIT_FAILED
    if rotate_psk is not None and not _confirm(
        f"make new pre-shared keys for the links of {', '.join(rotate_psk)}?", args.yes
    ):
        return EXIT_FAILED
    access = _access(args)

    def ask(todo: Changes, _reports: object) -> bool:
        if not args.json:
            report.show_changes(todo)
        return _confirm(f"apply to {len(todo.to_apply)} host(s)?", args.yes)

    run = commands.up(
        mesh,
        access,
        templates,
        opts,
        progress.host,
        ask,
        rotate,
        verify_after=not args.no_verify,
        rotate_psk=rotate_psk,
    )
    return _finish(args, run)


def cmd_down(args: argparse.Namespace) -> int:
    from mesh_push import inventory
    from mesh_push.engine import commands
    from mesh_push.host import templates as render
    from mesh_push.views import report

    mesh = inventory.load(args.inventory)
    templates = render.load_templates(args.templates)
    if not args.check and not _confirm(
        f"remove mesh {mesh.name} from {len(mesh.hosts)} host(s)?", args.yes
    ):
        return EXIT_FAILED
    progress = report.Progress(enabled=not args.json)
    return _finish(
        args,
        commands.down(mesh, _access(args), templates, args.purge, progress.host, args.check),
    )


def _finish(args: argparse.Namespace, run: Run) -> int:
    from mesh_push.views import report

    if args.json:
        report.print_json(report.check_json(run) if run.checked else report.run_json(run))
    else:
        report.show_run(run)
    if not run.ok:
        return EXIT_FAILED
    return EXIT_PENDING if run.checked and run.pending else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from mesh_push import inventory
    from mesh_push.files import picture
    from mesh_push.monitoring.status import run

    if args.graph:
        picture.check(args.graph)  # before connecting to any host
    if args.serve is None:
        if args.interval is not None:
            raise UsageError("--interval goes with --serve (--watch SECONDS refreshes a table)")
        mesh = inventory.load(args.inventory)
        _stp_only(mesh, {"--graph": args.graph})
        return run(mesh, _access(args), args.json, args.watch, args.prometheus, args.graph, _wrote)
    others = {
        "--watch": args.watch,
        "--json": args.json,
        "--prometheus": args.prometheus,
        "--graph": args.graph,
    }
    clash = [option for option, value in others.items() if value]
    if clash:
        raise UsageError(f"--serve does not go with {', '.join(clash)}")
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    from mesh_push import inventory
    from mesh_push.monitoring import serve, status

    mesh = inventory.load(args.inventory)
    access = _access(args)
    try:
        return status.serve(mesh, access, args.serve, args.interval or SERVE_INTERVAL_S)
    except serve.ListenError as e:
        raise UsageError(str(e)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
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
