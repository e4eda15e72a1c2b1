"""`status --serve`'s page at `/` (issue 33): the verdict, the mode's status tables (the same
report `status` prints), the picture as judged (inline SVG, drawn by Graphviz beside the
gather), and the time of the gather. One HTML document, no script, no file from elsewhere:
it reloads itself. Pure: every value is escaped here, whatever a host or the inventory held."""

from __future__ import annotations

import html
import time

from mesh_push import modes
from mesh_push.modes.reports import Line, Styled, Table, Text
from mesh_push.monitoring.metrics import Snapshot

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
table { border-collapse: collapse; margin: .8em 0 1.4em; }
caption { text-align: left; font-weight: 600; padding: .2em 0; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.good { color: #17702b; } .bad { color: #b3261e; font-weight: 600; }
.warn { color: #8a5a00; } .dim { color: #777; } .strong { font-weight: 600; }
.verdict { font-size: 1.2em; margin: .4em 0; }
.picture svg { max-width: 100%; height: auto; }
"""


def _text(t: Text) -> str:
    if isinstance(t, Styled):
        return f'<span class="{t.style}">{html.escape(t.text)}</span>'
    return html.escape(str(t))


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in row) + "</tr>" for row in t.rows
    )
    return (
        f"<table><caption>{html.escape(t.title)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def render(snap: Snapshot, svg: str | None, refresh_s: float) -> str:
    """The page for the gather `snap`; `svg`: the picture as judged (None: Graphviz could not
    draw it). `refresh_s`: how often the browser reloads it."""
    p, j = snap.plan, snap.judgement
    report = modes.of(p.mesh).status_report(p, j)
    body = []
    for block in report:
        if isinstance(block, Table):
            body.append(_table(block))
        elif isinstance(block, Line):
            body.append("<p>" + "".join(_text(part) for part in block.parts) + "</p>")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap.finished))
    verdict = (
        '<span class="good">HEALTHY</span>' if j.healthy else '<span class="bad">UNHEALTHY</span>'
    )
    # The SVG is Graphviz's drawing of names it was given escaped (files/picture.py): it holds
    # no script, and a browser runs none from an inline <svg> in a page without one.
    picture = f'<div class="picture">{_svg_only(svg)}</div>' if svg else (
        '<p class="dim">(no picture: Graphviz\'s dot is not installed here)</p>'
    )  # fmt: skip
    name = html.escape(p.mesh.name)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{refresh_s:.0f}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mesh {name}: {'healthy' if j.healthy else 'UNHEALTHY'}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>mesh {name}</h1>"
        f'<p class="verdict">{verdict}</p>'
        f'<p class="dim">gathered {html.escape(when)}, in {snap.duration_s:.1f} s; '
        f"this page reloads every {refresh_s:.0f} s</p>"
        f"{picture}{''.join(body)}"
        "</body></html>\n"
    )


def _svg_only(svg: str) -> str:
    """The <svg> element of Graphviz's output, without its XML prolog and doctype."""
    start = svg.find("<svg")
    if start < 0 or "<script" in svg.lower():  # Graphviz writes none; never pass one on
        return ""
    return svg[start:]
