"""The write-up's network built by hand on lab hosts, with the write-up's own commands: key
files in /etc/wireguard, `wg setconf` from a config file with a [Peer] per link (Endpoint only
for static hosts), VXLAN wires named after their peers, `brctl addbr internet`, `stp on`,
addresses, `ethtool -K tx off` where ethtool exists. The lab's STP timers are set with brctl
as well (the write-up keeps the defaults: 30 s of listening and learning per change). Used by
tests/e2e/test_adopt_lab.py."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from mesh_push.lab.netns import at_host_priority
from mesh_push.lab.ops import exec_argv

PORT = 56560
KEY = "/etc/wireguard/privatekey"
CONFIG = "/etc/wireguard/config"


def run(lab: str, host: str, script: str) -> str:
    """`script` on lab host `host`, at a host's priority (what it starts, wireguard-go, is
    the host's own, not the test's)."""
    res = subprocess.run(
        exec_argv(lab, host, ["sh", "-c", script]),
        capture_output=True, text=True, timeout=60, preexec_fn=at_host_priority,
    )  # fmt: skip
    assert res.returncode == 0, f"{host}: {res.stdout}{res.stderr}"
    return res.stdout


def build(
    lab: str,
    numbers: Mapping[str, int],
    addresses: Mapping[str, str | None],  # static hosts' endpoint addresses
    links: Sequence[tuple[str, str, int]],
    timers: tuple[int, int, int, int] = (1, 4, 6, 2),  # hello, forward delay, max age, ageing
) -> dict[str, str]:
    """Builds it; returns each host's public key."""
    keys = {
        h: run(
            lab,
            h,
            f"mkdir -p /etc/wireguard && umask 077 && wg genkey > {KEY} && wg pubkey < {KEY}",
        ).strip()
        for h in numbers
    }
    hello, fd, max_age, ageing = timers
    for h, n in numbers.items():
        peers = [(b if a == h else a, vni) for a, b, vni in links if h in (a, b)]
        conf = [f'printf "[Interface]\\nPrivateKey = %s\\nListenPort = {PORT}\\n" "$(cat {KEY})"']
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
        run(
            lab,
            h,
            f"""set -e
umask 077
{{ {"; ".join(conf)}; }} > {CONFIG}
ip link add dev wg0 type wireguard 2>/dev/null || wireguard-go wg0
wg setconf wg0 {CONFIG}
ip link set up dev wg0
ip addr add 10.88.88.{n}/24 dev wg0
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
""",
        )
    return keys
