"""Shared test set-up. The tests mirror the package: tests/unit/PACKAGE (pure, no root),
tests/properties (invariants over many generated meshes), tests/root (the real kernel in
network namespaces, as root), tests/lab and tests/e2e (the lab: real sshd, WireGuard, VXLAN,
bridges). A test's directory gives its marker (`root`, `lab`, or `vm` for the QEMU suite);
a test with one needs root: without it, it is skipped, except under CI=true where it fails.
A test that asks for root without such a marker fails (`require_root`). The modules in
`OPT_IN` are left out unless the run asks for them (`-m` names their marker, or the module
is named on the command line): QEMU guests the 15-minute suite has no room for on two cores
(docs/testing.md#long). `long` (guests of four inits) runs in CI after the suite
(`scripts/test --long`); `arm` (an emulated arm64 guest, whose image takes 39 minutes to build)
only when asked.

Under pytest-xdist (`scripts/test`: `-n 4 --dist loadfile`) each module runs whole in one
worker, the longest first (`FIRST`); every lab's name and range comes from tests/labs.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import labs

TESTS = Path(__file__).resolve().parent
# Where a test lives → the marker every test there carries.
MARKERS = {
    "root": "root",
    "e2e/test_vm_lab.py": "vm",
    "e2e/test_vm_arm.py": "vm",
    "e2e/test_vm_inits.py": "vm",
    "e2e": "lab",
    "lab/test_lab_live.py": "lab",
    "lab/test_lab_frr.py": "lab",
    "install": "install",
}
NEEDS_ROOT = {"root", "lab", "vm"}
# Modules that wait longest, started first so that no worker is left with one at the end (the
# rest keep collection order); from `--durations=0`, longest first.
FIRST = [
    "e2e/test_vm_inits.py",
    "e2e/test_vm_arm.py",
    "e2e/test_vm_lab.py",
    "e2e/test_evpn.py",
    "e2e/test_firewall_lab.py",
    "e2e/test_monitoring_lab.py",
    "e2e/test_two_meshes.py",
    "e2e/test_mesh.py",
    "e2e/test_lock_integrity.py",
    "e2e/test_faults.py",
    "e2e/test_stp_lab.py",
    "e2e/test_psk.py",
    "e2e/test_live_changes.py",
    "e2e/test_rollout.py",
]
_current: list[pytest.Item] = []  # the test being set up or run


def pytest_configure(config: pytest.Config) -> None:
    # The main process takes this run's lab space; xdist workers inherit it (not re-taken).
    if os.geteuid() == 0 and not hasattr(config, "workerinput"):
        labs.claim_space()


def marker_of(path: Path) -> str | None:
    rel = path.resolve().relative_to(TESTS).as_posix()
    for prefix, marker in MARKERS.items():
        if rel == prefix or rel.startswith(prefix + "/"):
            return marker
    return None


def _rank(item: pytest.Item) -> int:
    rel = Path(str(item.fspath)).resolve().relative_to(TESTS).as_posix()
    return FIRST.index(rel) if rel in FIRST else len(FIRST)


# Module → its opt-in marker (besides its MARKERS one).
OPT_IN = {"e2e/test_vm_inits.py": "long", "e2e/test_vm_arm.py": "arm"}


def opted_in(config: pytest.Config, module: str, marker: str) -> bool:
    """Whether this run asks for an opt-in module: `-m` names its marker (`-m long`,
    `-m "vm and arm"`), or the module is named as an argument."""
    expression = str(config.getoption("markexpr", "") or "")
    named = any(Path(module).name in str(arg) for arg in config.args)
    return named or marker in expression.replace("(", " ").replace(")", " ").split()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    left_out = []
    for item in items:
        marker = marker_of(Path(str(item.fspath)))
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))
        rel = Path(str(item.fspath)).resolve().relative_to(TESTS).as_posix()
        if rel in OPT_IN:
            item.add_marker(getattr(pytest.mark, OPT_IN[rel]))
            if not opted_in(config, rel, OPT_IN[rel]):
                left_out.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]
    items.sort(key=_rank)  # stable: the rest keep their order


def pytest_runtest_setup(item: pytest.Item) -> None:
    _current[:] = [item]
    if any(item.get_closest_marker(m) for m in NEEDS_ROOT):
        require_root()


def require_root() -> None:
    """For a test that needs root: skips it without (fails it under CI=true). A test without
    a `root`, `lab` or `vm` marker fails here: `-m 'not root and not lab and not vm ...'` (the
    fast run, as any user) must never reach it."""
    if _current and not any(_current[0].get_closest_marker(m) for m in NEEDS_ROOT):
        pytest.fail(
            f"{_current[0].nodeid} needs root but has no root, lab or vm marker: move it under"
            " tests/root, tests/lab or tests/e2e (tests/conftest.py MARKERS)"
        )
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("this test needs root (and the lab); under CI it must run, not skip")
    pytest.skip("needs root")
