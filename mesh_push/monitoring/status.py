"""`mesh-push status` for monitoring: one gather judged and timed (a Snapshot), written as
node_exporter's textfile, or served over HTTP by serve.py."""

from __future__ import annotations

import time
from pathlib import Path

from mesh_push import modes
from mesh_push.core.model import Mesh
from mesh_push.engine.commands import status
from mesh_push.engine.session import Access
from mesh_push.files import picture
from mesh_push.files.fsutil import atomic_write
from mesh_push.monitoring import metrics, page, serve
from mesh_push.monitoring.metrics import Snapshot


def gather(mesh: Mesh, access: Access, limit: frozenset[str] | None = None) -> Snapshot:
    """One gather, judged and timed: the same one round trip per host as plain `status`."""
    start = time.monotonic()
    p, j = status(mesh, access, limit)
    return Snapshot(p, j, time.monotonic() - start, time.time())


def write_textfile(path: Path, snap: Snapshot) -> None:
    """node_exporter's textfile format, written atomically (fsutil.atomic_write: a new
    temporary file, O_EXCL and O_NOFOLLOW, renamed over `path`), so the collector never reads
    half a file, and nobody who can write in its directory can aim the write elsewhere with
    a symbolic link (prometheus_client's write_to_textfile opens a predictable name)."""
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry(metrics.Latest(metrics.families(snap))))
    atomic_write(path, text, 0o644, make_dir=False)  # the collector's: a typo is an error


def run_server(
    mesh: Mesh,
    access: Access,
    listen: tuple[str, int],
    interval: float,
    limit: frozenset[str] | None = None,
) -> int:
    def page_of(snap: Snapshot) -> str:
        drawn = picture.svg(modes.of(mesh).graph(snap.plan, snap.judgement, None).source)
        return page.render(snap, drawn, interval)

    return serve.serve(
        mesh.name, lambda: gather(mesh, access, limit), listen, interval, page=page_of
    )
