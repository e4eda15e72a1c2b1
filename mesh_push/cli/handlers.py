"""What each command does with its arguments: read the inventory, call one command of the
engine (engine/commands.py, engine/offline.py), and print what it returns through the views.
Imported only when a command runs (cli/__init__.py); each handler imports what only it needs,
so that `plan` and `render` load no SSH."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mesh_push import inventory, modes
from mesh_push.cli import EXIT_DECLINED, EXIT_FAILED, EXIT_OK, EXIT_PENDING, SERVE_INTERVAL_S
from mesh_push.core.model import Link, Mesh
from mesh_push.core.problems import UsageError, printable
from mesh_push.core.values import host_list
from mesh_push.engine import rollout
from mesh_push.files import become, picture
from mesh_push.modes import names
from mesh_push.modes.topology import Edge, edge

if TYPE_CHECKING:
    from mesh_push.engine.changes import Changes
    from mesh_push.engine.commands import Run
    from mesh_push.engine.session import Access


def plan(args: argparse.Namespace) -> int:
    from mesh_push.engine import offline
    from mesh_push.views import console, reports

    if args.graph:
        picture.check(args.graph)
    mesh = inventory.load(args.inventory)
    cut = _parse_cut(args.cut, mesh) if args.cut else None
    _warn(mesh)
    p = offline.plan(mesh)
    if args.zone:
        if not mesh.names_domain:
            raise UsageError("plan --zone: the inventory sets no mesh.names.domain")
        if args.zone == "reverse6" and not mesh.bridge_network6:
            raise UsageError("plan --zone reverse6: the mesh has no IPv6 (mesh.bridge.network6)")
        zone = {"forward": names.zone, "reverse": names.reverse_zone}.get(
            args.zone, names.reverse_zone6
        )
        sys.stdout.write(zone(p, int(time.time())))
        return EXIT_OK
    if args.graph:
        _wrote(picture.write(modes.of(mesh).graph(p, None, cut).source, args.graph))
    if args.json:
        console.print_json(reports.plan_json(p, cut, args.all_pairs))
    else:
        reports.show_plan(p, cut, args.all_pairs)
    return EXIT_OK


def _wrote(paths: list[Path]) -> None:
    # stderr: with --json, stdout holds the one JSON document.
    print("mesh-push: wrote " + ", ".join(printable(str(x)) for x in paths), file=sys.stderr)


def _parse_cut(text: str, mesh: Mesh) -> Edge:
    """`A,B`, a host list of two (the command line's one spelling); `A-B`, the older one, is
    still read where it names two hosts."""
    names = {h.name for h in mesh.hosts}
    for i, ch in enumerate(text):
        a, b = text[:i], text[i + 1 :]
        if ch in ",-" and a in names and b in names:
            if any({lk.a, lk.b} == {a, b} for lk in mesh.links):
                return edge(a, b)
            raise UsageError(f"--cut {text}: there is no link between {a} and {b}")
    raise UsageError(f"--cut {text}: expected HOST,HOST with two hosts of the inventory")


def render(args: argparse.Namespace) -> int:
    from mesh_push.engine import offline
    from mesh_push.host.templates import load_templates
    from mesh_push.views import console

    mesh = inventory.load(args.inventory)
    written, stand_ins = offline.render(mesh, load_templates(args.templates), args.output)
    if stand_ins:
        print(
            f"mesh-push: public keys not known yet for {', '.join(stand_ins)}: the scripts "
            "carry stand-in keys that no host has (`mesh-push up` makes the real ones)",
            file=sys.stderr,
        )
    if args.json:
        console.print_json({"scripts": {path.stem: str(path) for path in written}})
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


def _access(args: argparse.Namespace) -> Access:
    from mesh_push.engine.session import Access

    try:
        password = become.password(args.ask_become_pass)
    except become.BecomePasswordError as e:
        raise UsageError(str(e)) from None
    return Access(args.accept_new, password, getattr(args, "trust_state", False))


def up(args: argparse.Namespace) -> int:
    mesh = inventory.load(args.inventory)
    _warn(mesh)
    return _converge(args, mesh, (), ())


def _warn(mesh: Mesh) -> None:
    from mesh_push.inventory.hosts import warnings

    for text in warnings(mesh):
        _say(f"warning: {mesh.source}: {text}")


def rotate_keys(args: argparse.Namespace) -> int:
    from mesh_push.engine import keys

    mesh = inventory.load(args.inventory)
    if getattr(args, "older_than", None) is not None:
        if args.hosts:
            raise UsageError("--older-than chooses the keys by age: name no host")
        return _rotate_old(args, mesh, float(args.older_than))
    names = host_list(args.hosts) or [h.name for h in mesh.hosts]
    unknown = sorted(set(names) - {h.name for h in mesh.hosts})
    if unknown:
        raise UsageError(f"not hosts of {mesh.source}: {', '.join(unknown)}")
    if not args.psk:
        return _converge(args, mesh, names, ())
    if not keys.links_of(mesh, names):
        raise UsageError(
            f"no link of {', '.join(names)} has a pre-shared key (mesh.psk, or a link's psk)"
        )
    return _converge(args, mesh, (), names)


def _rotate_old(args: argparse.Namespace, mesh: Mesh, seconds: float) -> int:
    """`rotate-keys --older-than`: the ages as `status` reads them, then exactly the key pairs
    (or with --psk the links' pre-shared keys) past `seconds`."""
    from mesh_push.engine import commands

    _plan, j = commands.status(mesh, _access(args))
    states = {n: v.state for n, v in j.hosts.items() if v.state is not None}
    for name in sorted(set(j.hosts) - set(states)):
        _say(f"{name}: not reached, its keys' age unknown: not rotated")
    if args.psk:
        old_links = [
            lk for lk in mesh.links
            if lk.psk and any(
                (st := states.get(h)) is not None and (age := st.psk_age(lk.other(h))) is not None
                and age > seconds
                for h in lk.hosts
            )
        ]  # fmt: skip
        what = ", ".join(f"{lk.a}–{lk.b}" for lk in old_links)
        if old_links:
            _say(f"pre-shared keys older than {seconds:.0f} s: {what}")
            return _converge(args, mesh, (), old_links)
    else:
        old = [n for n, st in states.items() if (age := st.key_age()) is not None and age > seconds]
        if old:
            _say(f"key pairs older than {seconds:.0f} s: {', '.join(old)}")
            return _converge(args, mesh, old, ())
    _say(f"no key is older than {seconds:.0f} s: nothing to rotate")
    if args.json:
        from mesh_push.views import console

        console.print_json({"ok": True, "rotated": []})
    return EXIT_OK


def _limit(args: argparse.Namespace, mesh: Mesh) -> frozenset[str] | None:
    try:
        return rollout.parse_limit(getattr(args, "limit", None), [h.name for h in mesh.hosts])
    except rollout.RolloutError as e:
        raise UsageError(str(e)) from None


def _rollout_options(args: argparse.Namespace, mesh: Mesh) -> rollout.Options:
    names = [h.name for h in mesh.hosts]
    try:
        opts = rollout.Options(
            limit=_limit(args, mesh),
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


def _converge(
    args: argparse.Namespace,
    mesh: Mesh,
    rotate: Sequence[str],
    rotate_psk: Sequence[str | Link],
) -> int:
    from mesh_push.engine import commands
    from mesh_push.host.templates import load_templates
    from mesh_push.views import run as run_view

    opts = _rollout_options(args, mesh)
    templates = load_templates(args.templates)
    adopt = getattr(args, "adopt", False)
    if adopt and mesh.keys != "host":
        raise UsageError(
            "--adopt keeps each host's own key pair, which needs `mesh.keys: host` "
            f"({mesh.source} has keys: {mesh.keys})"
        )
    if args.diff and not args.check:
        raise UsageError("--diff goes with --check (it shows what would change)")
    progress = run_view.Progress(enabled=not args.json)
    if args.check:
        run = commands.check_up(
            mesh, _access(args), templates, opts, progress.host, rotate, args.diff, rotate_psk,
            adopt,
        )  # fmt: skip
        if fields := _pins(mesh, run.mesh or mesh):
            _say(f"up will write {_said(fields)} into {mesh.source} (the names this mesh keeps)")
        return _finish(args, run)
    if rotate and not _confirm(f"make new key pairs for {', '.join(rotate)}?", args.yes):
        return EXIT_DECLINED
    if rotate_psk and not _confirm(
        "make new pre-shared keys for the links of "
        + ", ".join(x if isinstance(x, str) else f"{x.a}–{x.b}" for x in rotate_psk)
        + "?",
        args.yes,
    ):
        return EXIT_DECLINED
    access = _access(args)

    def ask(todo: Changes, _reports: object, used: Mesh) -> bool:
        if not args.json:
            run_view.show_changes(todo)
        yes = _confirm(f"apply to {len(todo.to_apply)} host(s)?", args.yes)
        if yes:
            pin(used)
        return yes

    def pin(used: Mesh) -> None:
        """Once, before any host is changed: the names the mesh's interfaces carry go into its
        inventory, so that moving the file, or new defaults, never rename the mesh."""
        fields = _pins(mesh, used)
        if fields and not pinned:
            from mesh_push.inventory import pin_name

            pin_name.write(mesh.source, fields)
            pinned.append(mesh.name)
            _say(f"wrote {_said(fields)} into {mesh.source} (the names this mesh keeps)")

    pinned: list[str] = []

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
        adopt=adopt,
    )
    if not run.cancelled and run.mesh is not None:
        pin(run.mesh)  # (nothing to apply: the mesh is up under those names already)
    return _finish(args, run)


def _said(fields: dict[tuple[str, ...], str]) -> str:
    return ", ".join(f"mesh.{'.'.join(f)}: {v}" for f, v in fields.items())


def _pins(mesh: Mesh, used: Mesh) -> dict[tuple[str, ...], str]:
    """What `up` writes into the inventory: the name taken from the file, and the interface
    names the hosts had under the old defaults (engine/names.py)."""
    fields: dict[tuple[str, ...], str] = {}
    if mesh.name_from_file:
        fields[("name",)] = mesh.name
    kept = mesh.unnamed - used.unnamed
    if "wireguard.interface" in kept:
        fields[("wireguard", "interface")] = used.wg_interface
    if "bridge.name" in kept:
        fields[("bridge", "name")] = used.bridge
    return fields


def _say(text: str) -> None:
    # stderr: with --json, stdout holds the one JSON document.
    print(f"mesh-push: {printable(text)}", file=sys.stderr)


def down(args: argparse.Namespace) -> int:
    from mesh_push.engine import commands
    from mesh_push.host.templates import load_templates
    from mesh_push.views import run as run_view

    mesh = inventory.load(args.inventory)
    templates = load_templates(args.templates)
    gone = host_list([*args.hosts, *([args.limit] if args.limit else [])])
    if gone and args.keep:
        raise UsageError("--keep hands the whole mesh back: it takes no HOST or --limit")
    if args.keep and args.purge:
        raise UsageError(
            "--keep leaves the interfaces running, and their key files with them: no --purge"
        )
    if gone:
        return _remove(args, mesh, gone)
    what = "hand mesh {} back on {} host(s), its interfaces running" if args.keep else (
        "remove mesh {} from {} host(s)"
    )  # fmt: skip
    if not args.check and not _confirm(what.format(mesh.name, len(mesh.hosts)) + "?", args.yes):
        return EXIT_DECLINED
    progress = run_view.Progress(enabled=not args.json)
    return _finish(
        args,
        commands.down(
            mesh, _access(args), templates, args.purge, progress.host, args.check,
            keep=args.keep,
        ),
    )  # fmt: skip


def _remove(args: argparse.Namespace, mesh: Mesh, gone: list[str]) -> int:
    """`down HOST...`: the inventory's edit is made (in memory) and checked before any host
    is contacted, and written only once every host did its part."""
    from mesh_push.engine import commands
    from mesh_push.host.templates import load_templates
    from mesh_push.inventory import remove
    from mesh_push.views import run as run_view

    gone = list(dict.fromkeys(gone))
    rest, new_text = remove.without(mesh, mesh.source.read_text(encoding="utf-8"), gone)
    links = len(mesh.links) - len(rest.links)
    what = f"{', '.join(gone)} and {links} link(s)"
    if args.check:
        _say(f"down would remove {what} from {mesh.source}")
    elif not _confirm(
        f"take {', '.join(gone)} off mesh {mesh.name} (every other host drops them first) "
        f"and remove {what} from {mesh.source}?",
        args.yes,
    ):
        return EXIT_DECLINED
    progress = run_view.Progress(enabled=not args.json)
    run = commands.remove(
        mesh, rest, _access(args), load_templates(args.templates), args.purge, progress.host,
        args.check,
    )  # fmt: skip
    if run.ok and not run.checked:
        remove.write(mesh.source, new_text)
        _say(f"removed {what} from {mesh.source}")
    return _finish(args, run)


def _finish(args: argparse.Namespace, run: Run) -> int:
    from mesh_push.views import console
    from mesh_push.views import run as run_view

    if args.json:
        console.print_json(run_view.check_json(run) if run.checked else run_view.run_json(run))
    else:
        run_view.show_run(run)
    if run.cancelled:
        return EXIT_DECLINED
    if not run.ok:
        return EXIT_FAILED
    return EXIT_PENDING if run.checked and run.pending else EXIT_OK


def status(args: argparse.Namespace) -> int:
    from mesh_push.monitoring import status as monitor
    from mesh_push.views import console, reports

    if args.graph:
        picture.check(args.graph)  # before connecting to any host
    if args.serve is not None:
        return _serve(args)
    if args.interval is not None:
        raise UsageError("--interval goes with --serve (--watch SECONDS refreshes a table)")
    mesh = inventory.load(args.inventory)
    limit = _limit(args, mesh)
    access = _access(args)
    while True:
        snap = monitor.gather(mesh, access, limit)
        p, j = snap.plan, snap.judgement
        if args.prometheus is not None:
            monitor.write_textfile(args.prometheus, snap)
        if args.graph is not None:
            _wrote(picture.write(modes.of(mesh).graph(p, j, None).source, args.graph))
        if args.json:
            console.print_json(reports.status_json(p, j), lines=args.watch is not None)
        else:
            reports.show_status(p, j, clear=args.watch is not None)
        if args.watch is None:
            return EXIT_OK if j.healthy else EXIT_FAILED
        time.sleep(args.watch)


def _serve(args: argparse.Namespace) -> int:
    from mesh_push.monitoring import serve
    from mesh_push.monitoring import status as monitor

    others = {
        "--watch": args.watch,
        "--json": args.json,
        "--prometheus": args.prometheus,
        "--graph": args.graph,
    }
    clash = [option for option, value in others.items() if value]
    if clash:
        raise UsageError(f"--serve does not go with {', '.join(clash)}")
    mesh = inventory.load(args.inventory)
    limit = _limit(args, mesh)
    access = _access(args)
    try:
        interval = args.interval or SERVE_INTERVAL_S
        return monitor.run_server(mesh, access, args.serve, interval, limit)
    except serve.ListenError as e:
        raise UsageError(str(e)) from None


def measure(args: argparse.Namespace) -> int:
    from mesh_push.engine import commands
    from mesh_push.engine.measure import format_ms
    from mesh_push.inventory import latencies
    from mesh_push.views import console, reports

    if not 1 <= args.count <= 1000:
        raise UsageError("--count must be between 1 and 1000")
    mesh = inventory.load(args.inventory)
    text = args.inventory.read_text(encoding="utf-8")
    diff = getattr(args, "diff", False)
    if diff and args.write:
        raise UsageError("--diff shows what --write would do to the plan: one or the other")
    if args.write or diff:
        latencies.rewrite(text, {})  # refuse early what could not be written, before pinging
    results, errors = commands.measure(mesh, _access(args), args.count, _limit(args, mesh))
    written = None
    new = {
        frozenset((r.a, r.b)): format_ms(r.measured_ms)
        for r in results
        if r.measured_ms is not None
    }
    if args.write:
        written = latencies.write(args.inventory, text, new)
    changes = _plan_changes(mesh, text, new) if diff else None
    if args.json:
        data = reports.measure_json(results, errors, args.count, written)
        console.print_json(data if changes is None else {**data, "plan_changes": changes})
    else:
        reports.show_measure(results, errors, written)
        if changes is not None:
            reports.show_plan_changes(changes)
    ok = all(r.measured_ms is not None for r in results)
    if not ok:
        return EXIT_FAILED
    return EXIT_PENDING if changes else EXIT_OK


def _plan_changes(mesh: Mesh, text: str, new: dict[frozenset[str], str]) -> list[str]:
    """`measure --diff`: the plan with the measured latencies against the inventory's."""
    from mesh_push.engine import offline
    from mesh_push.inventory import latencies

    measured = inventory.parse(latencies.rewrite(text, new), mesh.source)
    return modes.of(mesh).plan_changes(offline.plan(mesh), offline.plan(measured))


def import_network(args: argparse.Namespace) -> int:
    from mesh_push.cli import importing

    return importing.run(args, _access(args), _say)
