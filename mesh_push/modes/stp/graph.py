"""The mesh as a Graphviz graph: hosts, wires, the spanning tree and, from `status`, what is
broken. Pure: builds a `graphviz.Graph` (its `.source` is the DOT text); picture.py writes it
and runs `dot`.

Every name and label goes through `_text`: the graphviz package quotes, but leaves a
backslash escape (`\\N`, `\\"`) and `<...>` (an HTML label) to mean what they mean in DOT, so
a name read from an inventory or a host would otherwise be able to change the picture."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import graphviz

from mesh_push.core.model import Link
from mesh_push.core.problems import printable, shorten
from mesh_push.inventory import SAFE_NAME
from mesh_push.modes import judge
from mesh_push.modes.plan import Plan
from mesh_push.modes.stp import tree as stp

# The layout engine, set in the DOT itself (`layout=`), so that `dot -Tsvg FILE.dot` draws
# the same picture. Chosen by looking at 5, 20 and 50 hosts (docs/graph.md).
LAYOUT = "neato"
# neato draws a wire about `len` inches long: longer for more latency, so that a mesh across
# oceans looks like one (the seed: America left, Europe right), within bounds that keep a
# 50-host mesh readable.
LEN_BASE, LEN_PER_MS, LEN_MAX, LEN_UNKNOWN = 1.0, 1 / 60, 3.0, 1.5
# Edges routed around nodes (splines=true) cost neato 0.4 s at 50 hosts, 2.6 s at 100, 13 s at
# 200 and minutes at 500; straight lines take 0.3 s at 500. Past this many hosts a picture
# is for an overview, and straight lines do.
SPLINE_HOSTS = 100
TOOLTIP_CHARS = 500  # a host's reasons in an SVG tooltip: enough to read, bounded

SHAPE = {"static": "box", "dynamic": "ellipse", "nat": "octagon"}
KIND = {"static": "static", "dynamic": "dynamic", "nat": "NAT"}

# status: a host's fill and a wire's colour per live state
HOST_FILL = {"healthy": "palegreen", "unhealthy": "salmon", "unreachable": "lightgrey"}
WIRE_COLOUR = {
    "healthy": "forestgreen",
    "stale": "darkorange",
    "port": "red",
    "unreachable": "grey60",
}
WIRE_STATE = {
    "healthy": "healthy",
    "stale": "stale or no handshake",
    "port": "STP port not as planned",
    "unreachable": "an end unreachable",
}
CUT_COLOUR = "grey60"
TREE_WIDTH, BLOCKED_WIDTH = "3", "1"


def _text(*lines: object) -> str:
    """Values as DOT text, one a line, that mean only themselves: control characters shown as
    escapes, backslashes doubled, never an HTML label (the package then quotes `"`)."""
    text = "\\n".join(graphviz.escape(printable(str(line))) for line in lines)
    # Kept as the package's marked string: a plain str that starts with < and ends with > would
    # be written as an HTML label.
    marked: str = graphviz.nohtml(text)
    return marked


def _ids(p: Plan) -> dict[str, str]:
    """Node ids: the host's name where the inventory's rule allows it (readable DOT), else
    `#N`, which no name can be. The package reads `a:b` in an edge as node a, port b, so an
    id is never built out of anything else; `#legend` cannot be a host either."""
    return {
        h.name: h.name if SAFE_NAME.fullmatch(h.name) else f"#{i}"
        for i, h in enumerate(p.mesh.hosts)
    }


@dataclass(frozen=True)
class _Wire:
    """One link as drawn: forwarding (in the tree) or not, which ends block, and in `status`
    its live state and what the judge found."""

    link: Link
    forwarding: bool
    blocking: frozenset[str]  # the hosts whose end of this wire blocks
    cut: bool = False
    state: str | None = None  # a WIRE_COLOUR key (status only)
    problems: tuple[str, ...] = ()


def plan_graph(p: Plan, cut: stp.Edge | None = None) -> graphviz.Graph:
    """The planned mesh; with `cut`, the tree 802.1D converges to without that wire."""
    names = [h.name for h in p.mesh.hosts]
    outcome = stp.after_cut(p.tree, names, cut) if cut else p.tree.expected
    wires = [
        _Wire(
            lk,
            stp.edge(lk.a, lk.b) in outcome.forwarding_edges,
            frozenset(h for h in lk.hosts if (h, lk.other(h)) in outcome.blocking),
            cut=stp.edge(lk.a, lk.b) == cut,
        )
        for lk in p.mesh.links
    ]
    title = f"mesh {p.mesh.name}: plan"
    if cut:
        title += f", after cutting {cut[0]}–{cut[1]}"
    g = _graph(title, len(p.mesh.hosts))
    ids = _ids(p)
    _hosts(g, p, ids, health=None)
    _wires(g, ids, wires)
    _legend(g, status=False, cut=cut is not None)
    return g


def status_graph(p: Plan, j: judge.Judgement) -> graphviz.Graph:
    """The mesh as `status` found it: each host and wire coloured by the judge's verdict, the
    tree as the hosts' ports have it (as planned where an end could not be read)."""
    live = {tuple(w["hosts"]): w for w in j.wires}
    wires = [_live_wire(p, lk, live.get(lk.hosts)) for lk in p.mesh.links]
    verdict = "healthy" if j.healthy else "UNHEALTHY"
    g = _graph(f"mesh {p.mesh.name}: status, {verdict}", len(p.mesh.hosts))
    ids = _ids(p)
    _hosts(g, p, ids, health=j.hosts)
    _wires(g, ids, wires)
    _legend(g, status=True, cut=False)
    return g


def _live_wire(p: Plan, lk: Link, w: dict[str, Any] | None) -> _Wire:
    expected = p.tree.expected
    planned = {h: (h, lk.other(h)) in expected.blocking for h in lk.hosts}
    if w is None:  # outside the judge's scope: as planned, state unknown
        return _Wire(lk, not any(planned.values()), _blocking(planned), state="unreachable")
    ends: dict[str, dict[str, Any] | None] = w["ends"]
    # An end's port as its host reports it; where unread or unknown, as planned.
    blocks = {
        h: planned[h] if not e or e["stp_state"] is None else e["stp_state"] != "forwarding"
        for h, e in ((h, ends.get(h)) for h in lk.hosts)
    }
    return _Wire(
        lk,
        not any(blocks.values()),
        _blocking(blocks),
        state=wire_state(w),
        problems=tuple(w["problems"]),
    )


def _blocking(ends: dict[str, bool]) -> frozenset[str]:
    return frozenset(h for h, blocks in ends.items() if blocks)


def wire_state(w: dict[str, Any]) -> str:
    """A judged wire's state for its colour. A dead tunnel says more than the STP that follows
    from it, so an unreadable end comes first, then the handshake, then the ports."""
    ends = [w["ends"].get(h) for h in w["hosts"]]
    if any(e is None for e in ends):
        return "unreachable"
    age = [e["handshake_age_s"] for e in ends if e is not None]
    if any(a is None or a > judge.REJECT_AFTER_TIME_S for a in age):
        return "stale"
    return "port" if w["problems"] else "healthy"


def _graph(title: str, hosts: int) -> graphviz.Graph:
    g = graphviz.Graph(
        "mesh",
        graph_attr={
            "layout": LAYOUT,
            "label": _text(title),
            "labelloc": "t",
            "fontname": "Helvetica",
            # no node on another, edges around nodes, room for edge labels
            "overlap": "false",
            "splines": "true" if hosts <= SPLINE_HOSTS else "false",
            "sep": "+12",
            "esep": "+6",
            # pieces (the legend, parts cut off) side by side in their order, not stacked
            "pack": "true",
            "packmode": "array_u",
        },
        node_attr={"fontname": "Helvetica", "fontsize": "11", "margin": "0.08,0.04"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9"},
    )
    return g


def _hosts(
    g: graphviz.Graph, p: Plan, ids: dict[str, str], health: dict[str, judge.HostVerdict] | None
) -> None:
    jumps = {h.ssh.via for h in p.mesh.hosts if h.ssh.via}
    root, backup = p.tree.expected.root, p.tree.backup
    for h in p.mesh.hosts:
        lines = [h.name, KIND[h.endpoint] + (", jump host" if h.name in jumps else "")]
        attrs = {"shape": SHAPE[h.endpoint]}
        if h.name in jumps:
            attrs["peripheries"] = "2"
        if h.name == root:
            lines.append("root")
            attrs["penwidth"] = "3"
        elif h.name == backup:
            lines.append("backup root")
            attrs["penwidth"] = "2"
        if health is not None:
            v = health.get(h.name)
            state = _host_state(v)
            if state != "healthy":
                lines.append(state)
            attrs.update(style="filled", fillcolor=HOST_FILL[state])
            if v is not None and v.reasons:
                attrs["tooltip"] = _text(shorten("; ".join(v.reasons), TOOLTIP_CHARS))
        g.node(ids[h.name], label=_text(*lines), **attrs)


def _host_state(v: judge.HostVerdict | None) -> str:
    if v is None or not v.reachable:
        return "unreachable"
    return "healthy" if v.healthy else "unhealthy"


def _wires(g: graphviz.Graph, ids: dict[str, str], wires: Iterable[_Wire]) -> None:
    for w in wires:
        lk = w.link
        label = [f"VNI {lk.vni}"]
        if lk.latency_ms is not None:
            label.insert(0, f"{lk.latency_ms:g} ms")
        attrs = {"len": _length(lk.latency_ms)}
        if w.cut:
            label.append("cut")
            attrs.update(style="dotted", color=CUT_COLOUR, fontcolor=CUT_COLOUR)
        elif w.forwarding:
            attrs.update(style="solid", penwidth=TREE_WIDTH)
        else:
            attrs.update(style="dashed", penwidth=BLOCKED_WIDTH)
        # The blocking end: a bar (tee) where the wire meets that host.
        tail, head = lk.a in w.blocking, lk.b in w.blocking
        if tail or head:
            attrs["dir"] = "both" if tail and head else "back" if tail else "forward"
            attrs["arrowsize"] = "1.4"
            if tail:
                attrs["arrowtail"] = "tee"
            if head:
                attrs["arrowhead"] = "tee"
        if w.state is not None:
            attrs["color"] = WIRE_COLOUR[w.state]
            if w.state != "healthy":
                attrs["fontcolor"] = WIRE_COLOUR[w.state]
            tip = "; ".join(w.problems) or WIRE_STATE[w.state]
            attrs["tooltip"] = _text(shorten(tip, TOOLTIP_CHARS))
        g.edge(ids[lk.a], ids[lk.b], label=_text(*label), **attrs)


def _length(latency_ms: float | None) -> str:
    if latency_ms is None:
        return f"{LEN_UNKNOWN:.2f}"
    return f"{min(LEN_MAX, LEN_BASE + latency_ms * LEN_PER_MS):.2f}"


def _legend(g: graphviz.Graph, status: bool, cut: bool) -> None:
    """One node with an HTML table (the only HTML in the graph: constant text), so that it
    works with every layout engine, which clusters do not."""
    rows = [
        "<TR><TD COLSPAN='2'><B>legend</B></TD></TR>",
        _row("box / ellipse / octagon", "static / dynamic / NAT host"),
        _row("double outline", "jump host"),
        _row("bold outline", "root (thickest), backup root"),
        _row("thick line", "tree wire (forwarding)"),
        _row("dashed line", "blocked wire; a bar marks the blocking end"),
        _row("label", "latency, VNI"),
    ]
    if cut:
        rows.append(_row("dotted grey", "the cut wire"))
    if status:
        for state, fill in HOST_FILL.items():
            rows.append(f"<TR><TD BGCOLOR='{fill}'>host</TD><TD ALIGN='LEFT'>{state}</TD></TR>")
        for state, colour in WIRE_COLOUR.items():
            rows.append(_row(f"<FONT COLOR='{colour}'><B>wire</B></FONT>", WIRE_STATE[state]))
    g.node(
        "#legend",
        label="<<TABLE BORDER='0' CELLBORDER='1' CELLSPACING='0'>" + "".join(rows) + "</TABLE>>",
        shape="plaintext",
        fontsize="9",
    )


def _row(what: str, means: str) -> str:
    return f"<TR><TD>{what}</TD><TD ALIGN='LEFT'>{means}</TD></TR>"
