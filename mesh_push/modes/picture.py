"""The mesh as a Graphviz graph, as both modes draw it (Mode.graph): hosts by endpoint kind,
links by latency, and from `status`, what is broken. Pure: builds a `graphviz.Graph` (its
`.source` is the DOT text); files/picture.py writes it and runs `dot`.

Every name and label goes through `text`: the graphviz package quotes, but leaves a backslash
escape (`\\N`, `\\"`) and `<...>` (an HTML label) to mean what they mean in DOT, so a name read
from an inventory or a host would otherwise be able to change the picture."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import graphviz

from mesh_push.core.model import Link
from mesh_push.core.problems import printable, shorten
from mesh_push.core.values import SAFE_NAME
from mesh_push.modes.base import Plan
from mesh_push.modes.judgement import REJECT_AFTER_TIME_S, HostVerdict, Judgement

# The layout engine, set in the DOT itself (`layout=`), so that `dot -Tsvg FILE.dot` draws
# the same picture. Chosen by looking at 5, 20 and 50 hosts (docs/graph.md).
LAYOUT = "neato"
# neato draws a link about `len` inches long: longer for more latency, so that a mesh across
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

# status: a host's fill and a link's colour per live state
HOST_FILL = {"healthy": "palegreen", "unhealthy": "salmon", "unreachable": "lightgrey"}
WIRE_COLOUR = {
    "healthy": "forestgreen",
    "stale": "darkorange",
    "port": "red",
    "unreachable": "grey60",
}
CUT_COLOUR = "grey60"
TREE_WIDTH, BLOCKED_WIDTH = "3", "1"


def text(*lines: object) -> str:
    """Values as DOT text, one a line, that mean only themselves: control characters shown as
    escapes, backslashes doubled, never an HTML label (the package then quotes `"`)."""
    joined = "\\n".join(graphviz.escape(printable(str(line))) for line in lines)
    # Kept as the package's marked string: a plain str that starts with < and ends with > would
    # be written as an HTML label.
    marked: str = graphviz.nohtml(joined)
    return marked


def ids(p: Plan) -> dict[str, str]:
    """Node ids: the host's name where the inventory's rule allows it (readable DOT), else
    `#N`, which no name can be. The package reads `a:b` in an edge as node a, port b, so an
    id is never built out of anything else; `#legend` cannot be a host either."""
    return {
        h.name: h.name if SAFE_NAME.fullmatch(h.name) else f"#{i}"
        for i, h in enumerate(p.mesh.hosts)
    }


@dataclass(frozen=True)
class Drawn:
    """One link as drawn: solid (thick) or dashed, which ends block, cut, and in `status` its
    live state and what the judge found."""

    link: Link
    solid: bool
    blocking: frozenset[str] = frozenset()  # the hosts whose end of this link blocks
    cut: bool = False
    state: str | None = None  # a WIRE_COLOUR key (status only)
    problems: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # more label lines (evpn: the OSPF cost)


def graph(
    title: str,
    p: Plan,
    links: Iterable[Drawn],
    roles: Mapping[str, tuple[str, str]],
    legend: list[tuple[str, str]],
    j: Judgement | None,
    states: Mapping[str, str],
    noun: str,
) -> graphviz.Graph:
    """`roles`: a host's role line and outline width (stp: root, backup root; evpn: route
    reflector); `legend`: the mode's rows; `states`: what each link state means, in words;
    `noun`: what the mode calls a link ("wire", "link")."""
    g = graphviz.Graph(
        "mesh",
        graph_attr={
            "layout": LAYOUT,
            "label": text(title),
            "labelloc": "t",
            "fontname": "Helvetica",
            # no node on another, edges around nodes, room for edge labels
            "overlap": "false",
            "splines": "true" if len(p.mesh.hosts) <= SPLINE_HOSTS else "false",
            "sep": "+12",
            "esep": "+6",
            # pieces (the legend, parts cut off) side by side in their order, not stacked
            "pack": "true",
            "packmode": "array_u",
        },
        node_attr={"fontname": "Helvetica", "fontsize": "11", "margin": "0.08,0.04"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9"},
    )
    node_ids = ids(p)
    _hosts(g, p, node_ids, roles, None if j is None else j.hosts)
    _links(g, node_ids, links, states)
    _legend(g, legend, states if j is not None else None, noun)
    return g


def _hosts(
    g: graphviz.Graph,
    p: Plan,
    node_ids: dict[str, str],
    roles: Mapping[str, tuple[str, str]],
    health: dict[str, HostVerdict] | None,
) -> None:
    jumps = {h.ssh.via for h in p.mesh.hosts if h.ssh.via}
    for h in p.mesh.hosts:
        lines = [h.name, KIND[h.endpoint] + (", jump host" if h.name in jumps else "")]
        attrs = {"shape": SHAPE[h.endpoint]}
        if h.name in jumps:
            attrs["peripheries"] = "2"
        if h.name in roles:
            role, width = roles[h.name]
            lines.append(role)
            attrs["penwidth"] = width
        if health is not None:
            v = health.get(h.name)
            state = host_state(v)
            if state != "healthy":
                lines.append(state)
            attrs.update(style="filled", fillcolor=HOST_FILL[state])
            if v is not None and v.reasons:
                attrs["tooltip"] = text(shorten("; ".join(v.reasons), TOOLTIP_CHARS))
        g.node(node_ids[h.name], label=text(*lines), **attrs)


def host_state(v: HostVerdict | None) -> str:
    if v is None or not v.reachable:
        return "unreachable"
    return "healthy" if v.healthy else "unhealthy"


def link_state(w: dict[str, Any] | None) -> str:
    """A judged link's state for its colour. A dead tunnel says more than what follows from it
    (STP, OSPF), so an unreadable end comes first, then the handshake, then the rest."""
    if w is None:
        return "unreachable"
    ends = [w["ends"].get(h) for h in w["hosts"]]
    if any(e is None for e in ends):
        return "unreachable"
    age = [e["handshake_age_s"] for e in ends if e is not None]
    if any(a is None or a > REJECT_AFTER_TIME_S for a in age):
        return "stale"
    return "port" if w["problems"] else "healthy"


def _links(
    g: graphviz.Graph, node_ids: dict[str, str], links: Iterable[Drawn], states: Mapping[str, str]
) -> None:
    for w in links:
        lk = w.link
        label = [f"VNI {lk.vni}", *w.extra]
        if lk.latency_ms is not None:
            label.insert(0, f"{lk.latency_ms:g} ms")
        attrs = {"len": _length(lk.latency_ms)}
        if w.cut:
            label.append("cut")
            attrs.update(style="dotted", color=CUT_COLOUR, fontcolor=CUT_COLOUR)
        elif w.solid:
            attrs.update(style="solid", penwidth=TREE_WIDTH)
        else:
            attrs.update(style="dashed", penwidth=BLOCKED_WIDTH)
        # The blocking end: a bar (tee) where the link meets that host.
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
            tip = "; ".join(w.problems) or states[w.state]
            attrs["tooltip"] = text(shorten(tip, TOOLTIP_CHARS))
        g.edge(node_ids[lk.a], node_ids[lk.b], label=text(*label), **attrs)


def _length(latency_ms: float | None) -> str:
    if latency_ms is None:
        return f"{LEN_UNKNOWN:.2f}"
    return f"{min(LEN_MAX, LEN_BASE + latency_ms * LEN_PER_MS):.2f}"


def _legend(
    g: graphviz.Graph, rows: list[tuple[str, str]], states: Mapping[str, str] | None, noun: str
) -> None:
    """One node with an HTML table (the only HTML in the graph: constant text), so that it
    works with every layout engine, which clusters do not."""
    cells = [
        "<TR><TD COLSPAN='2'><B>legend</B></TD></TR>",
        _row("box / ellipse / octagon", "static / dynamic / NAT host"),
        _row("double outline", "jump host"),
        *(_row(what, means) for what, means in rows),
    ]
    if states is not None:
        for state, fill in HOST_FILL.items():
            cells.append(f"<TR><TD BGCOLOR='{fill}'>host</TD><TD ALIGN='LEFT'>{state}</TD></TR>")
        for state, colour in WIRE_COLOUR.items():
            cells.append(_row(f"<FONT COLOR='{colour}'><B>{noun}</B></FONT>", states[state]))
    g.node(
        "#legend",
        label="<<TABLE BORDER='0' CELLBORDER='1' CELLSPACING='0'>" + "".join(cells) + "</TABLE>>",
        shape="plaintext",
        fontsize="9",
    )


def _row(what: str, means: str) -> str:
    return f"<TR><TD>{what}</TD><TD ALIGN='LEFT'>{means}</TD></TR>"
