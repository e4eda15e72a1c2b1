"""`mesh-push status` for monitoring: one gather judged and timed (a Snapshot), written as
node_exporter's textfile, or served over HTTP by serve.py."""

from __future__ import annotations

import time
from pathlib import Path

from mesh_push.core.model import Mesh
from mesh_push.engine.commands import status
from mesh_push.engine.session import Access
from mesh_push.files.fsutil import LocalFileError
from mesh_push.monitoring import metrics, serve
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

    try:
        write_to_textfile(str(path), metrics.registry(metrics.Latest(metrics.families(snap))))
    except OSError as e:
        raise LocalFileError(f"cannot write {path}: {e.strerror or e}") from None


def run_server(mesh: Mesh, access: Access, listen: tuple[str, int], interval: float) -> int:
    return serve.serve(mesh.name, lambda: gather(mesh, access), listen, interval)
