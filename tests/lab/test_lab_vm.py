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
from mesh_push.lab import arch, image, vm
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
    assert len({image.recipe_hash(f) for f in image.FLAVOURS}) == len(image.FLAVOURS)
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


# The amd64 images cached on machines that ran the lab before arm64 guests existed: their
# recipes (and so their cache entries) must not change.
AMD64_HASHES = {"systemd": "45a5d636b640a855", "sysv": "6e7e8522d1c38524",
                "openrc": "df60dc6f4dc44548"}  # fmt: skip


def test_amd64_recipes_are_unchanged_and_arm64_has_its_own() -> None:
    hashes = {f: image.recipe_hash(f) for f in image.FLAVOURS}
    assert {f: hashes[f] for f in AMD64_HASHES} == AMD64_HASHES
    assert hashes["systemd-arm64"] not in AMD64_HASHES.values()
    arm = image.FLAVOURS["systemd-arm64"]
    assert arm.arch == "arm64" and arm.customize == image.CUSTOMIZE
    # The systemd image's packages, but Debian's arm64 kernel.
    assert [p.replace("arm64", "amd64") for p in arm.packages] == list(image.PACKAGES)
    assert image.flavour_of("systemd", "arm64") == "systemd-arm64"
    assert image.flavour_of("runit", "amd64") == "sysv"


def test_no_flavour_image_is_stale_after_another_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image, "CACHE", tmp_path)
    for f in image.FLAVOURS:
        (tmp_path / image.recipe_hash(f)).mkdir()
    (tmp_path / "0123456789abcdef").mkdir()  # an older recipe's
    (tmp_path / ".build-x").mkdir()  # another lab's build under way
    assert image.stale() == [tmp_path / "0123456789abcdef"]


def test_an_arm64_guest(tmp_path: Path) -> None:
    """`lab.arch` (issue 30): QEMU's aarch64 `virt` board, always TCG (no KVM for another
    CPU), its PL011 console, the arm64 image; the amd64 guests as they were."""
    p = vm_plan(lab__arch={"pi0": "arm64"})
    assert LabPlan.from_json(p.to_json()) == p
    assert {n.alias: n.arch for n in p.nodes if p.is_guest(n)} == {
        "bob": "amd64", "rho": "amd64", "vorke": "amd64", "epsilon": "amd64", "pi0": "arm64",
    }  # fmt: skip
    images = {f: image.Image(tmp_path, tmp_path / f"k-{f}", tmp_path / "i", tmp_path / f, None)
              for f in image.FLAVOURS}  # fmt: skip
    pi0, bob = p.node("pi0"), p.node("bob")
    arm = vm.qemu_argv(p, pi0, tmp_path / "pi0", vm.image_of(pi0, images), "kvm")
    assert arm[4].endswith("qemu-system-aarch64")
    joined = shlex.join(arm)
    kernel = f"-kernel {tmp_path}/k-systemd-arm64"
    for part in ("-M virt -cpu cortex-a72", "-accel tcg,tb-size=128", "-m 384", kernel,
                 "virtio-net-pci", "virtio-rng-pci"):  # fmt: skip
        assert part in joined, part
    args = arm[arm.index("-append") + 1]
    assert "console=ttyAMA0" in args and "ttyS0" not in args
    amd = vm.qemu_argv(p, bob, tmp_path / "bob", vm.image_of(bob, images), "kvm")
    assert amd[4].endswith("qemu-system-x86_64") and "-M" not in amd
    assert "-accel kvm" in shlex.join(amd)
    assert amd[amd.index("-append") + 1] == vm.KERNEL_ARGS


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lab__kind": "vm", "lab__arch": {"bob": "riscv64"}},
         "lab.arch.bob: must be amd64 or arm64, not 'riscv64'"),
        ({"lab__kind": "vm", "lab__arch": {"bob": "arm64"}, "lab__init": {"bob": "openrc"}},
         r"lab.arch.bob: an arm64 guest boots systemd only, not openrc \(lab.init.bob\)"),
        ({"lab__arch": {"bob": "arm64"}}, "lab.arch: only a `kind: vm` lab's guests have a CPU"),
        ({"lab__kind": "vm", "lab__arch": ["bob"]}, "lab.arch: .*a mapping of host name"),
    ],
)  # fmt: skip
def test_bad_arches_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InventoryError, match=message.replace("`", ".")):
        parse(lab_text(**changes), LAB_YAML)


def test_an_arch_for_no_host_is_refused() -> None:
    with pytest.raises(LabError, match=r"lab\.arch names no host of the inventory: ghost"):
        vm_plan(lab__arch={"ghost": "arm64"})


QEMU_AARCH64 = (
    r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
    r"\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff"
    r"\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:"
)


@pytest.fixture
def binfmt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[list[str]]]:
    """A stand-in for /proc/sys/fs/binfmt_misc and qemu-user-static's binfmt.d, on a machine
    that must emulate arm64; the commands `foreign` runs, recorded instead."""
    conf, fs = tmp_path / "binfmt.d", tmp_path / "binfmt_misc"
    conf.mkdir()
    fs.mkdir()
    (conf / "qemu-aarch64.conf").write_text("# qemu-user-static\n" + QEMU_AARCH64 + "OP\n")
    ran: list[list[str]] = []

    def fake_run(argv: list[str], **_: object) -> None:
        ran.append(argv)
        if argv[0] == "mount":
            (fs / "register").touch()

    monkeypatch.setattr(arch, "BINFMT", fs)
    monkeypatch.setattr(arch, "BINFMT_CONF", conf)
    monkeypatch.setattr(arch, "run", fake_run)
    monkeypatch.setattr(arch, "native", lambda: "amd64")
    monkeypatch.setattr(arch.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    return fs, ran


def test_foreign_mounts_and_registers_only_what_is_missing_and_undoes_it(
    binfmt: tuple[Path, list[list[str]]],
) -> None:
    fs, ran = binfmt
    with pytest.raises(RuntimeError), arch.foreign("arm64"):
        assert ran == [["mount", "-t", "binfmt_misc", "binfmt_misc", str(fs)]]
        # qemu-user-static's line, with F: the interpreter is opened now, outside the chroot.
        assert (fs / "register").read_text() == QEMU_AARCH64 + "OPF\n"
        raise RuntimeError("mmdebstrap failed")
    assert (fs / "qemu-aarch64").read_text() == "-1\n"  # unregistered, on failure too
    assert ran[-1] == ["umount", str(fs)]


def test_foreign_leaves_what_the_machine_had(binfmt: tuple[Path, list[list[str]]]) -> None:
    fs, ran = binfmt
    (fs / "register").touch()
    (fs / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64-static\n")
    with arch.foreign("arm64"):
        pass
    with arch.foreign("amd64"):  # this machine's own: nothing to do
        pass
    assert ran == []
    assert (fs / "register").read_text() == ""
    assert (fs / "qemu-aarch64").read_text().startswith("enabled\n")
    (fs / "qemu-aarch64").write_text("disabled\n")
    with pytest.raises(LabError, match="qemu-aarch64 is disabled"), arch.foreign("arm64"):
        pass


def test_foreign_without_qemu_user_static_says_what_to_install(
    binfmt: tuple[Path, list[list[str]]],
) -> None:
    fs, ran = binfmt
    (arch.BINFMT_CONF / "qemu-aarch64.conf").unlink()
    missing = r"run scripts/install \(qemu-user-static\)"
    with pytest.raises(LabError, match=missing), arch.foreign("arm64"):
        pass
    assert ran == [["mount", "-t", "binfmt_misc", "binfmt_misc", str(fs)], ["umount", str(fs)]]
