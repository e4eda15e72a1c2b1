"""An ARM guest joins an amd64 guest in one mesh (issue 30): bob (amd64, static) and pi0, the
write-up's Raspberry Pi, as an arm64 QEMU guest behind NAT (`lab.arch: {pi0: arm64}`), both
Debian 12 with their own kernel and systemd. `up` through the sudo login; the facts of the ARM
guest choose kernel WireGuard; healthy; 1472-byte DF pings across the bridge both ways; a real
reboot of the ARM guest comes back healthy without `up`; `down` leaves its links as they were.
Timings are printed (image build, boot, up, reboot).

Opt-in (marker `arm`, tests/conftest.py): the arm64 guest is emulated instance by instance
(TCG), its image built once under qemu-user, and the suite has no minutes left for it. Run it
with `scripts/test -m arm tests/e2e/test_vm_arm.py` (docs/testing.md). Needs root."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_push.engine import gather
from mesh_push.host import facts as backends
from mesh_push.inventory import load
from mesh_push.inventory.schema import lab_dir
from mesh_push.lab.ops import exec_argv
from tests import labs
from tests.conftest import require_root
from tests.e2e.labkit import NUMBER, lab_exec, mesh_push

pytestmark = [pytest.mark.vm, pytest.mark.arm]

LAB, NET = labs.lab("mparm")  # tests/labs.py: this module's own
ARM = "pi0"
HOSTS = ["bob", ARM]
UNIT = "mesh-push-lab.service"  # the boot unit of mesh `lab`

INVENTORY = f"""mesh:
  name: lab
  wireguard: {{interface: wg0, port: 56560, network: 10.88.88.0/24}}
  bridge: {{name: internet, network: 10.99.99.0/24}}
  vxlan_port: 4789
  mtu: fragment
  stp: {{hello: 1, forward_delay: 4, max_age: 6, ageing: 2}}
  keys: host

lab:
  name: {LAB}
  network: {NET}.0/23
  kind: vm
  arch: {{{ARM}: arm64}}

hosts:
  bob: {{number: {NUMBER["bob"]}, endpoint: static, address: {NET}.11}}
  {ARM}: {{number: {NUMBER[ARM]}, endpoint: nat}}

links:
  - {{hosts: [bob, {ARM}], vni: 7, latency_ms: 5}}
"""


def say(config: pytest.Config, line: str) -> None:
    """A timing for the log, shown even when pytest captures output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[arm lab] {line}")


SPLIT = "\n=== lab test ===\n"


def on_all(*scripts: str) -> dict[str, list[str]]:
    """Each script run as root on both guests at once; per host, each script's output."""
    joined = f"; printf '{SPLIT}'; ".join(f"{{ {sc}\n}}" for sc in scripts)
    procs = {
        h: subprocess.Popen(
            exec_argv(LAB, h, ["sh", "-c", joined]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for h in HOSTS
    }
    out = {}
    for host, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, (host, stdout, stderr)
        out[host] = stdout.split(SPLIT)
        assert len(out[host]) == len(scripts), (host, stdout)
    return out


class ArmLab:
    def __init__(self, inventory: Path, config: pytest.Config) -> None:
        self.inventory = inventory
        self.config = config
        self.links_before: dict[str, list[dict[str, object]]] = {}

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        res = mesh_push(*args, "-i", str(self.inventory), timeout=timeout)
        assert "Traceback" not in res.stderr, res.stderr
        return res

    def healthy_within(self, seconds: float) -> float:
        t0 = time.monotonic()
        while True:
            polled = time.monotonic()
            res = self.run("status", "--json", timeout=300)
            if res.returncode == 0 and json.loads(res.stdout)["healthy"]:
                return time.monotonic() - t0
            assert time.monotonic() - t0 < seconds, res.stdout[-3000:] + res.stderr
            # A status costs an emulated guest seconds of its CPU: leave it as long again.
            time.sleep(max(3.0, time.monotonic() - polled))


@pytest.fixture(scope="module")
def arm_lab(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[ArmLab]:
    require_root()
    inv = tmp_path_factory.mktemp("arm") / "lab.yaml"
    inv.write_text(INVENTORY)
    mesh_push("lab", "down", "--name", LAB)
    t0 = time.monotonic()
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, -10)  # the guests inherit it: as test_vm_lab's
    try:
        # The first run on a machine builds the arm64 image under qemu-user: many minutes.
        res = mesh_push("lab", "up", "-i", str(inv), "--json", timeout=5400)
        assert res.returncode == 0, res.stdout + res.stderr
        vm = json.loads(res.stdout)["vm"]
        image = "from the cache" if vm["image_seconds"] is None else f"{vm['image_seconds']} s"
        say(pytestconfig, f"image build: {image}; {len(HOSTS)} guests booted ({vm['accel']}) in "
            f"{vm['boot_seconds']} s; lab up {time.monotonic() - t0:.0f} s")  # fmt: skip
        yield ArmLab(inv, pytestconfig)
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        down = mesh_push("lab", "down", "--name", LAB)
        assert down.returncode == 0, down.stderr
        say(pytestconfig, f"the module took {time.monotonic() - t0:.0f} s, lab up to lab down")
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{LAB}-" not in left
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert f"{LAB}-" not in links
    assert not lab_dir(LAB).exists()


def test_the_guests_are_one_arm64_and_one_amd64(arm_lab: ArmLab) -> None:
    found = on_all("uname -m", "uname -r", "cat /proc/cmdline")
    assert found["bob"][0].strip() == "x86_64"
    assert found[ARM][0].strip() == "aarch64", found[ARM]
    assert found[ARM][1].strip().endswith("-arm64")  # Debian 12's own arm64 kernel
    assert "console=ttyAMA0" in found[ARM][2]
    plan = json.loads((lab_dir(LAB) / "state.json").read_text())["plan"]
    arches = {n["alias"]: n["arch"] for n in plan["nodes"] if n["role"] == "host"}
    assert arches == {"bob": "amd64", ARM: "arm64"}
    arm_lab.links_before = {h: json.loads(out[0]) for h, out in on_all("ip -j link").items()}


def test_up_through_the_sudo_login(arm_lab: ArmLab) -> None:
    t0 = time.monotonic()
    res = arm_lab.run("up", "--yes", "--json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    data = json.loads(res.stdout)
    assert data["ok"] and data["verify"]["ok"], data
    say(arm_lab.config, f"mesh-push up (bob amd64, {ARM} arm64): {time.monotonic() - t0:.0f} s")


def test_the_arm_guest_chooses_kernel_wireguard(arm_lab: ArmLab) -> None:
    mesh = load(arm_lab.inventory)
    found = on_all(gather.first_command(mesh), "ip -d -j link show wg0", "ps -e -o comm=")
    for host, (facts_text, link, procs) in found.items():
        facts = backends.parse_facts(facts_text)
        assert facts.kernel_wireguard and facts.init == "systemd", (host, facts_text)
        chosen = backends.choose(facts)
        assert (chosen.wireguard.name, chosen.boot.name) == ("kernel", "systemd"), host
        assert json.loads(link)[0]["linkinfo"]["info_kind"] == "wireguard", host
        assert "wireguard-go" not in procs.split(), (host, procs)


def test_status_is_healthy(arm_lab: ArmLab) -> None:
    res = arm_lab.run("status", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["healthy"], res.stdout[-3000:]


def ping_both_ways() -> list[str]:
    """Each guest pings the other's bridge address, 1472 bytes, don't fragment."""
    script = " ; ".join(
        f"if [ $(hostname) != {o} ]; then ping -M do -s 1472 -c 1 -W 5 10.99.99.{NUMBER[o]}"
        f" >/dev/null && echo {o} ok || echo {o} FAILED; fi"
        for o in HOSTS
    )
    return [f"{h} -> {line}" for h, (out,) in on_all(script).items() for line in out.split("\n")
            if line]  # fmt: skip


def test_1472_byte_pings_cross_the_bridge_both_ways(arm_lab: ArmLab) -> None:
    results = ping_both_ways()
    assert results == [f"bob -> {ARM} ok", f"{ARM} -> bob ok"], results


def test_a_real_reboot_of_the_arm_guest_comes_back_healthy_without_up(arm_lab: ArmLab) -> None:
    before = lab_exec(LAB, ARM, "cat", "/proc/sys/kernel/random/boot_id").stdout
    t0 = time.monotonic()
    res = mesh_push("lab", "reboot", "--name", LAB, ARM, "--timeout", "600", timeout=900)
    assert res.returncode == 0, res.stderr
    back = time.monotonic() - t0
    after = lab_exec(LAB, ARM, "cat", "/proc/sys/kernel/random/boot_id").stdout
    assert after and after != before
    healthy = back + arm_lab.healthy_within(300)
    active = lab_exec(LAB, ARM, "systemctl", "is-active", UNIT).stdout.strip()
    assert active == "active", active
    say(arm_lab.config, f"real reboot of {ARM} (arm64): sshd back in {back:.0f} s, mesh "
        f"healthy {healthy:.0f} s after `lab reboot`, without `up`")  # fmt: skip
    assert ping_both_ways() == [f"bob -> {ARM} ok", f"{ARM} -> bob ok"]


def test_down_leaves_the_links_as_they_were(arm_lab: ArmLab) -> None:
    res = arm_lab.run("down", "--yes", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["ok"], res.stdout[-3000:]
    found = on_all("ip -j link", f"systemctl is-enabled {UNIT} || echo gone")
    for host, (links, boot) in found.items():
        assert json.loads(links) == arm_lab.links_before[host], host
        assert boot.strip().endswith("gone"), (host, boot)
