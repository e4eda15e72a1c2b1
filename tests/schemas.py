"""Check a `--json` document against its schema in docs/schemas/ (documented in docs/json.md).

    from tests.schemas import validate      # or, inside tests/e2e: from ..schemas import validate
    validate(res.stdout, "run")             # the text a command printed, or the parsed document

Names: plan, render, run (up, rotate-keys, down), status, measure, lab-up, lab-status, lab-move.
A document that does not match fails the test with every mismatch, each at its JSON path."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"
NAMES = ("plan", "render", "run", "status", "measure", "lab-up", "lab-status", "lab-move")


def path_of(name: str) -> Path:
    if name not in NAMES:
        raise ValueError(f"no schema {name!r}: one of {', '.join(NAMES)}")
    return SCHEMAS / f"{name}.schema.json"


@functools.cache
def schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path_of(name).read_text())
    return data


@functools.cache
def validator(name: str) -> Draft202012Validator:
    s = schema(name)
    Draft202012Validator.check_schema(s)
    return Draft202012Validator(s)


def errors(doc: Any, name: str) -> list[str]:
    """Every mismatch as `$.json.path: message`; empty when the document matches."""
    # An object is first made what the command would print: tuples become lists, and what
    # JSON cannot hold fails here.
    text = doc if isinstance(doc, str | bytes) else json.dumps(doc)
    doc = json.loads(text)
    # best_match: inside an anyOf (a value or null), the mismatch that says what is wrong.
    found = [best_match([e]) for e in validator(name).iter_errors(doc)]
    return sorted(f"{e.json_path}: {e.message}" for e in found)


def validate(doc: Any, name: str) -> None:
    """Fail (AssertionError) unless `doc` matches docs/schemas/NAME.schema.json."""
    found = errors(doc, name)
    if found:
        raise AssertionError(
            f"not a valid {name} document ({path_of(name).name}):\n  " + "\n  ".join(found)
        )
