"""`mesh-push status`: gather every host at once, judge against the plan, say why."""

from __future__ import annotations

import time

from . import keys, observe, plan, push
from .judge import judge
from .model import Mesh


def collect(
    mesh: Mesh, accept_new: bool, become_password: str | None = None
) -> tuple[plan.Plan, dict[str, observe.HostState], dict[str, str]]:
    """One SSH round trip per host after connecting, all hosts at once. Returns the plan,
    the states read and, for each host that could not be read, why."""
    command = observe.gather_command(mesh.wg_interface, mesh.bridge)
    session = push.connect_all(
        mesh, command, accept_new, lambda _n, _m: None, become_password=become_password
    )
    session.close()
    states = {n: observe.parse(out, mesh.bridge) for n, out in session.outputs.items()}
    p = plan.build(mesh, keys.public_keys(mesh))
    errors = {n: r.message for n, r in session.reports.items() if n not in states}
    return p, states, errors


def run(
    mesh: Mesh,
    as_json: bool,
    accept_new: bool,
    watch: float | None,
    become_password: str | None = None,
) -> int:
    from . import report

    while True:
        p, states, errors = collect(mesh, accept_new, become_password)
        j = judge(p, states, errors)
        if as_json:
            report.print_json(report.status_json(p, j))
        else:
            report.show_status(p, j, clear=watch is not None)
        if watch is None:
            return 0 if j.healthy else 1
        time.sleep(watch)
