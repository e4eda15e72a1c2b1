"""Each mesh owns only what it made, on a real kernel: rendered scripts run inside a throwaway
network namespace with private /run/wireguard, /etc/wireguard, /var/lib/mesh-push and
/etc/systemd/system (as in test_apply_netns). An interface, a WireGuard port or a VXLAN id
that is not this mesh's stops the host script before it changes anything; two meshes live
side by side and `down` of one leaves the other alone; an install from before meshes had
names is taken over, interfaces and key kept. Needs root (skipped without, fails under CI)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from mesh_push import inventory
from mesh_push.engine import gather
from mesh_push.host.templates import load_templates
from mesh_push.modes import scripts
from mesh_push.modes.base import Plan
from tests import kit
from tests.root.seed import seed_plan

KEEPER = """
set -e
for d in /run/wireguard /etc/wireguard /var/lib/mesh-push /etc/systemd/system; do
  mkdir -p "$d"; mount -t tmpfs -o mode=0700 tmpfs "$d"
done
echo ready
exec sleep infinity
"""
SEED_IFACES = ["wg0", "internet", "bob", "epsilon", "vorke", "pi0"]
OTHER_KEYS = {
    "rho": "s6qwM04sAqC7YJaegcy5RcrdWBLL+jwR91ZXt62Q6CY=",
    "zed": "21qvx9fVtGnSlgpyZRkn7c2JbkMJ9+iVUJ76fdf5cjU=",
}


class Box:
    """One host: a network namespace and a mount namespace kept open by a `sleep`."""

    def __init__(self) -> None:
        self.ns = f"mpo-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self.keeper = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", KEEPER],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.keeper.stdout is not None and self.keeper.stdout.readline() == "ready\n"

    def sh(self, script: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        argv = ["nsenter", f"--target={self.keeper.pid}", "--net", "--mount", "--",
                "sh", "-c", script]  # fmt: skip
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        """A whole program (host or down script), as apply.sh.j2 runs it: `sh FILE`."""
        return self.sh('f=$(mktemp) && cat > "$f" && sh "$f"; rc=$?; rm -f "$f"; exit $rc', script)

    def links(self) -> dict[str, tuple[int, str]]:
        """name → (ifindex, ifalias)."""
        out = json.loads(self.sh("ip -j link show").stdout)
        return {x["ifname"]: (x["ifindex"], x.get("ifalias", "")) for x in out}

    def exists(self, path: str) -> bool:
        return self.sh(f"[ -e {shlex.quote(path)} ]").returncode == 0

    def close(self) -> None:
        self.keeper.kill()
        self.keeper.wait()
        pids = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", self.ns], check=True)


@contextlib.contextmanager
def box() -> Iterator[Box]:
    b = Box()
    try:
        yield b
    finally:
        b.close()


def seed_rho() -> str:
    return kit.script(seed_plan(), "rho")


def down_script(p: Plan) -> str:
    return scripts.down_script(p.mesh, load_templates(), purge=True)


def other_plan(tmp: Path, vni: int, vxlan_port: int, wg_port: int = 51999) -> Plan:
    """A second mesh on rho, its wire named after its other host (zed)."""
    inv = tmp / f"other-{vni}-{vxlan_port}-{wg_port}.yaml"
    inv.write_text(f"""
mesh:
  name: other
  wireguard: {{interface: wg7, port: {wg_port}, network: 10.77.0.0/24}}
  bridge: {{name: br-other, network: 10.78.0.0/24}}
  vxlan_port: {vxlan_port}
hosts:
  rho: {{endpoint: static, address: 198.51.100.2}}
  zed: {{endpoint: static, address: 198.51.100.9}}
links:
  - {{hosts: [rho, zed], vni: {vni}}}
""")
    return kit.plan(inventory.load(inv), OTHER_KEYS)


def other_rho(p: Plan) -> str:
    return kit.script(p, "rho")


def test_what_is_not_ours_stops_the_script_before_any_change() -> None:
    with box() as b:
        # Someone's wg0 (a bridge, not ours), an interface named like a host (as eth0
        # would be), a VXLAN interface on the id rho's wire to epsilon needs.
        made = b.sh(
            "ip link add wg0 type bridge && ip link add bob type veth peer name bob-peer"
            " && ip link add vx9 type vxlan id 4 local 10.1.1.1 dstport 4789"
            " && ip link set dev bob alias their-own"
        )
        assert made.returncode == 0, made.stderr
        before = b.links()
        res = b.run(seed_rho())
        assert res.returncode == 1
        assert res.stdout == ""
        errors = [ln for ln in res.stderr.splitlines() if "refusing to touch it" in ln]
        assert errors == [
            "mesh-push: wg0 exists and was not made by mesh seed: refusing to touch it; "
            "choose another mesh.wireguard.interface; "
            "or take it over as it is, where it matches the plan: up --adopt (docs/adopt.md)",
            "mesh-push: bob exists and was not made by mesh seed: refusing to touch it; it "
            "would be the wire to host bob (wires are named after hosts): rename that host, "
            "set mesh.stp.wire_prefix, or remove the interface; "
            "or take it over as it is, where it matches the plan: up --adopt (docs/adopt.md)",
            "mesh-push: VXLAN interface vx9 has id 4 on port 4789, which wire epsilon needs: "
            "refusing to touch it; choose another mesh.vxlan_port",
        ], res.stderr
        assert 'step "ownership" failed' in res.stderr
        assert b.links() == before
        for path in ("/var/lib/mesh-push/seed", "/etc/wireguard/mesh-push-seed.key"):
            assert not b.exists(path), path
        # down leaves them alone too.
        down = b.run(down_script(seed_plan()))
        assert down.returncode == 0 and down.stdout == "no changes\n", down
        assert b.links() == before


def test_an_interface_of_another_mesh_is_named_with_the_way_back() -> None:
    """wg0 made by mesh `old` (its inventory since renamed, without mesh.name): the refusal
    names that mesh, and says how to be it again."""
    with box() as b:
        made = b.sh("ip link add wg0 type bridge && ip link set dev wg0 alias mesh-push:old")
        assert made.returncode == 0, made.stderr
        before = b.links()
        res = b.run(seed_rho())
        assert res.returncode == 1
        assert (
            "mesh-push: wg0 was made by mesh old, not mesh seed: refusing to touch it; if this "
            "inventory describes mesh old (its file renamed or copied without mesh.name), set "
            "mesh.name: old; if not, choose another mesh.wireguard.interface"
        ) in res.stderr.splitlines(), res.stderr
        assert b.links() == before


def test_two_meshes_side_by_side(tmp_path: Path) -> None:
    with box() as b:
        assert b.run(seed_rho()).returncode == 0
        seed = {n: v for n, v in b.links().items() if n in SEED_IFACES}
        assert sorted(seed) == sorted(SEED_IFACES)
        assert {alias for _, alias in seed.values()} == {"mesh-push:seed"}

        # The same VXLAN id and port as seed's wire to bob: refused before anything is made.
        clash = b.run(other_rho(other_plan(tmp_path, vni=6, vxlan_port=4789)))
        assert clash.returncode == 1
        assert (
            "mesh-push: VXLAN interface bob has id 6 on port 4789, which wire zed needs: "
            "refusing to touch it; choose another mesh.vxlan_port"
        ) in clash.stderr
        # And seed's WireGuard port.
        port = b.run(other_rho(other_plan(tmp_path, vni=6, vxlan_port=4790, wg_port=56560)))
        assert port.returncode == 1
        assert "mesh-push: WireGuard interface wg0 listens on port 56560: refusing" in port.stderr
        assert not b.exists("/var/lib/mesh-push/other")
        assert {n for n in b.links() if n not in ("lo",)} == set(SEED_IFACES)

        other = other_plan(tmp_path, vni=6, vxlan_port=4790)
        first = b.run(other_rho(other))
        assert first.returncode == 0, first.stderr
        assert "wire zed created (vni 6)" in first.stdout
        links = b.links()
        assert {n: links[n] for n in SEED_IFACES} == seed
        assert {links[n][1] for n in ("wg7", "br-other", "zed")} == {"mesh-push:other"}
        # Each one's script leaves the other's things alone.
        assert b.run(seed_rho()).stdout == "no changes\n"
        assert b.run(other_rho(other)).stdout == "no changes\n"

        down = b.run(down_script(other))
        assert down.returncode == 0, down.stderr
        assert {ln for ln in down.stdout.splitlines() if ln.endswith(" removed")} >= {
            "changed: wg7 removed", "changed: br-other removed", "changed: zed removed",
        }  # fmt: skip
        assert {n: v for n, v in b.links().items() if n != "lo"} == seed
        assert b.exists("/var/lib/mesh-push/seed")
        assert b.exists("/etc/wireguard/mesh-push-seed.key")
        assert not b.exists("/etc/wireguard/mesh-push-other.key")
        assert not b.exists("/var/lib/mesh-push/other")
        assert b.run(seed_rho()).stdout == "no changes\n"


LEGACY_SCRIPT = """#!/bin/sh
# mesh-push 0.0.9: host rho of mesh {mesh}. Generated: do not edit.
exit 0
"""


def test_an_older_install_is_taken_over(tmp_path: Path) -> None:
    """What mesh-push left before meshes had names: every interface marked `mesh-push`, the
    script in /var/lib/mesh-push, the unit mesh-push.service, the key /etc/wireguard/wg0.key.
    The upgrade keeps the interfaces (same ifindex) and the key, and drops the rest."""
    p = seed_plan()
    with box() as b:
        assert b.run(seed_rho()).returncode == 0
        # Make it look like the older install.
        legacy = b.sh(
            "set -e; for i in "
            + " ".join(SEED_IFACES)
            + "; do ip link set dev $i alias mesh-push; done\n"
            "ip link add old1 type bridge; ip link set dev old1 alias mesh-push\n"
            "mv /etc/wireguard/mesh-push-seed.key /etc/wireguard/wg0.key\n"
            "rm -rf /var/lib/mesh-push/seed\n"
            f"printf '%s' {shlex.quote(LEGACY_SCRIPT.format(mesh='seed'))}"
            " > /var/lib/mesh-push/apply.sh\n"
            "echo 0123 > /var/lib/mesh-push/applied.sha256\n"
            "mkdir -p /etc/systemd/system/multi-user.target.wants\n"
            "echo '[Service]' > /etc/systemd/system/mesh-push.service\n"
            "ln -s /etc/systemd/system/mesh-push.service"
            " /etc/systemd/system/multi-user.target.wants/mesh-push.service\n"
        )
        assert legacy.returncode == 0, legacy.stderr
        before = b.links()
        public = b.sh("wg show wg0 public-key").stdout

        facts = b.sh(gather.first_command(p.mesh, generate_key=True))
        assert f"public_key={public}" in facts.stdout  # the same key, moved
        assert not b.exists("/etc/wireguard/wg0.key")

        res = b.run(seed_rho())
        assert res.returncode == 0, res.stderr
        changes = res.stdout.splitlines()
        assert (
            "changed: older install of mesh seed taken over (its boot unit and files in "
            "/var/lib/mesh-push removed)" in changes
        )
        for name in SEED_IFACES:
            assert f"changed: {name} marked as mesh seed's (was mesh-push)" in changes
        assert not [c for c in changes if "created" in c or "removed (" in c or "key" in c], changes
        after = b.links()
        assert {n: after[n][0] for n in SEED_IFACES} == {n: before[n][0] for n in SEED_IFACES}
        assert {after[n][1] for n in SEED_IFACES} == {"mesh-push:seed"}
        assert after["old1"] == before["old1"]  # legacy mark, but no name this mesh plans
        assert b.sh("wg show wg0 public-key").stdout == public
        for path in ("/var/lib/mesh-push/apply.sh", "/var/lib/mesh-push/applied.sha256",
                     "/etc/systemd/system/mesh-push.service",
                     "/etc/systemd/system/multi-user.target.wants/mesh-push.service"):  # fmt: skip
            assert not b.exists(path), path
        assert b.run(seed_rho()).stdout == "no changes\n"


def test_an_older_install_of_another_mesh_is_left_alone() -> None:
    with box() as b:
        made = b.sh(
            "set -e; ip link add wg0 type bridge; ip link set dev wg0 alias mesh-push\n"
            f"printf '%s' {shlex.quote(LEGACY_SCRIPT.format(mesh='other'))}"
            " > /var/lib/mesh-push/apply.sh\n"
            "echo '[Service]' > /etc/systemd/system/mesh-push.service\n"
        )
        assert made.returncode == 0, made.stderr
        down = b.run(down_script(seed_plan()))
        # wg0 carries the legacy mark under a name seed plans: seed's, by the migration rule.
        assert down.stdout.splitlines() == ["changed: wg0 removed"], down
        assert b.exists("/var/lib/mesh-push/apply.sh")
        assert b.exists("/etc/systemd/system/mesh-push.service")


ADOPTING = 'f=$(mktemp) && cat > "$f" && MESH_PUSH_ADOPT=1 sh "$f"; rc=$?; rm -f "$f"; exit $rc'


def test_adopt_refuses_what_does_not_match_and_says_what_differs() -> None:
    """`up --adopt` (issue 29): an interface of a planned name that differs from the plan is
    refused, once, with what differs; nothing is changed."""
    with box() as b:
        made = b.sh(
            "ip link add wg0 type bridge && ip link add internet type bridge"
            " && ip addr add 10.99.99.7/24 dev internet"
            " && ip link add bob type vxlan id 9 remote 10.88.88.1 dstport 4789"
        )
        assert made.returncode == 0, made.stderr
        before = b.links()
        res = b.sh(ADOPTING, seed_rho())
        assert res.returncode == 1
        tail = ": refusing to touch it; make it match, remove it, or take --adopt away"
        errors = [ln for ln in res.stderr.splitlines() if "refusing to touch it" in ln]
        assert errors == [
            "mesh-push: wg0 exists and does not match the plan: not a WireGuard interface" + tail,
            "mesh-push: internet exists and does not match the plan: its addresses are "
            "'10.99.99.7/24', the plan's is 10.99.99.2/24" + tail,
            "mesh-push: bob exists and does not match the plan: VXLAN id 9 port 4789, the "
            "plan's is id 6 port 4789" + tail,
        ], res.stderr
        assert b.links() == before


def test_adopt_takes_over_what_matches_in_place() -> None:
    """The write-up's bridge and a wire made without a local address: adopted, marked, the
    wire given its local address in place (same ifindex); what is missing is made."""
    with box() as b:
        made = b.sh(
            "ip link add internet type bridge stp_state 1 && ip addr add 10.99.99.2/24 dev internet"
            " && ip link add bob type vxlan id 6 remote 10.88.88.1 dstport 4789"
            " && ip link set bob master internet && ip link set bob up && ip link set internet up"
        )
        assert made.returncode == 0, made.stderr
        before = b.links()
        res = b.sh(ADOPTING, seed_rho())
        assert res.returncode == 0, res.stdout + res.stderr
        assert "changed: internet adopted (bridge, 10.99.99.2/24)" in res.stdout
        assert "changed: bob adopted (VXLAN id 6)" in res.stdout
        assert "changed: wire bob local 10.88.88.2" in res.stdout
        after = b.links()
        for name in ("internet", "bob"):
            assert after[name] == (before[name][0], "mesh-push:seed"), (name, after[name])
        assert "local 10.88.88.2 " in b.sh("ip -d -o link show dev bob").stdout
