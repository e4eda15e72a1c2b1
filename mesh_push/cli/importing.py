"""`mesh-push import` (docs/adopt.md): the hosts' networks read into a new inventory."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from mesh_push import inventory
from mesh_push.core.problems import UsageError
from mesh_push.engine.session import Access


def run(args: argparse.Namespace, access: Access, say: Callable[[str], None]) -> int:
    """Exit 0 when the inventory written is complete, 1 when something was not mapped."""
    import yaml

    from mesh_push.core.problems import InventoryError
    from mesh_push.engine import commands
    from mesh_push.engine.state_file import save_public_keys
    from mesh_push.files.fsutil import atomic_write
    from mesh_push.inventory import imported
    from mesh_push.inventory.files import read_text
    from mesh_push.views import run as run_view

    mesh = inventory.load_hosts(args.inventory)
    out: Path = args.output
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists: import writes a new inventory (--force replaces it)")
    progress = run_view.Progress(enabled=not args.json)
    found, errors = commands.read_networks(mesh, access, progress.host)
    for name, why in errors.items():
        say(f"{name}: not read: {why}")
    raw = yaml.safe_load(read_text(args.inventory))
    name = out.stem if mesh.name_from_file else mesh.name
    result = imported.build(mesh, raw, found, name)
    atomic_write(out, result.text, mode=0o644, make_dir=False)
    try:
        # The hosts' public keys where `up` keeps them (mesh.state, <name>.state.json).
        save_public_keys(inventory.load(out), result.public_keys)
    except InventoryError:
        say(f"{out} does not load yet (see what was not mapped): no state file written")
    if args.json:
        from mesh_push.views import console

        console.print_json(
            {"output": str(out), "complete": result.complete, "not_mapped": result.notes}
        )
    for note in result.notes:
        say(f"not mapped: {note}")
    if result.complete:
        say(f"wrote {out}: complete; next `mesh-push plan -i {out}`")
        return 0
    say(f"wrote {out}: {len(result.notes)} thing(s) not mapped (comments at its top)")
    return 1
