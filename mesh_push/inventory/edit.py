"""Editing the user's inventory in place (`measure --write`, the mesh's name at its first
`up`): the result must load, and replaces the file atomically, a symbolic link staying one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mesh_push.core.problems import InventoryError
from mesh_push.files.fsutil import LocalFileError, atomic_write
from mesh_push.inventory.schema import parse


class RewriteError(LocalFileError):
    """The inventory cannot be edited safely: nothing is written (exit 2)."""


def replace(path: Path, new_text: str) -> None:
    try:
        parse(new_text, path)
    except InventoryError as e:
        raise RewriteError(f"the edited inventory would not load: {e}") from None
    # A symbolic link (an inventory kept in a repository, linked from elsewhere) stays one:
    # the file it names is what is replaced.
    real = path.resolve()
    atomic_write(real, new_text, mode=stat.S_IMODE(os.stat(real).st_mode))
