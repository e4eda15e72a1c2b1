"""The lab: real hosts (network namespaces, sshd, WireGuard, VXLAN, STP) on one machine."""
