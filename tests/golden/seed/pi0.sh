#!/bin/sh
# mesh-push 0.1.0: host pi0 of mesh seed. Generated: do not edit.
# Converges this host from any state: creates what is missing, corrects what differs,
# removes what is no longer planned. Running it twice changes nothing the second time.
# It touches only what this mesh made: interfaces with its mark, its state directory, key
# and boot unit. Any other interface in its way stops it before it changes anything.
# With MESH_PUSH_CHECK=1 in its environment (`mesh-push up --check`) it changes nothing: it
# goes through the same steps, says the same "changed:" lines, and skips every command that
# would change the host (`act`). What it creates it describes in one line: the settings of an
# interface this run creates are not listed one by one, whether checking or not (`fresh`).
set -eu
umask 077
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

MESH=seed
WG=wg0
BR=internet
STATE=/var/lib/mesh-push/seed
KEY=/etc/wireguard/mesh-push-seed.key
PSKDIR=/etc/wireguard/mesh-push-seed.psk
MARK=mesh-push:seed
LEGACY_MARK=mesh-push
PORT=56560
VXLAN_PORT=4789
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
  case $1 in "$WG"|"$BR"|rho) return 0 ;; esac
  return 1
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
adopt_wg wg0 56560 10.88.88.5/24 R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I=
adopt_bridge "$BR" 10.99.99.5/24
adopt_vxlan rho 7 10.88.88.2 10.88.88.5
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
# Every check before any change: an interface this mesh would create, change or delete
# that another mesh or someone else made, a VXLAN id or a WireGuard port another interface
# holds. Nothing has been changed when this step stops the script.
if exists "$WG" && ! ours "$WG"; then
  foreign "$WG" "choose another mesh.wireguard.interface"
fi
if exists "$BR" && ! ours "$BR"; then
  foreign "$BR" "choose another mesh.bridge.name"
fi
if exists rho && ! ours rho; then
  foreign rho 'it would be the wire to host rho (wires are named after hosts): rename that host, set mesh.stp.wire_prefix, or remove the interface'
fi
# Held by interface $1 instead of $2, and $1 is not this mesh's (those not planned go first
# thing below; a planned one is re-made).
others() {
  [ "$1" != "$2" ] && ! { [ "$(alias_of "$1")" = "$MARK" ] || { planned "$1" && ours "$1"; }; }
}
while read -r held port; do
  if [ -n "$held" ] && [ "$port" = "$PORT" ] && others "$held" "$WG"; then
    refuse "WireGuard interface $held listens on port $port" "choose another mesh.wireguard.port"
  fi
done <<MESH_PUSH_PORTS
$(wg show all listen-port 2>/dev/null || true)
MESH_PUSH_PORTS
vxlans=$(ip -d -o link show type vxlan 2>/dev/null | awk '{
  n = $2; sub(/:$/, "", n); sub(/@.*/, "", n); id = ""; port = ""
  for (i = 2; i < NF; i++) { if ($i == "id" && $(i - 1) == "vxlan") id = $(i + 1); if ($i == "dstport") port = $(i + 1) }
  print n, id, port
}' || true)
# The kernel allows one VXLAN interface per id and UDP port.
vni_free() {
  while read -r held id port; do
    if [ -n "$held" ] && [ "$id" = "$1" ] && [ "$port" = "$VXLAN_PORT" ] && others "$held" "$2"; then
      refuse "VXLAN interface $held has id $id on port $port, which wire $2 needs" "choose another mesh.vxlan_port"
    fi
  done <<MESH_PUSH_VXLANS
$vxlans
MESH_PUSH_VXLANS
}
vni_free 7 rho
[ "$REFUSED" = 0 ] || exit 1

step "older install"
# Before meshes had names one install used the legacy paths. If its script was this mesh's,
# its boot unit, re-resolver and files go (its key moved already: facts.sh.j2).
LEGACY=/var/lib/mesh-push
if [ -f "$LEGACY/apply.sh" ] \
  && [ "$(sed -n '2s/^# mesh-push [^:]*: host .* of mesh \(.*\)\. Generated: do not edit\.$/\1/p' "$LEGACY/apply.sh")" = "$MESH" ]; then
  rr_pid=$(reresolver "$LEGACY")
  if [ -n "$rr_pid" ]; then act kill "$rr_pid"; fi
  unit=/etc/systemd/system/mesh-push.service
  if [ -d /run/systemd/system ] && [ -e "$unit" ]; then act systemctl disable "${unit##*/}" >/dev/null 2>&1 || true; fi
  act rm -f "$unit" /etc/systemd/system/multi-user.target.wants/mesh-push.service
  for f in apply.sh applied.sha256 apply.log apply.rc rollback.sh rollback.sha256 rollback.log \
    armed.sh rolled-back reresolve.sh reresolve.pid reresolve.log; do
    act rm -f "$LEGACY/$f" "$LEGACY/$f.new"
  done
  act find "$LEGACY" -maxdepth 1 -type f -name 'confirmed.*' -delete
  did "older install of mesh $MESH taken over (its boot unit and files in $LEGACY removed)"
fi

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
step "frr"
# An FRR instance of this mesh's from evpn mode (docs/evpn.md) has no place in stp mode.
PS=mesh-push-seed
if [ -d "/etc/frr/$PS" ] || [ -d "/var/run/frr/$PS" ]; then
  if [ -d /run/systemd/system ]; then
    # systemd reads "-" in an instance name as "/": the name goes escaped.
    unit="frr@$(systemd-escape "$PS").service"
    if systemctl -q is-active "$unit" 2>/dev/null; then act systemctl stop "$unit" || true; fi
    # A start that failed stays listed as failed until told otherwise.
    act systemctl reset-failed "$unit" 2>/dev/null || true
  fi
  if [ -s "/var/run/frr/$PS/watchfrr.pid" ] && [ -x /usr/lib/frr/frrinit.sh ]; then
    act /usr/lib/frr/frrinit.sh stop "$PS" >/dev/null 2>&1 || true
  fi
  # Its pid files and sockets stay behind once the daemons are gone.
  act rm -rf "/etc/frr/$PS" "/var/run/frr/$PS"
  did "FRR instance $PS stopped and removed"
fi
# The rules that keep VXLAN from this host's VTEP inside the VTEPs' network (evpn/host.sh.j2):
# ours by protocol number and by a source in this mesh's VTEPs' network (a stale VTEP's too).
ip -o rule show 2>/dev/null | awk -v net=10.88.88.0/24 -v proto=233 -v pref=20000 '
  function v4(a,  p) { return split(a, p, ".") == 4 ? ((p[1] * 256 + p[2]) * 256 + p[3]) * 256 + p[4] : -1 }
  BEGIN { split(net, q, "/"); lo = v4(q[1]); hi = lo + 2 ^ (32 - q[2]) }
  $2 == "from" && $NF == proto && (($1 == pref ":" && $4 == "to" && $5 == net) || ($1 == (pref + 1) ":" && $4 == "unreachable")) {
    x = v4($3); if (x >= lo && x < hi) print $1, $3
  }' |
while read -r p src; do
  act ip rule del pref "${p%:}" from "$src" protocol 233; did "rule from $src removed"
done
# The VTEPs' unreachable route (evpn/host.sh.j2), by its protocol number: ours only.
case "$(ip -o route show exact 10.88.88.0/24 2>/dev/null || true)" in
  "unreachable "10.88.88.0/24" proto "233" "*)
    act ip route del unreachable 10.88.88.0/24 proto 233
    did "route "10.88.88.0/24" removed" ;;
esac

step "unplanned interfaces"
# This mesh's interfaces that are no longer planned (a wire to a host gone, a renamed
# WireGuard interface or bridge) go first: they may hold what the planned ones need.
for dev in /sys/class/net/* /sys/class/net/.[!.]* /sys/class/net/..?*; do
  [ -e "$dev" ] || continue
  name=${dev##*/}
  [ "$(alias_of "$name")" = "$MARK" ] || continue
  planned "$name" && continue
  act ip link del dev "$name"; did "$name removed (no longer planned)"
done

step "wireguard interface"
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
ensure_addr "$WG" 10.88.88.5/24
ensure_up "$WG"

step "wireguard peers"
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
if [ "$(ips "$allowed" R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I=)" != 10.88.88.2/32 ] \
  || [ "$(field "$keepalive" R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I=)" != 25 ] \
  || [ "$(field "$endpoints" R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I=)" != 198.51.100.2:56560 ]; then
  act wg set "$WG" peer R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I= allowed-ips 10.88.88.2/32 endpoint 198.51.100.2:56560 persistent-keepalive 25
  did "$WG peer "rho
fi
case $(field "$psks" R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I=) in
  ''|none) ;;
  *) act wg set "$WG" peer R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I= preshared-key /dev/null; did "$WG peer "rho" preshared-key removed" ;;
esac
psks=
# Pre-shared key files of peers that have none planned (any more).
for f in "$PSKDIR"/*; do
  [ -e "$f" ] || continue
  case ${f##*/} in '') continue ;; esac
  act rm -f "$f"; did "pre-shared key file ${f##*/} removed"
done
if [ -d "$PSKDIR" ]; then act rmdir "$PSKDIR"; did "pre-shared key directory removed"; fi
for pub in $current; do
  case $pub in R5z2eTKwxBUseplEZu5zjanU39TycaDaEQO9cUHhW1I=|'') continue ;; esac
  act wg set "$WG" peer "$pub" remove; did "$WG peer $pub removed"
done

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
  act ip link add name "$BR" type bridge stp_state 1; created "$BR" "$BR created"
fi
mark "$BR"
ensure_bridge_opt stp_state 1
ensure_bridge_opt hello_time 200
ensure_bridge_opt forward_delay 1500
ensure_bridge_opt max_age 2000
# During a topology change the kernel ages MACs faster (2 × forward_delay on Linux 6) and
# shows that as ageing_time, and it puts back the configured value afterwards: that is STP
# working, not a difference to correct. The configured value is then unseen, so the value
# this script last set is kept in $STATE/ageing_time: a new one is set even during a change
# (else the kernel would put back the old one when the change ends).
AGEING=30000
if fresh "$BR" || [ "$(cat "/sys/class/net/$BR/bridge/topology_change")" != 1 ]; then
  ensure_bridge_opt ageing_time "$AGEING"
elif [ "$(cat "$STATE/ageing_time" 2>/dev/null)" != "$AGEING" ]; then
  act ip link set dev "$BR" type bridge ageing_time "$AGEING"; said "$BR" "$BR ageing_time $AGEING"
fi
if [ "$CHECK" = 0 ] && [ "$(cat "$STATE/ageing_time" 2>/dev/null)" != "$AGEING" ]; then
  mkdir -p "$STATE" && echo "$AGEING" > "$STATE/ageing_time"
fi
ensure_bridge_opt priority 32768
MAC=02:2c:85:90:d3:39
if fresh "$BR" || [ "$(cat "/sys/class/net/$BR/address")" != "$MAC" ]; then
  act ip link set dev "$BR" address "$MAC"; said "$BR" "$BR address $MAC"
fi
ensure_mtu "$BR" 1500
ensure_addr "$BR" 10.99.99.5/24

step "wires"
step "wire "rho
W=rho
VNI=7
REMOTE=10.88.88.2
LOCAL=10.88.88.5
COST=5
case "$(ip -d -o link show dev "$W" 2>/dev/null)" in
  *"vxlan id $VNI remote $REMOTE local $LOCAL "*"dstport $VXLAN_PORT "*) ;;
  *"vxlan id $VNI remote $REMOTE srcport "*"dstport $VXLAN_PORT "*)
    # No local address, as the write-up makes its wires: set in place, the wire stays up.
    act ip link set dev "$W" type vxlan local "$LOCAL"; said "$W" "wire $W local $LOCAL"
    ;;
  *)
    if exists "$W"; then act ip link del dev "$W"; fi
    act ip link add name "$W" type vxlan id "$VNI" remote "$REMOTE" local "$LOCAL" dstport "$VXLAN_PORT"
    created "$W" "wire $W created (vni $VNI)"
    ;;
esac
mark "$W"
ensure_mtu "$W" 1500
if fresh "$W" || [ "$(readlink "/sys/class/net/$W/master" 2>/dev/null)" != "../$BR" ]; then
  act ip link set dev "$W" master "$BR"; said "$W" "wire $W plugged into $BR"
fi
if { [ "$CHECK" = 1 ] && fresh "$W"; } || [ "$(cat "/sys/class/net/$W/brport/path_cost")" != "$COST" ]; then
  act bridge link set dev "$W" cost "$COST"; said "$W" "wire $W cost $COST"
fi
ensure_up "$W"

step "bridge up"
ensure_up "$BR"
if [ "$MTU_CHANGED" = 1 ]; then
  # An old "frag needed" exception would otherwise outlive the MTU change.
  act ip route flush cache
fi

step "names"
NAMES_WANT=''
names_of() { b='# BEGIN mesh-push:seed names (mesh-push writes this block: do not edit)' e='# END mesh-push:seed names' awk '$0 == ENVIRON["b"] {i = 1} i {print} $0 == ENVIRON["e"] {i = 0}' /etc/hosts 2>/dev/null || true; }
names_write() {
  others=
  if [ -e /etc/hosts ]; then
    others=$(b='# BEGIN mesh-push:seed names (mesh-push writes this block: do not edit)' e='# END mesh-push:seed names' awk '$0 == ENVIRON["b"] {i = 1} !i {print} $0 == ENVIRON["e"] {i = 0}' /etc/hosts) || return 1
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
  if [ -n "$NAMES_WANT" ]; then did "/etc/hosts: the names of mesh "seed" written"
  else did "/etc/hosts: the names of mesh "seed" removed"; fi
fi

step "done"
[ "$CHANGED" = 1 ] || echo "no changes"
