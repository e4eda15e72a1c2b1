"""Numbers a host reported, bounded where they are parsed: a host's output is untrusted, and a
400-digit number that reached the judge or the metrics would raise OverflowError there, in
code that works on every host at once. Here it is `Unreadable`, raised inside that host's
own work (Session.each), so that host fails alone. Pure."""

from __future__ import annotations

import math
import re

# Whole numbers up to 2**53: a float holds every one of them exactly (ages, rates, metrics),
# and no counter, time or id a host reports comes near it.
WHOLE_MAX = 2**53
# The longest a round trip or a duration may be, in its unit: a day in ms, a year in s.
DECIMAL_MAX = 86_400_000.0
_DIGITS = {10: re.compile(r"[0-9]{1,20}"), 16: re.compile(r"(?:0x)?[0-9a-fA-F]{1,16}")}
_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,12})?")


class Unreadable(ValueError):
    """A host's output that cannot be what it says it is; it names what was read."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}… ({len(text)} characters)"


def whole(value: object, what: str, base: int = 10) -> int:
    """A whole number from 0 to WHOLE_MAX, as text (decimal, or hexadecimal with `base` 16)
    or as a JSON integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and _DIGITS[base].fullmatch(value.strip()):
        n = int(value.strip(), base)
    else:
        raise Unreadable(f"{what} is not a whole number: {_shown(value)}")
    if not 0 <= n <= WHOLE_MAX:
        raise Unreadable(f"{what} is out of range: {_shown(value)}")
    return n


def decimal(text: str, what: str, most: float = DECIMAL_MAX) -> float:
    """A decimal number such as ping's `1.234`, from 0 to `most`."""
    if not _DECIMAL.fullmatch(text.strip()):
        raise Unreadable(f"{what} is not a number: {_shown(text)}")
    v = float(text)
    if not (math.isfinite(v) and 0 <= v <= most):
        raise Unreadable(f"{what} is out of range: {_shown(text)}")
    return v
