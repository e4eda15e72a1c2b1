"""What the QEMU-guest modules share (test_vm_lab, test_vm_inits, test_vm_arm): their lab,
brought up for the module and taken down after it with nothing left; scripts run as root on
every guest at once; mesh-push on the lab's inventory; a wait for health that leaves the
guests the CPU they need; timings in the log."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mesh_push.inventory.schema import lab_dir
from mesh_push.lab.ops import exec_argv
from tests.e2e.labkit import NUMBER, lab_inventory, mesh_push

SPLIT = "\n=== lab test ===\n"


def say(config: pytest.Config, line: str, tag: str = "vm lab") -> None:
    """A timing for the log, shown even when pytest captures output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    # Past the capture of fd 1, which would otherwise swallow even the reporter's own line.
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[{tag}] {line}")


def on_all(
    lab: str, hosts: Sequence[str], *scripts: str, timeout: float = 180
) -> dict[str, list[str]]:
    """Each script run as root on every guest, all guests at once (one ssh each: under TCG a
    login costs a second or two); per host, each script's output."""
    joined = f"; printf '{SPLIT}'; ".join(f"{{ {sc}\n}}" for sc in scripts)
    procs = {
        h: subprocess.Popen(
            exec_argv(lab, h, ["sh", "-c", joined]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for h in hosts
    }
    out = {}
    for host, p in procs.items():
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, (host, stdout, stderr)
        out[host] = stdout.split(SPLIT)
        assert len(out[host]) == len(scripts), (host, stdout)
    return out


class VmLab:
    def __init__(self, inventory: Path, config: pytest.Config, timeout: float = 600) -> None:
        self.inventory = inventory
        self.config = config
        self.timeout = timeout
        self.links_before: dict[str, list[dict[str, object]]] = {}

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        res = mesh_push(*args, "-i", str(self.inventory), timeout=timeout or self.timeout)
        assert "Traceback" not in res.stderr, res.stderr
        return res

    def healthy_within(self, seconds: float) -> float:
        t0 = time.monotonic()
        while True:
            polled = time.monotonic()
            res = self.run("status", "--json", timeout=self.timeout / 3)
            if res.returncode == 0 and json.loads(res.stdout)["healthy"]:
                return time.monotonic() - t0
            assert time.monotonic() - t0 < seconds, res.stdout[-3000:] + res.stderr
            # A status costs each TCG guest a second or two of its CPU: as `up`'s verify does,
            # leave them at least as long again, for what is being waited for.
            time.sleep(max(3.0, time.monotonic() - polled))


@contextlib.contextmanager
def vm_lab_up(
    lab: str,
    inventory: Path,
    config: pytest.Config,
    guests: int,
    timeout: float = 1500,
    tag: str = "vm lab",
) -> Iterator[None]:
    """`lab up` of the module's guests (the image built first if the cache has none), and
    `lab down` after the module: no namespace, link, QEMU process or directory left."""
    mesh_push("lab", "down", "--name", lab)
    t0 = time.monotonic()
    # The suite's longest modules, beside the namespace labs on two cores: their QEMU guests
    # (they inherit this worker's priority) go first, so the suite ends with them, not after.
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, -10)
    try:
        res = mesh_push("lab", "up", "-i", str(inventory), "--json", timeout=timeout)
        assert res.returncode == 0, res.stdout + res.stderr
        vm = json.loads(res.stdout)["vm"]
        image = "from the cache" if vm["image_seconds"] is None else f"{vm['image_seconds']} s"
        say(config, f"image build: {image}; {guests} guests booted ({vm['accel']}) in "
            f"{vm['boot_seconds']} s; lab up {time.monotonic() - t0:.0f} s", tag)  # fmt: skip
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        t_down = time.monotonic()
        down = mesh_push("lab", "down", "--name", lab)
        assert down.returncode == 0, down.stderr
        say(config, f"lab down {time.monotonic() - t_down:.1f} s; the module took "
            f"{time.monotonic() - t0:.0f} s from lab up to lab down", tag)  # fmt: skip
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{lab}-" not in left
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert f"{lab}-" not in links
    assert not lab_dir(lab).exists()
    qemus = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    assert not [ln for ln in qemus.splitlines() if str(lab_dir(lab)) in ln and ln[0] != "Z"]


def all_pairs_ping(lab: str, hosts: Sequence[str]) -> list[str]:
    """Each host pings the others' bridge addresses, 1472 bytes, DF: every ordered pair."""
    script = " ; ".join(
        f"if [ $(hostname) != {o} ]; then ping -M do -s 1472 -c 1 -W 5 10.99.99.{NUMBER[o]}"
        f" >/dev/null && echo {o} ok || echo {o} FAILED; fi"
        for o in hosts
    )
    found = on_all(lab, hosts, script)
    return [f"{h} -> {line}" for h, (out,) in found.items() for line in out.split("\n") if line]


def in_evpn(vm_lab: VmLab, dest: Path) -> VmLab:
    """The same mesh in mode evpn (docs/evpn.md), to switch to in place: its inventory in
    `dest`, with the state file (the hosts' public keys) beside it."""
    text = vm_lab.inventory.read_text().replace("mesh:\n", "mesh:\n  mode: evpn\n", 1)
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("  stp:")) + "\n"
    evpn_inv = dest / "lab-evpn.yaml"
    evpn_inv.write_text(text)
    state = vm_lab.inventory.with_suffix(".state.json")
    if state.exists():
        shutil.copy(state, evpn_inv.with_suffix(".state.json"))
    return VmLab(evpn_inv, vm_lab.config)


def vm_inventory(dest: Path, lab: str, net: str, hosts: Sequence[str], extra: str = "") -> Path:
    """inventory/lab.yaml as VM lab `lab` on `net`, with only `hosts` and the links between
    them; `extra`: more `lab:` settings (`init: {...}`)."""
    lab_inventory(dest, lab, net)
    more = f"  {extra}\n" if extra else ""
    text = dest.read_text().replace(f"  name: {lab}\n", f"  name: {lab}\n  kind: vm\n{more}", 1)
    others = re.compile(rf"\b({'|'.join(h for h in NUMBER if h not in hosts)})\b")
    text = "".join(ln for ln in text.splitlines(keepends=True) if not others.search(ln))
    dest.write_text(text)
    return dest


def links_of_all(lab: str, hosts: Sequence[str]) -> dict[str, list[dict[str, object]]]:
    return {h: json.loads(out[0]) for h, out in on_all(lab, hosts, "ip -j link").items()}
