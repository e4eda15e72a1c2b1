"""The write-up's network built by hand on lab hosts, with the write-up's own commands: key
files in /etc/wireguard, `wg setconf` from a config file with a [Peer] per link (Endpoint only
for static hosts), VXLAN wires named after their peers, `brctl addbr internet`, `stp on`,
addresses, `ethtool -K tx off` where ethtool exists. The lab's STP timers are set with brctl
as well (the write-up keeps the defaults: 30 s of listening and learning per change). Used by
tests/e2e/test_adopt_lab.py."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mesh_push.lab.netns import at_host_priority
from mesh_push.lab.ops import exec_argv
from tests.e2e.labkit import mesh_push

PORT = 56560
KEY = "/etc/wireguard/privatekey"
CONFIG = "/etc/wireguard/config"
WG_QUICK = "/etc/wireguard/wg0.conf"
# brctl's words in ip's, for a host without bridge-utils (a Debian guest, by default).
BRCTL = """if ! command -v brctl >/dev/null; then
  brctl() {
    case $1 in
      addbr) ip link add name "$2" type bridge ;;
      stp) ip link set dev "$2" type bridge stp_state 1 ;;
      sethello) ip link set dev "$2" type bridge hello_time $(($3 * 100)) ;;
      setfd) ip link set dev "$2" type bridge forward_delay $(($3 * 100)) ;;
      setmaxage) ip link set dev "$2" type bridge max_age $(($3 * 100)) ;;
      setageing) ip link set dev "$2" type bridge ageing_time $(($3 * 100)) ;;
      addif) ip link set dev "$3" master "$2" ;;
    esac
  }
fi"""


def run(lab: str, host: str, script: str) -> str:
    """`script` on lab host `host`, at a host's priority (what it starts, wireguard-go, is
    the host's own, not the test's)."""
    res = subprocess.run(
        exec_argv(lab, host, ["sh", "-c", script]),
        capture_output=True, text=True, timeout=60, preexec_fn=at_host_priority,
    )  # fmt: skip
    assert res.returncode == 0, f"{host}: {res.stdout}{res.stderr}"
    return res.stdout


def on_each(lab: str, scripts: Mapping[str, str]) -> dict[str, str]:
    """Each host's script on it, all hosts at once (a VM guest's login costs seconds)."""
    with ThreadPoolExecutor(max_workers=len(scripts) or 1) as pool:
        done = {h: pool.submit(run, lab, h, sc) for h, sc in scripts.items()}
        return {h: f.result() for h, f in done.items()}


def build(
    lab: str,
    numbers: Mapping[str, int],
    addresses: Mapping[str, str | None],  # static hosts' endpoint addresses
    links: Sequence[tuple[str, str, int]],
    timers: tuple[int, int, int, int] = (1, 4, 6, 2),  # hello, forward delay, max age, ageing
    wg_quick: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Builds it; returns each host's public key. The hosts in `wg_quick` (systemd guests)
    get their wg0 from `wg-quick@wg0` instead, enabled at boot, as many hand-built networks
    do: /etc/wireguard/wg0.conf with the address in it."""
    made = f"mkdir -p /etc/wireguard && umask 077 && wg genkey > {KEY} && wg pubkey < {KEY}"
    keys = {h: out.strip() for h, out in on_each(lab, dict.fromkeys(numbers, made)).items()}
    scripts = {}
    hello, fd, max_age, ageing = timers
    for h, n in numbers.items():
        peers = [(b if a == h else a, vni) for a, b, vni in links if h in (a, b)]
        quick = h in wg_quick
        head = f"Address = 10.88.88.{n}/24\\n" if quick else ""
        conf = [
            f'printf "[Interface]\\n{head}PrivateKey = %s\\nListenPort = {PORT}\\n" "$(cat {KEY})"'
        ]
        for p, _vni in peers:
            peer = f"PublicKey = {keys[p]}\\nAllowedIPs = 10.88.88.{numbers[p]}/32"
            conf.append(f'printf "\\n[Peer]\\n{peer}\\n"')
            if addresses.get(p):
                conf.append(f'printf "Endpoint = {addresses[p]}:{PORT}\\n"')
        wires = "\n".join(
            f"ip link add {p} type vxlan remote 10.88.88.{numbers[p]} id {vni} dstport 4789"
            for p, vni in peers
        )
        names = " ".join(p for p, _ in peers)
        if quick:
            # `systemctl enable` is this link and a daemon-reload, which costs a TCG guest
            # over a minute under the suite's load; the template unit is loaded already.
            wg = (
                "ln -sf /lib/systemd/system/wg-quick@.service "
                "/etc/systemd/system/multi-user.target.wants/wg-quick@wg0.service && "
                "systemctl start wg-quick@wg0"
            )
        else:
            wg = f"""ip link add dev wg0 type wireguard 2>/dev/null || wireguard-go wg0
wg setconf wg0 {CONFIG}
ip link set up dev wg0
ip addr add 10.88.88.{n}/24 dev wg0"""
        scripts[h] = f"""set -e
umask 077
{BRCTL}
{{ {"; ".join(conf)}; }} > {WG_QUICK if quick else CONFIG}
{wg}
brctl addbr internet
brctl stp internet on
brctl sethello internet {hello}
brctl setfd internet {fd}
brctl setmaxage internet {max_age}
brctl setageing internet {ageing}
ip addr add 10.99.99.{n}/24 dev internet
{wires}
ip link set up dev internet
for i in {names}; do
    ip link set up $i
    brctl addif internet $i
    if command -v ethtool >/dev/null; then ethtool -K $i tx off >/dev/null; fi
done
"""
    on_each(lab, scripts)
    return keys


def imported(tmp_path: Path, lab: str, hosts: Sequence[str], name: str) -> Path:
    """`mesh-push import` of `hosts` (the input lists only them and `lab`, the lab's section,
    whose SSH settings reach them) into `tmp_path`/`name`.yaml, asked to be complete."""
    given = tmp_path / "hosts.yaml"
    given.write_text(f"lab: {lab}\nhosts:\n" + "".join(f"  {h}: {{}}\n" for h in hosts))
    inv = tmp_path / f"{name}.yaml"
    res = mesh_push("import", "-i", str(given), "-o", str(inv))
    assert res.returncode == 0, res.stderr
    return inv
