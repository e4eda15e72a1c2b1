"""`mesh-push status`: the status command's loop (--watch) and its output."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .commands import status
from .connect import Access
from .model import Mesh


def run(
    mesh: Mesh,
    access: Access,
    as_json: bool,
    watch: float | None,
    graph_file: Path | None = None,
    wrote: Callable[[list[Path]], None] | None = None,
) -> int:
    """`graph_file`: also draw each round there (--graph); `wrote` hears which files."""
    from . import graph, picture, report

    while True:
        p, j = status(mesh, access)
        if graph_file is not None:
            written = picture.write(graph.status_graph(p, j).source, graph_file)
            if wrote is not None:
                wrote(written)
        if as_json:
            report.print_json(report.status_json(p, j), lines=watch is not None)
        else:
            report.show_status(p, j, clear=watch is not None)
        if watch is None:
            return 0 if j.healthy else 1
        time.sleep(watch)
