"""What the tree change of an `up` costs, predicted from the tree the hosts run now (`up
--check`, docs/adopt.md): every wire end whose STP state the plan changes, and the root's
move. A port that stays forwarding keeps carrying traffic (Linux keeps a port's state when
only its role changes); one that goes from blocking (or from nothing: a new wire) to
forwarding listens and learns for 2 × forward_delay first, and paths that crossed a port
that blocks wait for that too. Pure."""

from __future__ import annotations

from mesh_push.host.state import HostState
from mesh_push.modes.base import Plan
from mesh_push.modes.judgement import Reconvergence
from mesh_push.modes.stp.judge import root_seen, seen
from mesh_push.modes.stp.plan import own


def reconvergence(plan: Plan, states: dict[str, HostState]) -> Reconvergence:
    p = own(plan)
    expected = p.tree.expected
    changes = []
    for lk in p.mesh.links:
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            st = states.get(here)
            if st is None:
                continue
            s = seen(st).stp
            port = s.ports.get(p.mesh.stp.wire_prefix + there) if s else None
            planned = "blocking" if (here, there) in expected.blocking else "forwarding"
            now = port.state if port else "not a port yet"
            if now != planned:
                changes.append(f"{here}'s end of {here}–{there}: {now} → {planned}")
    roots = sorted({r for st in states.values() if (r := root_seen(p, st))})
    if roots and roots != [expected.root]:
        changes.insert(0, f"root: {', '.join(roots)} → {expected.root}")
    seconds = 2 * p.mesh.stp.forward_delay if changes else 0
    return Reconvergence(seconds, changes)
