"""mesh-push: a private WireGuard + VXLAN + STP mesh, pushed over SSH."""

__version__ = "0.1.0"
