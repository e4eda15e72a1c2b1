"""The seed mesh (inventory/seed.yaml) planned with its golden keys: what the tests here run."""

from __future__ import annotations

import json

from mesh_push import inventory
from mesh_push.modes.base import Plan
from tests import kit


def seed_plan() -> Plan:
    keys = json.loads((kit.GOLDEN / "seed.keys.json").read_text())
    return kit.plan(inventory.load(kit.ROOT / "inventory/seed.yaml"), keys)
