"""Stage Handover, between Render and Apply in `rotate-keys` (`keys: host`): each host's new
key pair taken into use without dropping what its links carry.

Why a stage of its own: in the apply, a peer that learns the new public key gives it the
host's addresses at once, while the host may still use its old key (its script runs at its
own pace, or in a later wave). Whatever the host sends on its old sessions is then dropped
(WireGuard accepts a packet only from the peer that owns its source address), and the new
session waits for both. Here each round is two steps. The rotating hosts switch first: what
they send is held by WireGuard (up to 128 packets a peer) while what they receive on the old
sessions still arrives. Then, once they have switched (so nothing old is still on its way,
in all but a triangle with one long side), each peer gives the new key the old one's
addresses and makes the new session; the held packets follow it. The hosts of one round are
never linked to each other, so each link changes one end's key at a time.

Nothing fails here: a host not reached, or a step that fails, leaves the change to the apply
that follows, which converges every host as before."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import partial

from mesh_push.core.model import Mesh
from mesh_push.engine.session import HostError, Progress, Session
from mesh_push.host import programs
from mesh_push.host.programs import Handover
from mesh_push.modes.base import Plan


def rounds(mesh: Mesh, names: Collection[str]) -> list[list[str]]:
    """`names` in rounds no two hosts of which share a link (a greedy colouring, in the
    inventory's order)."""
    linked: dict[str, set[str]] = {}
    for lk in mesh.links:
        linked.setdefault(lk.a, set()).add(lk.b)
        linked.setdefault(lk.b, set()).add(lk.a)
    out: list[list[str]] = []
    for h in (h.name for h in mesh.hosts if h.name in names):
        free = next((r for r in out if not linked.get(h, set()) & set(r)), None)
        if free is None:
            out.append([h])
        else:
            free.append(h)
    return out


def takes(p: Plan, switched: Collection[str], reached: Collection[str]) -> dict[str, str]:
    """The take program of each `reached` peer of the `switched` hosts, for all of them."""
    take: dict[str, list[Handover]] = {}
    for a in switched:
        for peer in p.host(a).peers:
            found = p.host(peer.name).peer(a) if peer.name in reached else None
            if found is None:
                continue
            iface, back = found
            if back.public_key is None or not back.allowed_ips:
                continue
            take.setdefault(peer.name, []).append(
                Handover(
                    a,
                    iface.name,
                    back.public_key,
                    ",".join(str(n) for n in back.allowed_ips),
                    str(back.allowed_ips[0]),
                    back.dialled_at,
                    str(back.keepalive or "off"),
                    back.psk_file,
                    str(back.address) if back.address else None,
                )
            )
    return {b: programs.handover_take(p.mesh, t) for b, t in take.items()}


def handover(session: Session, p: Plan, rotating: Collection[str], progress: Progress) -> None:
    """Round after round, the key pairs staged on `rotating` taken into use (module doc)."""
    timeout = programs.LOCK_WAIT_S + programs.READ_TIMEOUT_S

    def failed(name: str, err: HostError) -> None:
        progress(name, f"key handover: {err.why} (left to the apply)")

    def run(cmds: Mapping[str, str], name: str) -> str:
        res = session.run(name, cmds[name], timeout=timeout)
        if not res.ok:
            raise RuntimeError(res.stderr.strip()[-300:] or f"exit {res.exit_code}")
        return res.stdout

    for group in rounds(p.mesh, [n for n in rotating if n in session.conns]):
        switch = {
            a: programs.handover_switch(p.mesh, [i.name for i in p.host(a).wg]) for a in group
        }
        done = session.each(group, partial(run, switch), failed)
        switched = [a for a, out in done.items() if "switched" in out.split()]
        for a in switched:
            session.reports[a].changes.append("private key rotated")
            progress(a, "key handover: switched to the new key")
        take = takes(p, switched, session.conns)
        for b, out in session.each(list(take), partial(run, take), failed).items():
            said = [ln.removeprefix("took ") for ln in out.splitlines() if ln.startswith("took ")]
            session.reports[b].changes += [f"peer {a}: its new key took over" for a in said]
            if said:
                progress(b, "key handover: took the new key of " + ", ".join(said))
