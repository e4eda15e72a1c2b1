"""Inventory YAML → validated `Mesh`. Every problem is collected before anything is raised,
each with its file, line and YAML path."""

from __future__ import annotations

import os
from pathlib import Path

from mesh_push.core.model import Mesh
from mesh_push.inventory.files import read_text
from mesh_push.inventory.schema import parse

__all__ = ["load", "load_hosts", "parse"]


def load(path: str | os.PathLike[str]) -> Mesh:
    file = Path(path)
    return parse(read_text(file), file)


def load_hosts(path: str | os.PathLike[str]) -> Mesh:
    """`mesh-push import`'s input: an inventory of hosts and how to reach them."""
    file = Path(path)
    return parse(read_text(file), file, hosts_only=True)
