"""No example, help text or document can send anyone to a machine that is not theirs: every
IPv4 address in the repository that is a host on the public Internet must be a documentation
address (RFC 5737). Private, lab (RFC 2544), link-local and multicast addresses, and short
prefixes (0.0.0.0/1, a route, not a machine), are not anyone's machine."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

from mesh_push.inventory.hosts import DOCUMENTATION
from tests.kit import ROOT

ADDRESS = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d+))?(?![\d.])")
SKIP_DIRS = {".git", ".venv", "__pycache__", "build", "dist", ".mypy_cache", ".ruff_cache",
             ".pytest_cache", "out"}  # fmt: skip


def text_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_file() and path.stat().st_size < 4_000_000:
            yield path


def strangers(text: str) -> list[str]:
    found = []
    for m in ADDRESS.finditer(text):
        try:
            a = ipaddress.IPv4Address(m.group(1))
        except ValueError:
            continue
        if m.group(2) and int(m.group(2)) < 16:
            continue
        if a.is_global and not a.is_multicast and not any(a in n for n in DOCUMENTATION):
            found.append(m.group(0))
    return found


def test_the_check_finds_a_public_address() -> None:
    public = ".".join(["86", "188", "161", "69"])  # (whole, it would fail the test below)
    assert strangers(f"address: {public}\nok: 203.0.113.1 198.18.4.11 10.0.0.1") == [public]
    assert strangers("route 0.0.0.0/1 and 128.0.0.0/1, hello to 224.0.0.5") == []


def test_no_public_address_anywhere_in_the_repository() -> None:
    bad = []
    for path in text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for line_no, line in enumerate(text.splitlines(), 1):
            bad += [f"{path.relative_to(ROOT)}:{line_no}: {a}" for a in strangers(line)]
    assert not bad, "public addresses (use RFC 5737's instead):\n" + "\n".join(bad)
