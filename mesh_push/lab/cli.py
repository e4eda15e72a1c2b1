"""`mesh-push lab ...` (placeholder until the lab lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("lab", help="Real hosts on this machine for trying mesh-push (root only).")
