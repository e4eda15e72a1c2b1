"""One rendered script applied twice inside a throwaway network namespace (with private
/run/wireguard, /etc/wireguard and /var/lib/mesh-push): the second run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests import kit
from tests.root.seed import seed_plan

INNER = """
set -e
for d in /run/wireguard /etc/wireguard /var/lib/mesh-push; do
  mkdir -p "$d"; mount -t tmpfs -o mode=0700 tmpfs "$d"
done
sh "$1" > "$2/run1.out"
ip -j -d link > "$2/before.json"
sh "$1" > "$2/run2.out"
ip -j -d link > "$2/after.json"
"""


def _stable(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not k.endswith("_timer")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return [strip(x) for x in links]


def test_second_apply_changes_nothing(tmp_path: Path) -> None:
    p = seed_plan()
    script = tmp_path / "rho.sh"
    script.write_text(kit.script(p, "rho"))
    ns = f"mpt-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", INNER, "sh", str(script), str(tmp_path)],
            check=True,
        )  # fmt: skip
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for pid in pids.stdout.split():
            os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", ns], check=True)
    first = (tmp_path / "run1.out").read_text()
    assert "wire bob created (vni 6)" in first
    assert (tmp_path / "run2.out").read_text() == "no changes\n"
    before = json.loads((tmp_path / "before.json").read_text())
    after = json.loads((tmp_path / "after.json").read_text())
    assert _stable(before) == _stable(after)
    names = {x["ifname"] for x in after}
    assert {"wg0", "internet", "bob", "epsilon", "vorke", "pi0"} <= names
