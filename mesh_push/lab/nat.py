"""nftables of the lab: the NAT routers' masquerade and the wan's cut list."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mesh_push.lab.addresses import IF_UNDERLAY, LabPlan, Node, ifname, wan_ns
from mesh_push.lab.netns import in_netns


def table(lab: str) -> str:
    # Prefixed like everything else; nft identifiers may not contain '-'.
    return f"{lab}_lab"


def router_script(plan: LabPlan) -> str:
    return (
        f"table ip {table(plan.name)} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "{ifname(plan.name, IF_UNDERLAY)}" masquerade\n'
        "  }\n"
        "}\n"
    )


# The router forwards between its LAN and the wan; the rest of the job is nftables.
ROUTER_SETUP = "echo 1 > /proc/sys/net/ipv4/ip_forward && exec nft -f -"


def router_job(plan: LabPlan, router: Node) -> tuple[Sequence[str], str]:
    return (in_netns(router.ns, ["sh", "-c", ROUTER_SETUP]), router_script(plan))


def wan_script(plan: LabPlan) -> str:
    """The wan bridge drops frames whose (source, destination) pair is in the `cuts` set."""
    t = table(plan.name)
    return (
        f"table bridge {t} {{\n"
        "  set cuts { type ipv4_addr . ipv4_addr; }\n"
        "  chain cutfilter {\n"
        "    type filter hook forward priority 0; policy accept;\n"
        "    ip saddr . ip daddr @cuts drop\n"
        "  }\n"
        "}\n"
    )


def wan_job(plan: LabPlan) -> tuple[Sequence[str], str]:
    return (in_netns(wan_ns(plan.name), ["nft", "-f", "-"]), wan_script(plan))


def cuts_script(plan: LabPlan, cuts: Iterable[tuple[str, str]]) -> str:
    """Replace the whole set in one transaction, so that cut and heal are idempotent."""
    t = table(plan.name)
    pairs: list[str] = []
    for a, b in cuts:
        wa, wb = plan.node(a).wan_address, plan.node(b).wan_address
        pairs += [f"{wa} . {wb}", f"{wb} . {wa}"]
    lines = [f"flush set bridge {t} cuts"]
    if pairs:
        lines.append(f"add element bridge {t} cuts {{ {', '.join(sorted(set(pairs)))} }}")
    return "\n".join(lines) + "\n"
