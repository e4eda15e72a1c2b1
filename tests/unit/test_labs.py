"""tests/labs.py, the registry of the test labs: no two labs of any space share a name or an
address, none touches a user's own labs (inventory/lab*.yaml), every name is a valid lab
name, and each is used by one module only (one module runs in one worker)."""

from __future__ import annotations

import ipaddress
import re

import pytest
import yaml

from mesh_push.inventory.schema import LAB_NAME
from tests import labs
from tests.kit import ROOT, TESTS

ALL = [labs.lab(name, k) for k in range(labs.SPACES) for name in labs.LABS]


def test_names_and_ranges_are_unique_across_spaces() -> None:
    names = [name for name, _ in ALL]
    assert len(set(names)) == len(names)
    nets = [ipaddress.IPv4Network(f"{prefix}.0/23") for _, prefix in ALL]
    for i, a in enumerate(nets):
        assert not any(a.overlaps(b) for b in nets[i + 1 :]), a
        assert a.subnet_of(ipaddress.IPv4Network("198.18.0.0/16"))
        assert not a.overlaps(labs.DYNAMIC)


def test_names_are_lab_names() -> None:
    for name, _ in ALL:
        assert LAB_NAME.match(name), name
    assert LAB_NAME.match(f"mt{len(list(labs.DYNAMIC.subnets(new_prefix=23))) - 1}")


def test_no_range_is_a_users_lab() -> None:
    for path in (ROOT / "inventory").glob("lab*.yaml"):
        lab = yaml.safe_load(path.read_text())["lab"]
        theirs = ipaddress.IPv4Network(lab["network"])
        assert lab["name"] not in {name for name, _ in ALL}, path
        for _, prefix in ALL:
            assert not theirs.overlaps(ipaddress.IPv4Network(f"{prefix}.0/23")), path


def test_each_lab_belongs_to_one_module() -> None:
    used: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        if path.name == "test_labs.py":
            continue
        for name in re.findall(r'labs\.lab\("(\w+)"\)', path.read_text()):
            used.setdefault(name, []).append(path.name)
    assert {n: m for n, m in used.items() if len(m) > 1} == {}
    assert set(used) == set(labs.LABS)


def test_a_space_outside_the_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(labs.SPACE_ENV, "7")
    with pytest.raises(RuntimeError, match=r"expected 0\.\.1"):
        labs.lab("mpe")
    monkeypatch.setenv(labs.SPACE_ENV, "1")
    assert labs.lab("mpe") == ("mpe1", "198.18.136")
