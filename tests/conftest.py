"""Shared test helpers. Tests that need root or the lab fail (not skip) under CI=true."""

from __future__ import annotations

import os

import pytest


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("this test needs root (and the lab); under CI it must run, not skip")
    pytest.skip("needs root")
