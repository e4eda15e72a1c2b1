"""`status --serve`'s page at `/` (issue 33): one self-contained HTML document, every value
escaped, whatever the inventory or a host held; the picture inline, without a script."""

from __future__ import annotations

from html.parser import HTMLParser

from mesh_push.monitoring import metrics, page
from tests.unit.monitoring.test_metrics import (
    bridge,
    hostile_plan,
    judge,
    seen,
    snapshot,
    states,
)

MARK = "<b id=x>"


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href")]


def parsed(text: str) -> Elements:
    e = Elements()
    e.feed(text)
    return e


def test_a_healthy_mesh_s_page_has_its_tables_and_picture() -> None:
    text = page.render(snapshot(), '<?xml version="1.0"?>\n<svg><g/></svg>', 30)
    assert "HEALTHY" in text and "UNHEALTHY" not in text
    assert '<meta http-equiv="refresh" content="30">' in text
    assert "<svg><g/></svg>" in text and "<?xml" not in text
    e = parsed(text)
    assert {"table", "svg", "style"} <= e.tags and "script" not in e.tags
    assert e.refs == []  # nothing fetched from anywhere: no CDN, no other file


def test_hostile_names_and_host_output_are_escaped() -> None:
    p, new = hostile_plan()
    s = {new[h]: st for h, st in states().items()}
    for st in s.values():
        seen(st).root_id = MARK
        for pt in bridge(st).ports.values():
            pt.state = MARK + "<script>alert(1)</script>"
    snap = metrics.Snapshot(p, judge(p, s), 0.5, 1.8e9)
    text = page.render(snap, "<svg><script>alert(1)</script></svg>", 30)
    e = parsed(text)
    assert "script" not in e.tags and "b" not in e.tags, e.tags
    assert "UNHEALTHY" in text
    assert page.render(snap, None, 30).count("Graphviz") == 1
