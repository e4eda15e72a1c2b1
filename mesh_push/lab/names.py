"""DNS names in the lab, pure: which names every host's /etc/hosts serves, and what the lab
looks like after `lab move` gives a host a new wan address. No I/O."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

from mesh_push.lab.addresses import LabPlan, Node
from mesh_push.lab.errors import LabError


def served_names(plan: LabPlan) -> dict[str, str]:
    """name → address of every static host known by DNS name: the lab is their DNS."""
    return {n.dns_name: str(n.address) for n in plan.nodes if n.dns_name}


def moved(plan: LabPlan, alias: str, address: str) -> LabPlan:
    """The lab with host `alias` at wan `address`, or a LabError saying why it cannot move."""
    node = plan.node(alias)
    _check_movable(node)
    try:
        new = IPv4Address(address)
    except ValueError:
        raise LabError(f"{address!r} is not an IPv4 address") from None
    if new not in plan.wan or new in (plan.wan.network_address, plan.wan.broadcast_address):
        raise LabError(f"{new} is not a usable address of the lab's wan {plan.wan}")
    if new == plan.controller:
        raise LabError(f"{new} is the controller's address")
    for other in plan.nodes:
        if other.alias != alias and new in (other.address, other.wan_address):
            raise LabError(f"{new} is already {other.alias}'s address")
    nodes = tuple(
        dataclasses.replace(n, address=new, wan_address=new) if n.alias == alias else n
        for n in plan.nodes
    )
    return dataclasses.replace(plan, nodes=nodes)


def _check_movable(node: Node) -> None:
    if node.role == "router" or node.kind == "nat":
        raise LabError(
            f"{node.alias} is not on the wan (a NAT host or a router): only static hosts "
            "known by DNS name and dynamic hosts move"
        )
    if node.kind == "static" and node.dns_name is None:
        raise LabError(
            f"{node.alias}'s inventory address is an IP address: its peers could never follow "
            "it. Give it a DNS name (hosts.NAME.address) to move it"
        )
