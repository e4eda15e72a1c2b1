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
import time
from collections.abc import Iterator

import pytest

from mesh_push.engine import gather
from mesh_push.host import facts as backends
from mesh_push.inventory import load
from mesh_push.inventory.schema import lab_dir
from tests import labs
from tests.conftest import require_root
from tests.e2e import vmkit
from tests.e2e.labkit import NUMBER, lab_exec, mesh_push
from tests.e2e.vmkit import VmLab, vm_lab_up

pytestmark = [pytest.mark.vm]  # and `arm`, an opt-in module (tests/conftest.py OPT_IN)

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


@pytest.fixture(scope="module")
def arm_lab(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[VmLab]:
    require_root()
    inv = tmp_path_factory.mktemp("arm") / "lab.yaml"
    inv.write_text(INVENTORY)
    # The first run on a machine builds the arm64 image under qemu-user: many minutes.
    with vm_lab_up(LAB, inv, pytestconfig, len(HOSTS), timeout=5400, tag="arm lab"):
        yield VmLab(inv, pytestconfig, timeout=900)


def on_all(*scripts: str) -> dict[str, list[str]]:
    return vmkit.on_all(LAB, HOSTS, *scripts, timeout=300)


def say(config: pytest.Config, line: str) -> None:
    vmkit.say(config, line, "arm lab")


def test_the_guests_are_one_arm64_and_one_amd64(arm_lab: VmLab) -> None:
    found = on_all("uname -m", "uname -r", "cat /proc/cmdline")
    assert found["bob"][0].strip() == "x86_64"
    assert found[ARM][0].strip() == "aarch64", found[ARM]
    assert found[ARM][1].strip().endswith("-arm64")  # Debian 12's own arm64 kernel
    assert "console=ttyAMA0" in found[ARM][2]
    plan = json.loads((lab_dir(LAB) / "state.json").read_text())["plan"]
    arches = {n["alias"]: n["arch"] for n in plan["nodes"] if n["role"] == "host"}
    assert arches == {"bob": "amd64", ARM: "arm64"}
    arm_lab.links_before = {h: json.loads(out[0]) for h, out in on_all("ip -j link").items()}


def test_up_through_the_sudo_login(arm_lab: VmLab) -> None:
    t0 = time.monotonic()
    res = arm_lab.run("up", "--yes", "--json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    data = json.loads(res.stdout)
    assert data["ok"] and data["verify"]["ok"], data
    say(arm_lab.config, f"mesh-push up (bob amd64, {ARM} arm64): {time.monotonic() - t0:.0f} s")


def test_the_arm_guest_chooses_kernel_wireguard(arm_lab: VmLab) -> None:
    mesh = load(arm_lab.inventory)
    found = on_all(gather.first_command(mesh), "ip -d -j link show wg0", "ps -e -o comm=")
    for host, (facts_text, link, procs) in found.items():
        facts = backends.parse_facts(facts_text)
        assert facts.kernel_wireguard and facts.init == "systemd", (host, facts_text)
        chosen = backends.choose(facts)
        assert (chosen.wireguard.name, chosen.boot.name) == ("kernel", "systemd"), host
        assert json.loads(link)[0]["linkinfo"]["info_kind"] == "wireguard", host
        assert "wireguard-go" not in procs.split(), (host, procs)


def test_status_is_healthy(arm_lab: VmLab) -> None:
    res = arm_lab.run("status", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["healthy"], res.stdout[-3000:]


def test_1472_byte_pings_cross_the_bridge_both_ways(arm_lab: VmLab) -> None:
    results = vmkit.all_pairs_ping(LAB, HOSTS)
    assert results == [f"bob -> {ARM} ok", f"{ARM} -> bob ok"], results


def test_a_real_reboot_of_the_arm_guest_comes_back_healthy_without_up(arm_lab: VmLab) -> None:
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
    assert vmkit.all_pairs_ping(LAB, HOSTS) == [f"bob -> {ARM} ok", f"{ARM} -> bob ok"]


def test_down_leaves_the_links_as_they_were(arm_lab: VmLab) -> None:
    res = arm_lab.run("down", "--yes", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["ok"], res.stdout[-3000:]
    found = on_all("ip -j link", f"systemctl is-enabled {UNIT} || echo gone")
    for host, (links, boot) in found.items():
        assert json.loads(links) == arm_lab.links_before[host], host
        assert boot.strip().endswith("gone"), (host, boot)
