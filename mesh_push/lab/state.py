"""What a lab is made of, recorded in its directory as it is built, so that `lab down` can
undo a `lab up` that crashed half-way (it also discovers leftovers by name prefix)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh_push.inventory.schema import LAB_ROOT, lab_dir
from mesh_push.lab.addresses import LabPlan
from mesh_push.lab.errors import LabError
from mesh_push.lab.system import read_pid

STATE_FILE = "state.json"


def node_dir(name: str, alias: str) -> Path:
    return lab_dir(name) / "nodes" / alias


def keeper_pid(name: str, alias: str) -> int | None:
    return read_pid(node_dir(name, alias) / "keeper.pid")


def sshd_pid(name: str, alias: str) -> int | None:
    return read_pid(node_dir(name, alias) / "sshd.pid")


@dataclass
class LabState:
    plan: LabPlan
    inventory: str
    phase: str = "creating"  # "creating" until `lab up` finished, then "up"
    namespaces: list[str] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)
    cuts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def dir(self) -> Path:
        return lab_dir(self.name)

    def save(self) -> None:
        data: dict[str, Any] = {
            "version": 1,
            "inventory": self.inventory,
            "phase": self.phase,
            "namespaces": self.namespaces,
            "root_links": self.root_links,
            "cuts": [list(c) for c in self.cuts],
            "plan": self.plan.to_json(),
        }
        tmp = self.dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.dir / STATE_FILE)

    @staticmethod
    def load(name: str) -> LabState | None:
        path = lab_dir(name) / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise LabError(f"cannot read {path}: {e}") from None
        return LabState(
            plan=LabPlan.from_json(data["plan"]),
            inventory=str(data.get("inventory", "")),
            phase=str(data.get("phase", "creating")),
            namespaces=[str(n) for n in data.get("namespaces", [])],
            root_links=[str(n) for n in data.get("root_links", [])],
            cuts=[(str(a), str(b)) for a, b in data.get("cuts", [])],
        )


def make_dir(name: str) -> Path:
    LAB_ROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    d = lab_dir(name)
    d.mkdir(mode=0o700)
    d.chmod(0o700)  # mkdir's mode is masked by the umask
    return d


def remove_dir(name: str) -> None:
    shutil.rmtree(lab_dir(name), ignore_errors=True)


def known_labs() -> list[str]:
    try:
        return sorted(p.name for p in LAB_ROOT.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
