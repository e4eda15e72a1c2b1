"""`lab: {kind: vm}` without running anything: the inventory's rules, the plan, the host
namespace's wiring, QEMU's command line, a guest's network file, the image recipe, and the
root shell `lab exec` asks the guest's sudo for. No root needed."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from mesh_push.core.problems import InventoryError
from mesh_push.inventory import parse
from mesh_push.lab import image, vm
from mesh_push.lab.addresses import LabPlan, plan
from mesh_push.lab.errors import LabError
from mesh_push.lab.netns import node_lines
from tests.lab.test_lab_plan import LAB_YAML, lab_text


def vm_plan(**changes: object) -> LabPlan:
    return plan(parse(lab_text(lab__kind="vm", **changes), LAB_YAML))


def test_vm_kind_logs_in_as_the_sudo_user() -> None:
    p = vm_plan()
    assert p.kind == "vm" and p.login == "sudo"
    assert LabPlan.from_json(p.to_json()) == p
    guests = [n.alias for n in p.nodes if p.is_guest(n)]
    assert guests == ["bob", "rho", "vorke", "epsilon", "pi0"]  # the router stays a namespace
    assert plan(parse(LAB_YAML.read_text(), LAB_YAML)).kind == "netns"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lab__kind": "vm", "lab__login": "root"}, "lab.login: a `kind: vm` lab logs in as"),
        ({"lab__kind": "vm", "lab__login": "sudo-password"}, "`sudo` only"),
        ({"lab__kind": "qemu"}, "lab.kind: must be one of netns, vm"),
    ],
)
def test_bad_vm_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InventoryError, match=message.replace("`", ".")):
        parse(lab_text(**changes), LAB_YAML)


def test_a_guest_host_namespace_is_only_a_cable() -> None:
    p = vm_plan()
    lines = node_lines(p, p.node("pi0"))
    assert not [ln for ln in lines if ln.startswith("address") or ln.startswith("route")]
    assert "tuntap add dev mplab-tap mode tap" in lines
    assert "link set mplab-eth master mplab-vbr" in lines
    assert "link set mplab-tap master mplab-vbr" in lines
    router = node_lines(p, p.node("pi0.router"))
    assert any(ln.startswith("address add") for ln in router)


def test_qemu_command_line(tmp_path: Path) -> None:
    p = vm_plan()
    img = image.Image(tmp_path, tmp_path / "k", tmp_path / "i", tmp_path / "d", None)
    node = p.node("bob")
    argv = vm.qemu_argv(p, node, tmp_path / "bob", img, "tcg")
    assert argv[:4] == ["ip", "netns", "exec", node.ns]
    joined = shlex.join(argv)
    for part in (
        "-accel tcg,tb-size=128",
        "-m 384",
        "-smp 1",
        f"-pidfile {tmp_path}/bob/vm.pid",
        "ifname=mplab-tap,script=no,downscript=no",
        f"mac={vm.mac('mplab', 'bob')}",
        "readonly=on",
        "-daemonize",
    ):
        assert part in joined, part
    macs = {vm.mac("mplab", n.alias) for n in p.nodes}
    assert len(macs) == len(p.nodes)  # one wan: every guest needs its own MAC
    assert vm.accel_option("kvm") == "kvm"
    with pytest.raises(LabError, match="comma"):
        vm.qemu_argv(p, node, tmp_path / "a,format=raw", img, "tcg")


def test_network_file_of_a_nat_guest_routes_through_its_router() -> None:
    p = vm_plan()
    text = vm.network_file(p.node("pi0"))
    assert "Address=198.18.1.2/30" in text and "Gateway=198.18.1.1" in text
    assert "Gateway" not in vm.network_file(p.node("bob"))


def test_exec_asks_sudo_for_sh_only_and_quotes_every_argument() -> None:
    remote = vm.as_root(["sh", "-c", "echo $HOME; rm -rf /x"])
    words = shlex.split(remote)
    assert words[:4] == ["sudo", "-n", "/bin/sh", "-c"]  # the sudo rule allows sh, nothing else
    assert words[6:] == ["sh", "-c", "echo $HOME; rm -rf /x"]
    # The remote shell runs it as given: the argument arrives whole, unexpanded.
    done = subprocess.run(
        ["sh", "-c", remote.replace("sudo -n ", "", 1).replace("echo $HOME; rm -rf /x", "echo")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    assert vm.as_root([]) == "sudo -n /bin/sh -i"


def test_image_recipe_names_its_cache_entry() -> None:
    assert image.recipe_hash() == image.recipe_hash()
    assert len(image.recipe_hash()) == 16
    for pkg in ("linux-image-amd64", "systemd-sysv", "openssh-server", "wireguard-tools",
                "bridge-utils", "sudo"):  # fmt: skip
        assert pkg in image.PACKAGES
    # The seed applies before the network and sshd start; root may not log in.
    assert "Before=sysinit.target network-pre.target systemd-networkd.service ssh.service" in (
        image.SEED_UNIT_TEXT
    )
    assert "PermitRootLogin no" in image.SSHD_CONF


def test_each_guest_boots_the_init_the_lab_gives_it(tmp_path: Path) -> None:
    """`lab.init` (issue 30): runit as PID 1 from the sysvinit image, sysvinit and OpenRC
    from images of their own, systemd by default; each rebooted by its own init."""
    p = vm_plan(lab__init={"bob": "runit", "rho": "sysvinit", "vorke": "openrc"})
    assert LabPlan.from_json(p.to_json()) == p
    inits = {n.alias: n.init for n in p.nodes if p.is_guest(n)}
    assert inits == {"bob": "runit", "rho": "sysvinit", "vorke": "openrc",
                     "epsilon": "systemd", "pi0": "systemd"}  # fmt: skip
    images = {f: image.Image(tmp_path, tmp_path / f"k-{f}", tmp_path / "i", tmp_path / f, None)
              for f in image.FLAVOURS}  # fmt: skip
    for alias, flavour, init in (
        ("bob", "sysv", " init=/lib/runit/runit-init"),
        ("rho", "sysv", ""),
        ("vorke", "openrc", ""),
        ("pi0", "systemd", ""),
    ):
        node = p.node(alias)
        argv = vm.qemu_argv(p, node, tmp_path / alias, vm.image_of(node, images), "tcg")
        assert argv[argv.index("-kernel") + 1] == str(tmp_path / f"k-{flavour}"), alias
        assert argv[argv.index("-append") + 1] == vm.KERNEL_ARGS + init, alias
    assert image.INITS["runit"].reboot == ("/lib/runit/runit-init", "6")
    # Each image is its own cache entry; systemd's recipe is the one it always was.
    assert len({image.recipe_hash(f) for f in image.FLAVOURS}) == 3
    assert "systemd-sysv" not in image.SYSV_PACKAGES and "openrc" in image.OPENRC_PACKAGES
    assert vm.network_script(p.node("pi0")).endswith("ip route replace default via 198.18.1.1\n")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lab__kind": "vm", "lab__init": {"bob": "upstart"}}, "lab.init.bob: must be systemd"),
        ({"lab__init": {"bob": "runit"}}, "only a `kind: vm` lab's guests boot an init"),
    ],
)
def test_bad_inits_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InventoryError, match=message.replace("`", ".")):
        parse(lab_text(**changes), LAB_YAML)


def test_an_init_for_no_host_is_refused() -> None:
    with pytest.raises(LabError, match=r"lab\.init names no host of the inventory: ghost"):
        vm_plan(lab__init={"ghost": "runit"})
