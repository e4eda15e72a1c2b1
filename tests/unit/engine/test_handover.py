"""The key handover's rounds and programs (engine/handover.py): pure parts. The lab test
(tests/e2e/test_adopt_lab.py) measures what it loses."""

from __future__ import annotations

from mesh_push.engine import handover
from tests.unit.host.test_programs import seed_plan


def test_rounds_never_hold_both_ends_of_a_link() -> None:
    mesh = seed_plan().mesh
    names = [h.name for h in mesh.hosts]
    rounds = handover.rounds(mesh, names)
    assert sorted(n for r in rounds for n in r) == sorted(names)
    for r in rounds:
        assert not [lk for lk in mesh.links if lk.a in r and lk.b in r], r
    # The seed: rho is linked to every other host, so it has a round of its own.
    assert ["rho"] in rounds and len(rounds) < len(names)


def test_rounds_take_only_the_hosts_named() -> None:
    mesh = seed_plan().mesh
    assert handover.rounds(mesh, ["pi0", "bob"]) == [["bob", "pi0"]]
    assert handover.rounds(mesh, []) == []


def test_each_reached_peer_takes_every_switched_neighbour_at_once() -> None:
    p = seed_plan()
    everyone = [h.name for h in p.mesh.hosts]
    take = handover.takes(p, ["bob", "pi0"], everyone)
    # rho is linked to both: one program for both keys; bob and pi0 switch, they take none.
    assert set(take) == {n for n in everyone if n not in ("bob", "pi0")}
    assert take["rho"].count("\ntake ") == 2
    assert take["rho"].rstrip().endswith("wait")
    # A peer not reached gets no program.
    assert "rho" not in handover.takes(p, ["bob"], ["vorke"])
