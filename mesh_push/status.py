"""`mesh-push status`: the status command's loop (--watch) and its output."""

from __future__ import annotations

import time

from .commands import status
from .connect import Access
from .model import Mesh


def run(mesh: Mesh, access: Access, as_json: bool, watch: float | None) -> int:
    from . import report

    while True:
        p, j = status(mesh, access)
        if as_json:
            report.print_json(report.status_json(p, j), lines=watch is not None)
        else:
            report.show_status(p, j, clear=watch is not None)
        if watch is None:
            return 0 if j.healthy else 1
        time.sleep(watch)
