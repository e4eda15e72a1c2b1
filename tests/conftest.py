"""Shared test set-up. The tests mirror the package: tests/unit/PACKAGE (pure, no root),
tests/properties (invariants over many generated meshes), tests/root (the real kernel in
network namespaces, as root), tests/lab and tests/e2e (the lab: real sshd, WireGuard, VXLAN,
bridges). A test's directory gives its marker (`root`, `lab`, or `vm` for the QEMU suite);
a test with one needs root: without it, it is skipped, except under CI=true where it fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# Where a test lives → the marker every test there carries.
MARKERS = {
    "root": "root",
    "e2e/test_vm_lab.py": "vm",
    "e2e": "lab",
    "lab/test_lab_live.py": "lab",
    "lab/test_lab_frr.py": "lab",
}
NEEDS_ROOT = {"root", "lab", "vm"}


def marker_of(path: Path) -> str | None:
    rel = path.resolve().relative_to(TESTS).as_posix()
    for prefix, marker in MARKERS.items():
        if rel == prefix or rel.startswith(prefix + "/"):
            return marker
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = marker_of(Path(str(item.fspath)))
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if any(item.get_closest_marker(m) for m in NEEDS_ROOT):
        require_root()


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("this test needs root (and the lab); under CI it must run, not skip")
    pytest.skip("needs root")
