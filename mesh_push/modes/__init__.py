"""The two ways of joining the hosts' bridges, behind one interface (modes.base.Mode): `stp`,
one VXLAN wire per link under 802.1D (modes/stp), and `evpn`, a routed underlay with BGP EVPN
(modes/evpn). The mode is chosen here, once, from `mesh.mode`; nothing outside this package
asks which mode it is in (tests/unit/test_design.py)."""

from __future__ import annotations

from mesh_push.core.model import Mesh
from mesh_push.modes.evpn import EvpnMode
from mesh_push.modes.mode import Mode
from mesh_push.modes.stp import StpMode

_MODES: dict[str, Mode] = {m.name: m for m in (StpMode(), EvpnMode())}
NAMES: tuple[str, ...] = tuple(_MODES)
DEFAULT = NAMES[0]


def named(name: str) -> Mode:
    return _MODES[name]


def of(mesh: Mesh) -> Mode:
    return _MODES[mesh.mode]
