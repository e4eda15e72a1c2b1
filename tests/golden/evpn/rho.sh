#!/bin/sh
# mesh-push 0.1.0: host rho of mesh labevpn. Generated: do not edit.
# Mode evpn (docs/evpn.md): one WireGuard interface per link, routed by the mesh's own FRR
# instance (OSPF with BFD underneath, BGP EVPN on top), and one VXLAN device in the bridge.
# Converges this host from any state; running it twice changes nothing the second time. It
# touches only what this mesh made: interfaces with its mark, its state directory, key, boot
# unit and FRR instance. Anything else in its way stops it before it changes anything.
# With MESH_PUSH_CHECK=1 in its environment (`mesh-push up --check`) it changes nothing and
# says the same "changed:" lines (see stp/host.sh.j2).
set -eu
umask 077
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

MESH=labevpn
BR=internet
VX=wg0-vx
STATE=/var/lib/mesh-push/labevpn
KEY=/etc/wireguard/mesh-push-labevpn.key
PSKDIR=/etc/wireguard/mesh-push-labevpn.psk
MARK=mesh-push:labevpn
LEGACY_MARK=mesh-push
VXLAN_PORT=4789
SEGMENT=100
VTEP=10.88.88.2
PS=mesh-push-labevpn
# The VTEPs' network: unreachable here but for OSPF's /32s (step "vtep routes"). The route is
# this mesh's by its protocol number (unassigned in iproute2's rt_protos), as down removes it.
VTEPS=10.88.88.0/24
NOROUTE_PROTO=233
RULE_PREF=20000
ETC=/etc/frr/$PS
RUN=/var/run/frr/$PS
CHECK=${MESH_PUSH_CHECK:-0}
CHECK_ROTATE=${MESH_PUSH_CHECK_ROTATE:-0}
STEP=start
CHANGED=0
MTU_CHANGED=0
REFUSED=0
trap 'rc=$?; [ "$rc" -eq 0 ] || printf "mesh-push: step \"%s\" failed (exit %s)\n" "$STEP" "$rc" >&2' EXIT
step() { STEP=$1; }
did() { printf 'changed: %s\n' "$*"; CHANGED=1; }
act() { [ "$CHECK" = 1 ] || "$@"; }
# Interfaces this run creates: `created DEV MESSAGE` says so once; `fresh DEV` then holds, and
# `said DEV MESSAGE` reports a setting only of an interface that was there before. When
# checking, a fresh one does not exist, so nothing about it is read.
NEW=' '
created() { NEW="$NEW$1 "; did "$2"; }
fresh() { case $NEW in *" $1 "*) return 0 ;; esac; return 1; }
said() { if fresh "$1"; then CHANGED=1; else did "$2"; fi; }
exists() { [ -e "/sys/class/net/$1" ]; }
alias_of() { cat "/sys/class/net/$1/ifalias" 2>/dev/null || true; }
# This mesh's: its mark, or the mark every mesh shared before meshes had names (asked only
# of names this mesh plans: such an interface is re-marked).
# And this run's own: what `up --adopt` takes over (include/adopt.sh.j2).
ADOPTED=' '
REJECTED=' '
ours() {
  case $ADOPTED in *" $1 "*) return 0 ;; esac
  case "$(alias_of "$1")" in "$MARK"|"$LEGACY_MARK") return 0 ;; esac; return 1
}
mark() {
  fresh "$1" && { act ip link set dev "$1" alias "$MARK"; return 0; }
  was=$(alias_of "$1")
  [ "$was" = "$MARK" ] && return 0
  act ip link set dev "$1" alias "$MARK"
  if [ "$was" = "$LEGACY_MARK" ]; then did "$1 marked as mesh $MESH's (was $LEGACY_MARK)"; fi
}
refuse() { printf 'mesh-push: %s: refusing to touch it; %s\n' "$1" "$2" >&2; REFUSED=1; }
# Interface $1 is in the way and not this mesh's: refused, saying whose it is. One with another
# mesh's mark is most often this very mesh under another name (its inventory renamed or
# copied without mesh.name), so the advice says how to be that mesh again; $2 otherwise.
foreign() {
  case $REJECTED in *" $1 "*) return 0 ;; esac  # refused already, saying what differs
  was=$(alias_of "$1")
  case $was in
    "$LEGACY_MARK:"?*)
      other=${was#"$LEGACY_MARK:"}
      refuse "$1 was made by mesh $other, not mesh $MESH" "if this inventory describes mesh $other (its file renamed or copied without mesh.name), set mesh.name: $other; if not, $2" ;;
    *) refuse "$1 exists and was not made by mesh $MESH" "$2; or take it over as it is, where it matches the plan: up --adopt (docs/adopt.md)" ;;
  esac
}
ensure_mtu() {
  if ! { [ "$CHECK" = 1 ] && fresh "$1"; }; then
    [ "$(cat "/sys/class/net/$1/mtu")" = "$2" ] && return 0
  fi
  act ip link set dev "$1" mtu "$2"; said "$1" "$1 mtu $2"; MTU_CHANGED=1
}
ensure_up() {
  if ! { [ "$CHECK" = 1 ] && fresh "$1"; }; then
    case "$(ip -o link show dev "$1")" in *"<"*UP*">"*) return 0 ;; esac
  fi
  act ip link set dev "$1" up; said "$1" "$1 up"
}
# ensure_addr DEV ADDRESS...: exactly these IPv4 addresses on DEV.
ensure_addr() {
  dev=$1; shift
  have=
  if ! { [ "$CHECK" = 1 ] && fresh "$dev"; }; then
    have=$(ip -o -4 addr show dev "$dev" | awk '{print $4}')
    for a in $have; do
      case " $* " in *" $a "*) ;; *) act ip addr del "$a" dev "$dev"; said "$dev" "$dev removed $a" ;; esac
    done
  fi
  for a in "$@"; do
    found=0
    for h in $have; do [ "$h" != "$a" ] || found=1; done
    [ "$found" = 1 ] || { act ip addr add "$a" dev "$dev"; said "$dev" "$dev address $a"; }
  done
}
# ensure_addr6 DEV ADDRESS: exactly this static global IPv6 address on DEV. Link-local ones and
# any the kernel configured by itself (SLAAC) are the kernel's. No duplicate address detection:
# the plan gives each host its own, and DAD would hold the address back for a second or two.
ensure_addr6() {
  have=
  if ! { [ "$CHECK" = 1 ] && fresh "$1"; }; then
    have=$(ip -o -6 addr show dev "$1" scope global permanent | awk '{print $4}')
    for a in $have; do
      [ "$a" = "$2" ] || { act ip -6 addr del "$a" dev "$1"; said "$1" "$1 removed $a"; }
    done
  fi
  for a in $have; do [ "$a" != "$2" ] || return 0; done
  act ip -6 addr add "$2" dev "$1" nodad; said "$1" "$1 address $2"
}
# ensure_tx DEV on|off: TX checksum offload, as the write-up sets it (`ethtool -K DEV tx off`).
tx_of() { ethtool -k "$1" 2>/dev/null | sed -n 's/^tx-checksumming: \([a-z]*\).*/\1/p'; }
ensure_tx() {
  if ! { [ "$CHECK" = 1 ] && fresh "$1"; }; then
    [ "$(tx_of "$1")" = "$2" ] && return 0
  fi
  act ethtool -K "$1" tx "$2" >/dev/null; said "$1" "$1 tx checksumming $2"
}
ensure_bridge_opt() {
  if ! { [ "$CHECK" = 1 ] && fresh "$BR"; }; then
    [ "$(cat "/sys/class/net/$BR/bridge/$1")" = "$2" ] && return 0
  fi
  act ip link set dev "$BR" type bridge "$1" "$2"; said "$BR" "$BR $1 $2"
}
# A WireGuard interface $1, made the way the host's facts chose (host/facts.py).
make_wg() {
  if [ "$CHECK" = 1 ]; then
    # Whether the kernel can: loaded, built in or loadable (as the facts tell).
    if [ -d /sys/module/wireguard ] || modprobe -nq wireguard 2>/dev/null; then
      created "$1" "$1 created (kernel WireGuard)"
    else
      created "$1" "$1 created (wireguard-go)"
    fi
  elif ip link add dev "$1" type wireguard 2>/dev/null; then
    created "$1" "$1 created (kernel WireGuard)"
  else
    # No WireGuard in this kernel: the userspace implementation, as wg-quick falls back to.
    wireguard-go "$1" </dev/null >/dev/null 2>&1
    created "$1" "$1 created (wireguard-go)"
  fi
}
# Pre-shared keys are compared by fingerprint (16 hex digits of SHA-256; the controller's
# keys.psk_fingerprint), inside the shell: a key is never an argument of a program, and never
# printed. psk_fps turns `wg show IF preshared-keys` into `PUBKEY<TAB>fingerprint|none`.
fp_of() { printf 'mesh-push psk %s' "$1" | sha256sum | cut -c1-16; }
psk_fps() {
  while read -r pub psk; do
    case $psk in ''|'(none)') printf '%s\tnone\n' "$pub" ;; *) printf '%s\t%s\n' "$pub" "$(fp_of "$psk")" ;; esac
  done
  psk=
}
file_fp() { k=; if [ -s "$1" ]; then IFS= read -r k < "$1" || true; fi; if [ -n "$k" ]; then fp_of "$k"; fi; k=; }
# The pid of this host's re-resolver loop, if one runs. Command line and mount namespace must
# match: a reused pid, or another lab host's loop, is not ours to stop.
reresolver() {
  rr_pid=$(cat "$1/reresolve.pid" 2>/dev/null) || return 0
  case $rr_pid in ''|*[!0-9]*) return 0 ;; esac
  [ "$(tr '\0' ' ' 2>/dev/null < "/proc/$rr_pid/cmdline")" = "/bin/sh $1/reresolve.sh loop " ] || return 0
  [ "$(readlink "/proc/$rr_pid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || echo "$rr_pid"
}
# The interfaces this host plans for the mesh.
planned() {
  case $1 in "$BR"|"$VX"|wg0-4|wg0-5|wg0-6|wg0-7) return 0 ;; esac
  return 1
}
# A daemon whose pid file names a live process in this network namespace.
alive() {
  p=$(cat "$1" 2>/dev/null) || return 1
  case $p in ''|*[!0-9]*) return 1 ;; esac
  [ -d "/proc/$p" ] && [ "$(readlink "/proc/$p/ns/net")" = "$(readlink /proc/self/ns/net)" ]
}
frr_running() {
  for d in watchfrr zebra bgpd ospfd bfdd; do alive "$RUN/$d.pid" || return 1; done
}

step "adopt"
ADOPT=${MESH_PUSH_ADOPT:-0}
ADOPTED_PUB= ADOPTED_KEYDEV=
# adoptable DEV: up --adopt, DEV is there, and no mesh (this one or another) marked it.
adoptable() {
  [ "$ADOPT" = 1 ] && exists "$1" || return 1
  case "$(alias_of "$1")" in "$LEGACY_MARK"|"$LEGACY_MARK:"*) return 1 ;; esac
}
take() { ADOPTED="$ADOPTED$1 "; did "$1 adopted ($2)"; }
mismatch() {
  REJECTED="$REJECTED$1 "
  refuse "$1 exists and does not match the plan: $2" "make it match, remove it, or take --adopt away"
}
v4_addrs() { ip -o -4 addr show dev "$1" 2>/dev/null | awk '{printf "%s%s", s, $4; s = " "}'; }
has_addr() { case " $(v4_addrs "$1") " in *" $2 "*) return 0 ;; esac; return 1; }
# adopt_wg DEV PORT ADDRESS PEERKEY...
adopt_wg() {
  dev=$1 port=$2 addr=$3; shift 3
  adoptable "$dev" || return 0
  if ! pub=$(wg show "$dev" public-key 2>/dev/null); then mismatch "$dev" "not a WireGuard interface"; return 0; fi
  held=$(wg show "$dev" listen-port)
  if [ "$held" != "$port" ]; then mismatch "$dev" "it listens on port $held, the plan on $port"; return 0; fi
  # up --adopt's facts step moved its key into $KEY (keys: host); any other would replace it.
  if [ -s "$KEY" ] && [ "$(wg pubkey < "$KEY")" != "$pub" ]; then
    mismatch "$dev" "its private key is not the one in $KEY"; return 0
  fi
  [ -s "$KEY" ] || { ADOPTED_PUB=${ADOPTED_PUB:-$pub}; ADOPTED_KEYDEV=${ADOPTED_KEYDEV:-$dev}; }
  if ! has_addr "$dev" "$addr"; then mismatch "$dev" "its addresses are '$(v4_addrs "$dev")', the plan's is $addr"; return 0; fi
  for peer in $(wg show "$dev" peers); do
    case " $* " in *" $peer "*) ;; *) mismatch "$dev" "it has peer $peer, which the plan does not"; return 0 ;; esac
  done
  take "$dev" "WireGuard, port $port, $addr"
}
# adopt_bridge DEV ADDRESS
adopt_bridge() {
  adoptable "$1" || return 0
  if [ ! -d "/sys/class/net/$1/bridge" ]; then mismatch "$1" "not a bridge"; return 0; fi
  if ! has_addr "$1" "$2"; then mismatch "$1" "its addresses are '$(v4_addrs "$1")', the plan's is $2"; return 0; fi
  take "$1" "bridge, $2"
}
# adopt_vxlan DEV VNI REMOTE LOCAL ("" for REMOTE: none planned)
adopt_vxlan() {
  adoptable "$1" || return 0
  seen=$(ip -d -o link show dev "$1" 2>/dev/null | awk '{
    for (i = 2; i < NF; i++) {
      if ($i == "id" && $(i - 1) == "vxlan") id = $(i + 1)
      if ($i == "remote") r = $(i + 1)
      if ($i == "local") l = $(i + 1)
      if ($i == "dstport") p = $(i + 1)
    }
    if (id != "") print id, (r == "" ? "-" : r), (l == "" ? "-" : l), p
  }')
  [ -n "$seen" ] || { mismatch "$1" "not a VXLAN interface"; return 0; }
  set -- "$1" "$2" "${3:--}" "$4" $seen
  if [ "$5" != "$2" ] || [ "$8" != "$VXLAN_PORT" ]; then
    mismatch "$1" "VXLAN id $5 port $8, the plan's is id $2 port $VXLAN_PORT"; return 0
  fi
  if [ "$6" != "$3" ]; then mismatch "$1" "its remote is $6, the plan's is $3"; return 0; fi
  if [ "$7" != - ] && [ "$7" != "$4" ]; then mismatch "$1" "its local address is $7, the plan's is $4"; return 0; fi
  take "$1" "VXLAN id $2"
}
adopt_wg wg0-4 56564 169.254.0.9/31 94rUpd4OBtRN0mdA1HsrKDQy+Pw15MSCBvIpakW7IHA=
adopt_wg wg0-5 56565 169.254.0.11/31 RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0=
adopt_wg wg0-6 56566 169.254.0.13/31 wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0=
adopt_wg wg0-7 56567 169.254.0.14/31 30up729qmoJrUMDLwZQ3X4PLKC9W+utaKwj9kIkY2hI=
adopt_bridge "$BR" 10.99.99.2/24
adopt_vxlan wg0-vx 100 '' 10.88.88.2
if [ "$ADOPT" = 1 ] && [ -d /run/systemd/system ]; then
  # What brought an adopted WireGuard interface up at boot would now race the boot unit for it.
  # Disabled, not stopped: stopping wg-quick would take the interface down with it.
  for dev in $ADOPTED; do
    unit="wg-quick@$dev.service"
    if systemctl -q is-enabled "$unit" 2>/dev/null; then
      act systemctl disable -q "$unit"; did "$unit disabled (it made $dev; mesh-push's boot unit brings it up now)"
    fi
  done
fi

step "ownership"
# Every check before any change (see stp/host.sh.j2).
if [ ! -x /usr/lib/frr/frrinit.sh ] || [ ! -x /usr/lib/frr/zebra ]; then
  printf 'mesh-push: FRR is not installed; evpn mode needs it: apt-get install frr\n' >&2; REFUSED=1
fi
for dev in "$BR" "$VX" wg0-4 wg0-5 wg0-6 wg0-7; do
  if exists "$dev" && ! ours "$dev"; then
    foreign "$dev" "choose another mesh.bridge.name or mesh.wireguard.interface"
  fi
done
others() {
  [ "$1" != "$2" ] && ! { [ "$(alias_of "$1")" = "$MARK" ] || { planned "$1" && ours "$1"; }; }
}
held_ports=$(wg show all listen-port 2>/dev/null || true)
port_free() {
  while read -r held port; do
    if [ -n "$held" ] && [ "$port" = "$1" ] && others "$held" "$2"; then
      refuse "WireGuard interface $held listens on port $port, which $2 needs" "choose another mesh.wireguard.port"
    fi
  done <<MESH_PUSH_PORTS
$held_ports
MESH_PUSH_PORTS
}
port_free 56564 wg0-4
port_free 56565 wg0-5
port_free 56566 wg0-6
port_free 56567 wg0-7
while read -r held id port; do
  if [ -n "$held" ] && [ "$id" = "$SEGMENT" ] && [ "$port" = "$VXLAN_PORT" ] && others "$held" "$VX"; then
    refuse "VXLAN interface $held has id $id on port $port" "choose another mesh.evpn.vni or mesh.vxlan_port"
  fi
done <<MESH_PUSH_VXLANS
$(ip -d -o link show type vxlan 2>/dev/null | awk '{
  n = $2; sub(/:$/, "", n); sub(/@.*/, "", n); id = ""; port = ""
  for (i = 2; i < NF; i++) { if ($i == "id" && $(i - 1) == "vxlan") id = $(i + 1); if ($i == "dstport") port = $(i + 1) }
  print n, id, port
}' || true)
MESH_PUSH_VXLANS
# Two zebras in one network namespace would fight over its routes: another FRR instance
# running here (the host's own frr.service, another mesh's) stops this one.
for pid_file in /var/run/frr/zebra.pid /var/run/frr/*/zebra.pid; do
  [ "$pid_file" != "$RUN/zebra.pid" ] || continue
  if alive "$pid_file"; then
    other=${pid_file%/zebra.pid}; other=${other#/var/run/frr}; other=${other#/}
    refuse "FRR instance ${other:-frr (the default one)} runs zebra in this network namespace" \
      "evpn mode runs its own instance ($PS): stop that one (systemctl disable --now frr), or use mode stp"
  fi
done
vtep_route=$(ip -o route show exact "$VTEPS" 2>/dev/null || true)
case $vtep_route in
  ''|"unreachable $VTEPS proto $NOROUTE_PROTO "*) ;;
  # Through an interface of this mesh (stp mode's, removed below as unplanned).
  *" dev "*) vtep_dev=${vtep_route#* dev }; ours "${vtep_dev%% *}" || vtep_route=foreign ;;
  *) vtep_route=foreign ;;
esac
if [ "$vtep_route" = foreign ]; then
  refuse "a route to $VTEPS" "mesh.wireguard.network must be the mesh's own"
fi
[ "$REFUSED" = 0 ] || exit 1

step "state directory"
act mkdir -p "$STATE" "$(dirname "$KEY")"
act chmod 0700 "$STATE" "$(dirname "$KEY")"

step "private key"
# keys: host. The private key is made here and never leaves this host. `rotate-keys` leaves
# the next one beside it, already announced to the peers.
# The key that will be in place (when checking, a rotation that `rotate-keys --check` asks
# about counts as staged; a key still to be made is none).
KEYSRC=$KEY
if [ -s "$KEY.next" ] || [ "$CHECK$CHECK_ROTATE" = 11 ]; then
  act mv "$KEY.next" "$KEY"; did "private key rotated"
  if [ "$CHECK" = 1 ]; then KEYSRC=$KEY.next; [ -s "$KEYSRC" ] || KEYSRC=; fi
fi
if [ -n "$KEYSRC" ] && [ ! -s "$KEYSRC" ] && [ "$CHECK" = 1 ] && [ -n "$ADOPTED_PUB" ]; then
  # up --adopt --check: the facts step of `up --adopt` moves the adopted interface's key here.
  did "private key kept: $ADOPTED_KEYDEV's moves to $KEY"; KEYSRC=
elif [ -n "$KEYSRC" ] && [ ! -s "$KEYSRC" ]; then
  act sh -c 'wg genkey > "$1.new" && mv "$1.new" "$1"' sh "$KEY"; did "private key generated"
  [ "$CHECK" = 0 ] || KEYSRC=
fi
# The public half of the key in place after this step (none: not known while checking).
KEYPUB=$ADOPTED_PUB
if [ -n "$KEYSRC" ]; then KEYPUB=$(wg pubkey < "$KEYSRC"); fi
step "unplanned interfaces"
for dev in /sys/class/net/* /sys/class/net/.[!.]* /sys/class/net/..?*; do
  [ -e "$dev" ] || continue
  name=${dev##*/}
  [ "$(alias_of "$name")" = "$MARK" ] || continue
  planned "$name" && continue
  act ip link del dev "$name"; did "$name removed (no longer planned)"
done

WG=wg0-4
PORT=56564
step "link "wg0-4
WG_GONE=0
if exists "$WG" && ! wg show "$WG" public-key >/dev/null 2>&1; then
  act ip link del dev "$WG"; did "$WG removed (not a WireGuard interface)"; WG_GONE=$CHECK
fi
if ! exists "$WG" || [ "$WG_GONE" = 1 ]; then
  make_wg "$WG"
fi
mark "$WG"
if fresh "$WG" || [ -z "$KEYPUB" ] || [ "$(wg show "$WG" public-key)" != "$KEYPUB" ]; then
  act wg set "$WG" private-key "$KEY"; said "$WG" "$WG private key set"
fi
if fresh "$WG" || [ "$(wg show "$WG" listen-port)" != "$PORT" ]; then
  act wg set "$WG" listen-port "$PORT"; said "$WG" "$WG listen-port $PORT"
fi
ensure_mtu "$WG" 1550
ensure_addr "$WG" 169.254.0.9/31
# Forwarding on this interface only: what comes in over a link may go on to another link.
if fresh "$WG" || [ "$(cat "/proc/sys/net/ipv4/conf/$WG/forwarding")" != 1 ]; then
  act sh -c 'echo 1 > "/proc/sys/net/ipv4/conf/$1/forwarding"' sh "$WG"; said "$WG" "$WG forwarding on"
fi
# OSPF says hello by multicast: kernel WireGuard interfaces come without the flag.
case "$(ip -o link show dev "$WG" 2>/dev/null)" in
  *"<"*MULTICAST*">"*) ;;
  *) act ip link set dev "$WG" multicast on; said "$WG" "$WG multicast on" ;;
esac
ensure_up "$WG"

step "link "wg0-4" peers"
# One `wg set` per peer that differs: the sessions of the others are never touched.
# (`wg syncconf` would also reset the private key and port, as the file has neither.)
allowed= keepalive= endpoints= current= psks=
if ! fresh "$WG" || [ "$CHECK" = 0 ]; then
  allowed=$(wg show "$WG" allowed-ips)
  psks=$(wg show "$WG" preshared-keys | psk_fps)
  keepalive=$(wg show "$WG" persistent-keepalive)
  endpoints=$(wg show "$WG" endpoints)
  current=$(wg show "$WG" peers)
fi
field() { printf '%s\n' "$1" | k="$2" awk '$1 == ENVIRON["k"] {print $2}'; }
# A peer's allowed-ips, sorted and one space apart (wg lists them in its own order).
ips() { printf '%s\n' "$1" | k="$2" awk '$1 == ENVIRON["k"] {for (i = 2; i <= NF; i++) print $i}' | sort | awk '{printf "%s%s", s, $0; s = " "}'; }
if [ "$(ips "$allowed" 94rUpd4OBtRN0mdA1HsrKDQy+Pw15MSCBvIpakW7IHA=)" != '10.88.88.0/24 169.254.0.8/32 224.0.0.5/32' ] \
  || [ "$(field "$keepalive" 94rUpd4OBtRN0mdA1HsrKDQy+Pw15MSCBvIpakW7IHA=)" != off ] \
  || [ "$(field "$endpoints" 94rUpd4OBtRN0mdA1HsrKDQy+Pw15MSCBvIpakW7IHA=)" != 198.18.4.14:56564 ]; then
  act wg set "$WG" peer 94rUpd4OBtRN0mdA1HsrKDQy+Pw15MSCBvIpakW7IHA= allowed-ips 10.88.88.0/24,169.254.0.8/32,224.0.0.5/32 endpoint 198.18.4.14:56564 persistent-keepalive off
  did "$WG peer "epsilon
fi
case $(field "$psks" 94rUpd4OBtRN0mdA1HsrKDQy+Pw15MSCBvIpakW7IHA=) in
  ''|none) ;;
  *) act wg set "$WG" peer 94rUpd4OBtRN0mdA1HsrKDQy+Pw15MSCBvIpakW7IHA= preshared-key /dev/null; did "$WG peer "epsilon" preshared-key removed" ;;
esac
psks=
for pub in $current; do
  case $pub in 94rUpd4OBtRN0mdA1HsrKDQy+Pw15MSCBvIpakW7IHA=|'') continue ;; esac
  act wg set "$WG" peer "$pub" remove; did "$WG peer $pub removed"
done

WG=wg0-5
PORT=56565
step "link "wg0-5
WG_GONE=0
if exists "$WG" && ! wg show "$WG" public-key >/dev/null 2>&1; then
  act ip link del dev "$WG"; did "$WG removed (not a WireGuard interface)"; WG_GONE=$CHECK
fi
if ! exists "$WG" || [ "$WG_GONE" = 1 ]; then
  make_wg "$WG"
fi
mark "$WG"
if fresh "$WG" || [ -z "$KEYPUB" ] || [ "$(wg show "$WG" public-key)" != "$KEYPUB" ]; then
  act wg set "$WG" private-key "$KEY"; said "$WG" "$WG private key set"
fi
if fresh "$WG" || [ "$(wg show "$WG" listen-port)" != "$PORT" ]; then
  act wg set "$WG" listen-port "$PORT"; said "$WG" "$WG listen-port $PORT"
fi
ensure_mtu "$WG" 1550
ensure_addr "$WG" 169.254.0.11/31
# Forwarding on this interface only: what comes in over a link may go on to another link.
if fresh "$WG" || [ "$(cat "/proc/sys/net/ipv4/conf/$WG/forwarding")" != 1 ]; then
  act sh -c 'echo 1 > "/proc/sys/net/ipv4/conf/$1/forwarding"' sh "$WG"; said "$WG" "$WG forwarding on"
fi
# OSPF says hello by multicast: kernel WireGuard interfaces come without the flag.
case "$(ip -o link show dev "$WG" 2>/dev/null)" in
  *"<"*MULTICAST*">"*) ;;
  *) act ip link set dev "$WG" multicast on; said "$WG" "$WG multicast on" ;;
esac
ensure_up "$WG"

step "link "wg0-5" peers"
# One `wg set` per peer that differs: the sessions of the others are never touched.
# (`wg syncconf` would also reset the private key and port, as the file has neither.)
allowed= keepalive= endpoints= current= psks=
if ! fresh "$WG" || [ "$CHECK" = 0 ]; then
  allowed=$(wg show "$WG" allowed-ips)
  psks=$(wg show "$WG" preshared-keys | psk_fps)
  keepalive=$(wg show "$WG" persistent-keepalive)
  endpoints=$(wg show "$WG" endpoints)
  current=$(wg show "$WG" peers)
fi
field() { printf '%s\n' "$1" | k="$2" awk '$1 == ENVIRON["k"] {print $2}'; }
# A peer's allowed-ips, sorted and one space apart (wg lists them in its own order).
ips() { printf '%s\n' "$1" | k="$2" awk '$1 == ENVIRON["k"] {for (i = 2; i <= NF; i++) print $i}' | sort | awk '{printf "%s%s", s, $0; s = " "}'; }
if [ "$(ips "$allowed" RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0=)" != '10.88.88.0/24 169.254.0.10/32 224.0.0.5/32' ] \
  || [ "$(field "$keepalive" RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0=)" != off ]; then
  act wg set "$WG" peer RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0= allowed-ips 10.88.88.0/24,169.254.0.10/32,224.0.0.5/32 persistent-keepalive off
  did "$WG peer "vorke
fi
case $(field "$psks" RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0=) in
  ''|none) ;;
  *) act wg set "$WG" peer RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0= preshared-key /dev/null; did "$WG peer "vorke" preshared-key removed" ;;
esac
psks=
for pub in $current; do
  case $pub in RvXtLpaNIkAH5fdRjb2B4/B7/s7IpX0XfCgbLfZc6X0=|'') continue ;; esac
  act wg set "$WG" peer "$pub" remove; did "$WG peer $pub removed"
done

WG=wg0-6
PORT=56566
step "link "wg0-6
WG_GONE=0
if exists "$WG" && ! wg show "$WG" public-key >/dev/null 2>&1; then
  act ip link del dev "$WG"; did "$WG removed (not a WireGuard interface)"; WG_GONE=$CHECK
fi
if ! exists "$WG" || [ "$WG_GONE" = 1 ]; then
  make_wg "$WG"
fi
mark "$WG"
if fresh "$WG" || [ -z "$KEYPUB" ] || [ "$(wg show "$WG" public-key)" != "$KEYPUB" ]; then
  act wg set "$WG" private-key "$KEY"; said "$WG" "$WG private key set"
fi
if fresh "$WG" || [ "$(wg show "$WG" listen-port)" != "$PORT" ]; then
  act wg set "$WG" listen-port "$PORT"; said "$WG" "$WG listen-port $PORT"
fi
ensure_mtu "$WG" 1550
ensure_addr "$WG" 169.254.0.13/31
# Forwarding on this interface only: what comes in over a link may go on to another link.
if fresh "$WG" || [ "$(cat "/proc/sys/net/ipv4/conf/$WG/forwarding")" != 1 ]; then
  act sh -c 'echo 1 > "/proc/sys/net/ipv4/conf/$1/forwarding"' sh "$WG"; said "$WG" "$WG forwarding on"
fi
# OSPF says hello by multicast: kernel WireGuard interfaces come without the flag.
case "$(ip -o link show dev "$WG" 2>/dev/null)" in
  *"<"*MULTICAST*">"*) ;;
  *) act ip link set dev "$WG" multicast on; said "$WG" "$WG multicast on" ;;
esac
ensure_up "$WG"

step "link "wg0-6" peers"
# One `wg set` per peer that differs: the sessions of the others are never touched.
# (`wg syncconf` would also reset the private key and port, as the file has neither.)
allowed= keepalive= endpoints= current= psks=
if ! fresh "$WG" || [ "$CHECK" = 0 ]; then
  allowed=$(wg show "$WG" allowed-ips)
  psks=$(wg show "$WG" preshared-keys | psk_fps)
  keepalive=$(wg show "$WG" persistent-keepalive)
  endpoints=$(wg show "$WG" endpoints)
  current=$(wg show "$WG" peers)
fi
field() { printf '%s\n' "$1" | k="$2" awk '$1 == ENVIRON["k"] {print $2}'; }
# A peer's allowed-ips, sorted and one space apart (wg lists them in its own order).
ips() { printf '%s\n' "$1" | k="$2" awk '$1 == ENVIRON["k"] {for (i = 2; i <= NF; i++) print $i}' | sort | awk '{printf "%s%s", s, $0; s = " "}'; }
if [ "$(ips "$allowed" wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0=)" != '10.88.88.0/24 169.254.0.12/32 224.0.0.5/32' ] \
  || [ "$(field "$keepalive" wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0=)" != off ] \
  || [ "$(field "$endpoints" wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0=)" != 198.18.4.11:56566 ]; then
  act wg set "$WG" peer wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0= allowed-ips 10.88.88.0/24,169.254.0.12/32,224.0.0.5/32 endpoint 198.18.4.11:56566 persistent-keepalive off
  did "$WG peer "bob
fi
case $(field "$psks" wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0=) in
  ''|none) ;;
  *) act wg set "$WG" peer wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0= preshared-key /dev/null; did "$WG peer "bob" preshared-key removed" ;;
esac
psks=
for pub in $current; do
  case $pub in wLEmtaoTS4TmRiUla43olzeHYSsfODnSxgUm0hFOiG0=|'') continue ;; esac
  act wg set "$WG" peer "$pub" remove; did "$WG peer $pub removed"
done

WG=wg0-7
PORT=56567
step "link "wg0-7
WG_GONE=0
if exists "$WG" && ! wg show "$WG" public-key >/dev/null 2>&1; then
  act ip link del dev "$WG"; did "$WG removed (not a WireGuard interface)"; WG_GONE=$CHECK
fi
if ! exists "$WG" || [ "$WG_GONE" = 1 ]; then
  make_wg "$WG"
fi
mark "$WG"
if fresh "$WG" || [ -z "$KEYPUB" ] || [ "$(wg show "$WG" public-key)" != "$KEYPUB" ]; then
  act wg set "$WG" private-key "$KEY"; said "$WG" "$WG private key set"
fi
if fresh "$WG" || [ "$(wg show "$WG" listen-port)" != "$PORT" ]; then
  act wg set "$WG" listen-port "$PORT"; said "$WG" "$WG listen-port $PORT"
fi
ensure_mtu "$WG" 1550
ensure_addr "$WG" 169.254.0.14/31
# Forwarding on this interface only: what comes in over a link may go on to another link.
if fresh "$WG" || [ "$(cat "/proc/sys/net/ipv4/conf/$WG/forwarding")" != 1 ]; then
  act sh -c 'echo 1 > "/proc/sys/net/ipv4/conf/$1/forwarding"' sh "$WG"; said "$WG" "$WG forwarding on"
fi
# OSPF says hello by multicast: kernel WireGuard interfaces come without the flag.
case "$(ip -o link show dev "$WG" 2>/dev/null)" in
  *"<"*MULTICAST*">"*) ;;
  *) act ip link set dev "$WG" multicast on; said "$WG" "$WG multicast on" ;;
esac
ensure_up "$WG"

step "link "wg0-7" peers"
# One `wg set` per peer that differs: the sessions of the others are never touched.
# (`wg syncconf` would also reset the private key and port, as the file has neither.)
allowed= keepalive= endpoints= current= psks=
if ! fresh "$WG" || [ "$CHECK" = 0 ]; then
  allowed=$(wg show "$WG" allowed-ips)
  psks=$(wg show "$WG" preshared-keys | psk_fps)
  keepalive=$(wg show "$WG" persistent-keepalive)
  endpoints=$(wg show "$WG" endpoints)
  current=$(wg show "$WG" peers)
fi
field() { printf '%s\n' "$1" | k="$2" awk '$1 == ENVIRON["k"] {print $2}'; }
# A peer's allowed-ips, sorted and one space apart (wg lists them in its own order).
ips() { printf '%s\n' "$1" | k="$2" awk '$1 == ENVIRON["k"] {for (i = 2; i <= NF; i++) print $i}' | sort | awk '{printf "%s%s", s, $0; s = " "}'; }
if [ "$(ips "$allowed" 30up729qmoJrUMDLwZQ3X4PLKC9W+utaKwj9kIkY2hI=)" != '10.88.88.0/24 169.254.0.15/32 224.0.0.5/32' ] \
  || [ "$(field "$keepalive" 30up729qmoJrUMDLwZQ3X4PLKC9W+utaKwj9kIkY2hI=)" != off ]; then
  act wg set "$WG" peer 30up729qmoJrUMDLwZQ3X4PLKC9W+utaKwj9kIkY2hI= allowed-ips 10.88.88.0/24,169.254.0.15/32,224.0.0.5/32 persistent-keepalive off
  did "$WG peer "pi0
fi
case $(field "$psks" 30up729qmoJrUMDLwZQ3X4PLKC9W+utaKwj9kIkY2hI=) in
  ''|none) ;;
  *) act wg set "$WG" peer 30up729qmoJrUMDLwZQ3X4PLKC9W+utaKwj9kIkY2hI= preshared-key /dev/null; did "$WG peer "pi0" preshared-key removed" ;;
esac
psks=
for pub in $current; do
  case $pub in 30up729qmoJrUMDLwZQ3X4PLKC9W+utaKwj9kIkY2hI=|'') continue ;; esac
  act wg set "$WG" peer "$pub" remove; did "$WG peer $pub removed"
done
# Pre-shared key files of peers that have none planned (any more).
for f in "$PSKDIR"/*; do
  [ -e "$f" ] || continue
  case ${f##*/} in '') continue ;; esac
  act rm -f "$f"; did "pre-shared key file ${f##*/} removed"
done
if [ -d "$PSKDIR" ]; then act rmdir "$PSKDIR"; did "pre-shared key directory removed"; fi

step "re-resolver"
rr_pid=$(reresolver "$STATE")
# No peer is known by DNS name: stop a loop an earlier plan started.
if [ -n "$rr_pid" ]; then act kill "$rr_pid"; did "re-resolver stopped"; fi
act rm -f "$STATE/reresolve.sh" "$STATE/reresolve.pid" "$STATE/reresolve.log"

step "bridge"
BR_GONE=0
if exists "$BR" && [ ! -d "/sys/class/net/$BR/bridge" ]; then
  act ip link del dev "$BR"; did "$BR removed (not a bridge)"; BR_GONE=$CHECK
fi
if ! exists "$BR" || [ "$BR_GONE" = 1 ]; then
  act ip link add name "$BR" type bridge stp_state 0; created "$BR" "$BR created"
fi
mark "$BR"
# EVPN floods to each VTEP once and never back: no loop for a spanning tree to break.
ensure_bridge_opt stp_state 0
MAC=02:0d:db:c6:c1:d8
if fresh "$BR" || [ "$(cat "/sys/class/net/$BR/address")" != "$MAC" ]; then
  act ip link set dev "$BR" address "$MAC"; said "$BR" "$BR address $MAC"
fi
ensure_mtu "$BR" 1500
# The bridge's address, and the VTEP's /32: the VXLAN source, FRR's router id.
ensure_addr "$BR" 10.99.99.2/24 10.88.88.2/32

step "vtep routes"
# A VTEP without a route (its host cut off, or OSPF not yet up) is unreachable: VXLAN to it is
# dropped here, never sent out the default route in cleartext. OSPF's /32s are more specific.
case "$(ip -o route show exact "$VTEPS" 2>/dev/null || true)" in
  "unreachable $VTEPS proto $NOROUTE_PROTO "*) ;;
  *) act ip route add unreachable "$VTEPS" proto "$NOROUTE_PROTO"; did "$VTEPS unreachable but through the links" ;;
esac
# And VXLAN from this VTEP goes to the VTEPs' network only: an EVPN route whose next hop lies
# outside it (a hostile host's lie: FRR 8 cannot filter next hops in l2vpn evpn) finds no
# route, instead of the default route in cleartext. Two rules, ours by protocol number.
TAB=$(printf '\t')
rules=$(ip -o rule show 2>/dev/null || true)
case "$rules" in *"$RULE_PREF:${TAB}from $VTEP to $VTEPS lookup main proto $NOROUTE_PROTO"*) ;;
  *) act ip rule add from "$VTEP" to "$VTEPS" lookup main pref "$RULE_PREF" protocol "$NOROUTE_PROTO"
     did "VXLAN from $VTEP only to $VTEPS" ;;
esac
case "$rules" in *"$((RULE_PREF + 1)):${TAB}from $VTEP unreachable proto $NOROUTE_PROTO"*) ;;
  *) act ip rule add from "$VTEP" unreachable pref "$((RULE_PREF + 1))" protocol "$NOROUTE_PROTO"
     did "VXLAN from $VTEP nowhere else" ;;
esac

step "vxlan"
case "$(ip -d -o link show dev "$VX" 2>/dev/null)" in
  *"vxlan id $SEGMENT local $VTEP "*"dstport $VXLAN_PORT "*nolearning*) ;;
  *"vxlan id $SEGMENT local $VTEP "*"dstport $VXLAN_PORT "*)
    act ip link set dev "$VX" type vxlan nolearning; said "$VX" "vxlan $VX nolearning"
    ;;
  *"vxlan id $SEGMENT srcport "*"dstport $VXLAN_PORT "*)
    # No local address (made by hand): set in place, the device stays up.
    act ip link set dev "$VX" type vxlan local "$VTEP" nolearning; said "$VX" "vxlan $VX local $VTEP"
    ;;
  *)
    if exists "$VX"; then act ip link del dev "$VX"; fi
    act ip link add name "$VX" type vxlan id "$SEGMENT" local "$VTEP" dstport "$VXLAN_PORT" nolearning
    created "$VX" "vxlan $VX created (vni $SEGMENT)"
    ;;
esac
mark "$VX"
ensure_mtu "$VX" 1500
if fresh "$VX" || [ "$(readlink "/sys/class/net/$VX/master" 2>/dev/null)" != "../$BR" ]; then
  act ip link set dev "$VX" master "$BR"; said "$VX" "vxlan $VX plugged into $BR"
fi
# BGP EVPN tells where each MAC is: the port learns nothing and answers ARP from what it knows.
for opt in learning:0:off neigh_suppress:1:on; do
  name=${opt%%:*}; want=${opt#*:}; want=${want%%:*}; word=${opt##*:}
  if { [ "$CHECK" = 1 ] && fresh "$VX"; } || [ "$(cat "/sys/class/net/$VX/brport/$name")" != "$want" ]; then
    act bridge link set dev "$VX" "$name" "$word"; said "$VX" "vxlan $VX $name $word"
  fi
done
ensure_up "$VX"
ensure_up "$BR"

step "frr"
# The mesh's own FRR instance ("pathspace" $PS): files under $ETC, sockets and pids under $RUN.
FRR_CONF='! mesh-push 0.1.0: FRR for host rho of mesh labevpn. Generated: do not edit.
frr defaults datacenter
hostname rho
log syslog informational
service integrated-vtysh-config
!
bfd
 profile mesh-push
  detect-multiplier 4
  receive-interval 300
  transmit-interval 300
 exit
exit
!
interface wg0-4
 description link-to-epsilon
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 4
 ip ospf cost 850
 ip ospf bfd
 ip ospf bfd profile mesh-push
exit
!
interface wg0-5
 description link-to-vorke
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 4
 ip ospf cost 950
 ip ospf bfd
 ip ospf bfd profile mesh-push
exit
!
interface wg0-6
 description link-to-bob
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 4
 ip ospf cost 120
 ip ospf bfd
 ip ospf bfd profile mesh-push
exit
!
interface wg0-7
 description link-to-pi0
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 4
 ip ospf cost 50
 ip ospf bfd
 ip ospf bfd profile mesh-push
exit
!
! What this host takes from the others (docs/security.md#evpn). OSPF: zebra installs only the
! mesh'"'"'s VTEP /32s and link /31s, so no host can route anything else (a default, an address
! outside the mesh) into the mesh. BGP EVPN: only MAC/IP (type 2) and flood (type 3) routes
! of the mesh'"'"'s VNI. (FRR 8.4 matches no next hop of an EVPN route, and has no
! maximum-prefix for l2vpn evpn.)
ip prefix-list mesh-push-ospf seq 5 permit 10.88.88.1/32
ip prefix-list mesh-push-ospf seq 10 permit 10.88.88.2/32
ip prefix-list mesh-push-ospf seq 15 permit 10.88.88.3/32
ip prefix-list mesh-push-ospf seq 20 permit 10.88.88.4/32
ip prefix-list mesh-push-ospf seq 25 permit 10.88.88.5/32
ip prefix-list mesh-push-ospf seq 30 permit 169.254.0.2/31
ip prefix-list mesh-push-ospf seq 35 permit 169.254.0.4/31
ip prefix-list mesh-push-ospf seq 40 permit 169.254.0.6/31
ip prefix-list mesh-push-ospf seq 45 permit 169.254.0.8/31
ip prefix-list mesh-push-ospf seq 50 permit 169.254.0.10/31
ip prefix-list mesh-push-ospf seq 55 permit 169.254.0.12/31
ip prefix-list mesh-push-ospf seq 60 permit 169.254.0.14/31
route-map mesh-push-ospf permit 10
 match ip address prefix-list mesh-push-ospf
exit
ip protocol ospf route-map mesh-push-ospf
!
route-map mesh-push-evpn permit 10
 match evpn vni 100
 match evpn route-type macip
exit
route-map mesh-push-evpn permit 20
 match evpn vni 100
 match evpn route-type multicast
exit
!
router ospf
 ospf router-id 10.88.88.2
 log-adjacency-changes
 ! The VTEP is a /32 on the bridge: OSPF carries it, and none of the bridge'"'"'s other addresses.
 passive-interface internet
 network 10.88.88.2/32 area 0
 network 169.254.0.8/31 area 0
 network 169.254.0.10/31 area 0
 network 169.254.0.12/31 area 0
 network 169.254.0.14/31 area 0
exit
!
router bgp 65000
 bgp router-id 10.88.88.2
 no bgp default ipv4-unicast
 neighbor 10.88.88.1 remote-as 65000
 neighbor 10.88.88.1 description bob
 neighbor 10.88.88.1 update-source 10.88.88.2
 neighbor 10.88.88.1 timers connect 5
 neighbor 10.88.88.3 remote-as 65000
 neighbor 10.88.88.3 description vorke
 neighbor 10.88.88.3 update-source 10.88.88.2
 neighbor 10.88.88.3 timers connect 5
 neighbor 10.88.88.4 remote-as 65000
 neighbor 10.88.88.4 description epsilon
 neighbor 10.88.88.4 update-source 10.88.88.2
 neighbor 10.88.88.4 timers connect 5
 neighbor 10.88.88.5 remote-as 65000
 neighbor 10.88.88.5 description pi0
 neighbor 10.88.88.5 update-source 10.88.88.2
 neighbor 10.88.88.5 timers connect 5
 !
 address-family l2vpn evpn
  neighbor 10.88.88.1 activate
  neighbor 10.88.88.1 route-map mesh-push-evpn in
  neighbor 10.88.88.1 route-reflector-client
  neighbor 10.88.88.3 activate
  neighbor 10.88.88.3 route-map mesh-push-evpn in
  neighbor 10.88.88.3 route-reflector-client
  neighbor 10.88.88.4 activate
  neighbor 10.88.88.4 route-map mesh-push-evpn in
  neighbor 10.88.88.4 route-reflector-client
  neighbor 10.88.88.5 activate
  neighbor 10.88.88.5 route-map mesh-push-evpn in
  neighbor 10.88.88.5 route-reflector-client
  advertise-all-vni
  ! Each bridge'"'"'s own MAC and address as a type-2 route: unicast goes straight to its VTEP
  ! and ARP is answered locally (neigh_suppress), instead of flooding to every VTEP.
  advertise-svi-ip
 exit-address-family
exit
!
'
FRR_DAEMONS='# mesh-push 0.1.0: FRR daemons of mesh labevpn. Generated: do not edit.
zebra=yes
bgpd=yes
ospfd=yes
bfdd=yes
staticd=no
vtysh_enable=yes
zebra_options="-P 0 -s 90000000"
bgpd_options="-P 0 -l 10.88.88.2"
ospfd_options="-P 0"
bfdd_options="-P 0"
staticd_options="-P 0"
frr_profile="datacenter"
watchfrr_options="-T 120 -t 30"
'
frr_differs() { ! printf '%s' "$2" | cmp -s - "$ETC/$1"; }
# /etc/frr is FRR's user's, who could plant a link anywhere below it. So $ETC is root's
# (group frr reads), and every write happens from inside it (cd, then names without a
# slash): a link planted on the path leads nowhere, and a file is renamed over, never opened.
frr_in_etc() {
  real=$(cd -P "${ETC%/*}" && pwd -P)/${ETC##*/}
  cd -P "$ETC" 2>/dev/null && [ "$(pwd -P)" = "$real" ] || {
    printf 'mesh-push: %s is not a directory of its own (a symbolic link?): not writing FRR files there\n' "$ETC" >&2
    exit 1
  }
}
frr_put() (
  frr_in_etc
  [ "$(stat -c %u:%a .)" = 0:750 ] || { chown root:frr . && chmod 0750 .; } || exit 1
  tmp=$(mktemp ".$1.XXXXXX") || exit 1
  { printf '%s' "$2" > "$tmp" && chgrp frr "$tmp" && chmod 0640 "$tmp" && mv -f "$tmp" "$1"; } || { rm -f "$tmp"; exit 1; }
)
frr_write() { act frr_put "$@"; did "FRR $1 written"; }
# mkdir never follows a link; frr_put then gives the directory to root:frr 0750.
if [ ! -d "$ETC" ] && [ ! -L "$ETC" ]; then act mkdir -m 0750 "$ETC"; fi
DAEMONS_NEW=0; CONF_NEW=0
FRR_VTYSH='service integrated-vtysh-config
'
if frr_differs daemons "$FRR_DAEMONS"; then frr_write daemons "$FRR_DAEMONS"; DAEMONS_NEW=1; fi
if frr_differs frr.conf "$FRR_CONF"; then frr_write frr.conf "$FRR_CONF"; CONF_NEW=1; fi
if frr_differs vtysh.conf "$FRR_VTYSH"; then frr_write vtysh.conf "$FRR_VTYSH"; fi
frr() {
  if [ -d /run/systemd/system ]; then
    # systemd reads "-" in an instance name as "/": the name goes escaped.
    act systemctl "$1" "frr@$(systemd-escape "$PS").service"
  else
    act /usr/lib/frr/frrinit.sh "$1" "$PS" >/dev/null
  fi
}
# Not enabled at boot: the boot unit re-runs this script, which starts FRR once the links
# and the VTEP address (bgpd listens on it) are in place.
if ! frr_running; then
  # A half-started instance (a daemon died) is stopped first: watchfrr would not redo it.
  if [ -s "$RUN/watchfrr.pid" ]; then frr stop || true; fi
  frr start; did "FRR instance $PS started"
elif [ "$DAEMONS_NEW" = 1 ]; then
  frr restart; did "FRR instance $PS restarted"
elif [ "$CONF_NEW" = 1 ]; then
  # frr-reload.py (frr-pythontools) applies the difference live; without it, a restart.
  if [ -x /usr/lib/frr/frr-reload.py ]; then
    act /usr/lib/frr/frr-reload.py --reload --pathspace "$PS" --stdout "$ETC/frr.conf" >/dev/null
    # It then saves the running configuration over /etc/frr/frr.conf's path in the pathspace
    # (ours) and keeps the old one as frr.conf.sav: the file stays the one this script wrote.
    act frr_put frr.conf "$FRR_CONF"; act rm -f "$ETC/frr.conf.sav"
    did "FRR instance $PS reloaded"
  else
    frr restart; did "FRR instance $PS restarted"
  fi
fi
# FRR hands each daemon its part of frr.conf as watchfrr starts it; a daemon that missed it
# would stay so, and nothing above would notice: give the instance its file again. Seen on
# slow guests: bgpd and ospfd with no configuration, and bgpd with some neighbours only
# (watchfrr restarted every daemon and killed the loader after its 20 s), so every
# session the file activates must be there.
frr_loaded() {
  cfg=$(vtysh -N "$PS" -c 'show running-config' 2>/dev/null) || return 1
  printf '%s\n' "$cfg" | grep -q '^router ospf' || return 1
  printf '%s\n' "$cfg" | grep -q '^router bgp ' || return 1
  printf '%s\n' "$FRR_CONF" | grep '^  neighbor .* activate$' | while IFS= read -r line; do
    printf '%s\n' "$cfg" | grep -qxF -- "$line" || exit 1
  done
}
if [ "$CHECK" = 0 ]; then
  loaded=0
  for _ in $(seq 20); do if frr_loaded; then loaded=1; break; fi; sleep 1; done
  if [ "$loaded" = 0 ]; then
    vtysh -N "$PS" -b >/dev/null 2>&1 || true
    did "FRR instance $PS given its configuration again"
  fi
elif frr_running && ! frr_loaded; then
  did "FRR instance $PS given its configuration again"
fi

step "names"
NAMES_WANT='# BEGIN mesh-push:labevpn names (mesh-push writes this block: do not edit)
10.99.99.1	bob.vpn.example	bob
10.99.99.2	rho.vpn.example	rho
10.99.99.3	vorke.vpn.example	vorke
10.99.99.4	epsilon.vpn.example	epsilon
10.99.99.5	pi0.vpn.example	pi0
# END mesh-push:labevpn names'
names_of() { b='# BEGIN mesh-push:labevpn names (mesh-push writes this block: do not edit)' e='# END mesh-push:labevpn names' awk '$0 == ENVIRON["b"] {i = 1} i {print} $0 == ENVIRON["e"] {i = 0}' /etc/hosts 2>/dev/null || true; }
names_write() {
  others=
  if [ -e /etc/hosts ]; then
    others=$(b='# BEGIN mesh-push:labevpn names (mesh-push writes this block: do not edit)' e='# END mesh-push:labevpn names' awk '$0 == ENVIRON["b"] {i = 1} !i {print} $0 == ENVIRON["e"] {i = 0}' /etc/hosts) || return 1
  fi
  names_text() { [ -z "$others" ] || printf '%s\n' "$others"; [ -z "$NAMES_WANT" ] || printf '%s\n' "$NAMES_WANT"; }
  if awk '$5 == "/etc/hosts" {f = 1} END {exit !f}' /proc/self/mountinfo 2>/dev/null; then
    names_text > /etc/hosts
    return
  fi
  t=$(mktemp /etc/.hosts.mesh-push.XXXXXX) || return 1
  names_text > "$t" && chmod 0644 "$t" && mv "$t" /etc/hosts || { rm -f "$t"; return 1; }
}
if [ "$(names_of)" != "$NAMES_WANT" ]; then
  act names_write
  if [ -n "$NAMES_WANT" ]; then did "/etc/hosts: the names of mesh "labevpn" written"
  else did "/etc/hosts: the names of mesh "labevpn" removed"; fi
fi

step "done"
if [ "$MTU_CHANGED" = 1 ]; then act ip route flush cache; fi
[ "$CHANGED" = 1 ] || echo "no changes"
