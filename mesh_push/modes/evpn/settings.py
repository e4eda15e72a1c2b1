"""`mesh.evpn`, and what evpn mode needs of the rest of the inventory (docs/evpn.md): each link
numbers an interface (WG-VNI), a port (port + VNI) and a /31, so its VNI is bounded. Pure."""

from __future__ import annotations

from mesh_push.core.model import Evpn
from mesh_push.core.problems import Problems
from mesh_push.core.section import Draft, Section
from mesh_push.core.values import IFNAME_MAX, VNI_MAX

# Up to here the links' /31s (169.254.0.0 + 2 × VNI) stay below 169.254.169.0/24, where clouds
# answer their metadata requests.
VNI_LIMIT = 21_000
# WG-VNI and WG-vx must be interface names: WG leaves room for "-21000".
WG_NAME_MAX = IFNAME_MAX - 6
ASN_MAX = 4_294_967_294


def read(sec: Section) -> Evpn:
    asn = sec.int_in("asn", 1, ASN_MAX, 65000)
    vni = sec.int_in("vni", 1, VNI_MAX, 100)
    sec.done()
    return Evpn(asn or 65000, vni or 100)


def check(_evpn: Evpn, draft: Draft, problems: Problems) -> None:
    wg_if, wg_port = draft.wg_interface, draft.wg_port
    if isinstance(wg_if, str) and len(wg_if.encode()) > WG_NAME_MAX:
        problems.add(
            ("mesh", "wireguard", "interface"),
            f"must be at most {WG_NAME_MAX} bytes in evpn mode: it names the link "
            f"interfaces ({wg_if}-VNI) and the VXLAN device ({wg_if}-vx)",
        )
    for p, lk in draft.links:
        if lk.vni > VNI_LIMIT:
            problems.add((*p, "vni"), f"must be at most {VNI_LIMIT} in evpn mode, not {lk.vni}")
        elif wg_port is not None and wg_port + lk.vni > 65535:
            problems.add(
                (*p, "vni"),
                f"mesh.wireguard.port + vni must be a port (at most 65535) in evpn mode: "
                f"{wg_port} + {lk.vni}",
            )
