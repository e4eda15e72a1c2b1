"""`mesh-push status`: the status command's loops (--watch, --serve) and its outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mesh_push.core.model import Mesh
from mesh_push.engine.commands import status
from mesh_push.engine.connect import Access
from mesh_push.files.fsutil import LocalFileError
from mesh_push.monitoring.metrics import Snapshot


def gather(mesh: Mesh, access: Access) -> Snapshot:
    """One gather, judged and timed: the same one round trip per host as plain `status`."""
    start = time.monotonic()
    p, j = status(mesh, access)
    return Snapshot(p, j, time.monotonic() - start, time.time())


def write_textfile(path: Path, snap: Snapshot) -> None:
    """node_exporter's textfile format, written to a temporary file and renamed over `path`
    (prometheus_client's write_to_textfile), so the collector never reads half a file."""
    from prometheus_client import write_to_textfile

    from mesh_push.monitoring import metrics

    try:
        write_to_textfile(str(path), metrics.registry(metrics.Latest(metrics.families(snap))))
    except OSError as e:
        raise LocalFileError(f"cannot write {path}: {e.strerror or e}") from None


def run(
    mesh: Mesh,
    access: Access,
    as_json: bool,
    watch: float | None,
    prometheus: Path | None = None,
    graph_file: Path | None = None,
    wrote: Callable[[list[Path]], None] | None = None,
) -> int:
    """`prometheus`: also write the metrics there; `graph_file`: also draw each round there
    (--graph); `wrote` hears which files the drawing wrote."""
    from mesh_push.files import picture
    from mesh_push.modes.stp import graph
    from mesh_push.views import report

    while True:
        snap = gather(mesh, access)
        p, j = snap.plan, snap.judgement
        if prometheus is not None:
            write_textfile(prometheus, snap)
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


def serve(mesh: Mesh, access: Access, listen: tuple[str, int], interval: float) -> int:
    from mesh_push.monitoring import serve as server

    return server.serve(mesh.name, lambda: gather(mesh, access), listen, interval)
