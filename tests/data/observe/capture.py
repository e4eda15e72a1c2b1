"""Recapture HOST.txt (what the gather program prints on a real lab host) and HOST.json (what
observe.parse makes of it), after the gather program changed. Run as root from the repository:

    .venv/bin/mesh-push lab up -i inventory/lab.yaml
    .venv/bin/mesh-push up -i inventory/lab.yaml --yes
    .venv/bin/python tests/data/observe/capture.py
    .venv/bin/mesh-push lab down -i inventory/lab.yaml

With --reparse it only rewrites HOST.json from the HOST.txt there (after the parser changed).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from mesh_push import inventory, modes
from mesh_push.engine.gather import parse_state
from mesh_push.host import programs

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def main() -> int:
    mesh = inventory.load(ROOT / "inventory/lab.yaml")
    command = programs.gather(mesh, modes.of(mesh).gather_template)
    for host in ("bob", "rho", "vorke", "epsilon", "pi0"):
        if "--reparse" in sys.argv:
            text = (HERE / f"{host}.txt").read_text()
        else:
            argv = [sys.executable, "-m", "mesh_push.cli", "lab", "exec", "-i",
                    "inventory/lab.yaml", host, "--", "sh", "-c", command]  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
            text = done.stdout
            (HERE / f"{host}.txt").write_text(text)
        parsed = dataclasses.asdict(parse_state(text, mesh))
        for w in parsed["wg"].values():
            w["transfer"] = {k: list(v) for k, v in w["transfer"].items()}
        (HERE / f"{host}.json").write_text(json.dumps(parsed, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
