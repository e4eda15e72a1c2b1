#!/bin/sh
# mesh-push 0.1.0: host epsilon of mesh seed. Generated: do not edit.
# Converges this host from any state: creates what is missing, corrects what differs,
# removes what is no longer planned. Running it twice changes nothing the second time.
set -eu
umask 077
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

WG=wg0
BR=internet
STATE=/var/lib/mesh-push
KEY=/etc/wireguard/wg0.key
MARK=mesh-push
STEP=start
CHANGED=0
MTU_CHANGED=0

trap 'rc=$?; [ "$rc" -eq 0 ] || echo "mesh-push: step \"$STEP\" failed (exit $rc)" >&2' EXIT
step() { STEP=$1; }
did() { echo "changed: $*"; CHANGED=1; }
exists() { [ -e "/sys/class/net/$1" ]; }
mark() { [ "$(cat "/sys/class/net/$1/ifalias" 2>/dev/null)" = "$MARK" ] || ip link set dev "$1" alias "$MARK"; }
ensure_mtu() {
  [ "$(cat "/sys/class/net/$1/mtu")" = "$2" ] && return 0
  ip link set dev "$1" mtu "$2"; did "$1 mtu $2"; MTU_CHANGED=1
}
ensure_up() {
  case "$(ip -o link show dev "$1")" in *"<"*UP*">"*) return 0 ;; esac
  ip link set dev "$1" up; did "$1 up"
}
ensure_addr() {
  found=0
  for have in $(ip -o -4 addr show dev "$1" | awk '{print $4}'); do
    if [ "$have" = "$2" ]; then found=1; else ip addr del "$have" dev "$1"; did "$1 removed $have"; fi
  done
  [ "$found" = 1 ] || { ip addr add "$2" dev "$1"; did "$1 address $2"; }
}
ensure_bridge_opt() {
  [ "$(cat "/sys/class/net/$BR/bridge/$1")" = "$2" ] && return 0
  ip link set dev "$BR" type bridge "$1" "$2"; did "$BR $1 $2"
}
# The pid of this host's re-resolver loop, if one runs. Command line and mount namespace must
# match: a reused pid, or another lab host's loop, is not ours to stop.
reresolver() {
  rr_pid=$(cat "$STATE/reresolve.pid" 2>/dev/null) || return 0
  case $rr_pid in ''|*[!0-9]*) return 0 ;; esac
  [ "$(tr '\0' ' ' 2>/dev/null < "/proc/$rr_pid/cmdline")" = "/bin/sh $STATE/reresolve.sh loop " ] || return 0
  [ "$(readlink "/proc/$rr_pid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || echo "$rr_pid"
}

step "state directory"
mkdir -p "$STATE" "$(dirname "$KEY")"
chmod 0700 "$STATE" "$(dirname "$KEY")"

step "private key"
# keys: host. The private key is made here and never leaves this host. `rotate-keys` leaves
# the next one beside it, already announced to the peers.
if [ -s "$KEY.next" ]; then mv "$KEY.next" "$KEY"; did "private key rotated"; fi
if [ ! -s "$KEY" ]; then wg genkey > "$KEY.new"; mv "$KEY.new" "$KEY"; did "private key generated"; fi

step "wireguard interface"
if exists "$WG" && ! wg show "$WG" public-key >/dev/null 2>&1; then
  ip link del dev "$WG"; did "$WG removed (not a WireGuard interface)"
fi
if ! exists "$WG"; then
  if ip link add dev "$WG" type wireguard 2>/dev/null; then
    did "$WG created (kernel WireGuard)"
  else
    # No WireGuard in this kernel: the userspace implementation, as wg-quick falls back to.
    wireguard-go "$WG" </dev/null >/dev/null 2>&1
    did "$WG created (wireguard-go)"
  fi
fi
mark "$WG"
if [ "$(wg show "$WG" public-key)" != "$(wg pubkey < "$KEY")" ]; then
  wg set "$WG" private-key "$KEY"; did "$WG private key set"
fi
if [ "$(wg show "$WG" listen-port)" != "56560" ]; then
  wg set "$WG" listen-port 56560; did "$WG listen-port 56560"
fi
ensure_mtu "$WG" 1550
ensure_addr "$WG" 10.88.88.4/24
ensure_up "$WG"

step "wireguard peers"
# One `wg set` per peer that differs: the sessions of the others are never touched.
# (`wg syncconf` would also reset the private key and port, as the file has neither.)
allowed=$(wg show "$WG" allowed-ips)
keepalive=$(wg show "$WG" persistent-keepalive)
endpoints=$(wg show "$WG" endpoints)
field() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k {print $2}'; }
if [ "$(field "$allowed" wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0=)" != "10.88.88.1/32" ] \
  || [ "$(field "$keepalive" wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0=)" != "off" ] \
  || [ "$(field "$endpoints" wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0=)" != "86.188.161.69:56560" ]; then
  wg set "$WG" peer wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0= allowed-ips 10.88.88.1/32 endpoint 86.188.161.69:56560 persistent-keepalive off
  did "$WG peer bob"
fi
if [ "$(field "$allowed" R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I=)" != "10.88.88.2/32" ] \
  || [ "$(field "$keepalive" R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I=)" != "off" ] \
  || [ "$(field "$endpoints" R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I=)" != "198.51.100.2:56560" ]; then
  wg set "$WG" peer R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I= allowed-ips 10.88.88.2/32 endpoint 198.51.100.2:56560 persistent-keepalive off
  did "$WG peer rho"
fi
if [ "$(field "$allowed" RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0=)" != "10.88.88.3/32" ] \
  || [ "$(field "$keepalive" RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0=)" != "off" ]; then
  wg set "$WG" peer RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0= allowed-ips 10.88.88.3/32 persistent-keepalive off
  did "$WG peer vorke"
fi
for pub in $(wg show "$WG" peers); do
  case " wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0= R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I= RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0= " in *" $pub "*) continue ;; esac
  wg set "$WG" peer "$pub" remove; did "$WG peer $pub removed"
done

step "re-resolver"
rr_pid=$(reresolver)
# No peer is known by DNS name: stop a loop an earlier plan started.
if [ -n "$rr_pid" ]; then kill "$rr_pid"; did "re-resolver stopped"; fi
rm -f "$STATE/reresolve.sh" "$STATE/reresolve.pid" "$STATE/reresolve.log"

step "bridge"
if exists "$BR" && [ ! -d "/sys/class/net/$BR/bridge" ]; then
  ip link del dev "$BR"; did "$BR removed (not a bridge)"
fi
if ! exists "$BR"; then
  ip link add name "$BR" type bridge stp_state 1; did "$BR created"
fi
mark "$BR"
ensure_bridge_opt stp_state 1
ensure_bridge_opt hello_time 200
ensure_bridge_opt forward_delay 1500
ensure_bridge_opt max_age 2000
# During a topology change the kernel ages MACs faster (2 × forward_delay on Linux 6) and
# shows that as ageing_time: that is STP working, not a difference to correct.
if [ "$(cat "/sys/class/net/$BR/bridge/topology_change")" != 1 ]; then
  ensure_bridge_opt ageing_time 30000
fi
ensure_bridge_opt priority 32768
if [ "$(cat "/sys/class/net/$BR/address")" != "02:6e:bf:3c:8d:63" ]; then
  ip link set dev "$BR" address 02:6e:bf:3c:8d:63; did "$BR address 02:6e:bf:3c:8d:63"
fi
ensure_mtu "$BR" 1500
ensure_addr "$BR" 10.99.99.4/24

step "wires"
# Wires that are ours (marked) but no longer planned go first.
for dev in /sys/class/net/*; do
  name=${dev##*/}
  [ "$(cat "$dev/ifalias" 2>/dev/null)" = "$MARK" ] || continue
  case " $WG $BR bob rho vorke " in *" $name "*) continue ;; esac
  ip link del dev "$name"; did "wire $name removed"
done
step "wire bob"
case "$(ip -d -o link show dev bob 2>/dev/null)" in
  *"vxlan id 2 remote 10.88.88.1 local 10.88.88.4 "*"dstport 4789 "*) ;;
  *)
    if exists bob; then ip link del dev bob; fi
    ip link add name bob type vxlan id 2 remote 10.88.88.1 local 10.88.88.4 dstport 4789
    did "wire bob created (vni 2)"
    ;;
esac
mark bob
ensure_mtu bob 1500
if [ "$(readlink "/sys/class/net/bob/master" 2>/dev/null)" != "../$BR" ]; then
  ip link set dev bob master "$BR"; did "wire bob plugged into $BR"
fi
if [ "$(cat /sys/class/net/bob/brport/path_cost)" != "80" ]; then
  bridge link set dev bob cost 80; did "wire bob cost 80"
fi
ensure_up bob
step "wire rho"
case "$(ip -d -o link show dev rho 2>/dev/null)" in
  *"vxlan id 4 remote 10.88.88.2 local 10.88.88.4 "*"dstport 4789 "*) ;;
  *)
    if exists rho; then ip link del dev rho; fi
    ip link add name rho type vxlan id 4 remote 10.88.88.2 local 10.88.88.4 dstport 4789
    did "wire rho created (vni 4)"
    ;;
esac
mark rho
ensure_mtu rho 1500
if [ "$(readlink "/sys/class/net/rho/master" 2>/dev/null)" != "../$BR" ]; then
  ip link set dev rho master "$BR"; did "wire rho plugged into $BR"
fi
if [ "$(cat /sys/class/net/rho/brport/path_cost)" != "716" ]; then
  bridge link set dev rho cost 716; did "wire rho cost 716"
fi
ensure_up rho
step "wire vorke"
case "$(ip -d -o link show dev vorke 2>/dev/null)" in
  *"vxlan id 1 remote 10.88.88.3 local 10.88.88.4 "*"dstport 4789 "*) ;;
  *)
    if exists vorke; then ip link del dev vorke; fi
    ip link add name vorke type vxlan id 1 remote 10.88.88.3 local 10.88.88.4 dstport 4789
    did "wire vorke created (vni 1)"
    ;;
esac
mark vorke
ensure_mtu vorke 1500
if [ "$(readlink "/sys/class/net/vorke/master" 2>/dev/null)" != "../$BR" ]; then
  ip link set dev vorke master "$BR"; did "wire vorke plugged into $BR"
fi
if [ "$(cat /sys/class/net/vorke/brport/path_cost)" != "18" ]; then
  bridge link set dev vorke cost 18; did "wire vorke cost 18"
fi
ensure_up vorke

step "bridge up"
ensure_up "$BR"
if [ "$MTU_CHANGED" = 1 ]; then
  # An old "frag needed" exception would otherwise outlive the MTU change.
  ip route flush cache
fi

step "done"
[ "$CHANGED" = 1 ] || echo "no changes"
