#!/bin/sh
# mesh-push 0.1.0: take mesh seed off this host. Generated: do not edit.
# Removes the interfaces this mesh marked, the userspace WireGuard process with its socket,
# its boot unit, its names in /etc/hosts and its state directory. Nothing another mesh (or anyone else) made is
# touched. The keys stay unless purging. With MESH_PUSH_CHECK=1 in its environment
# (`mesh-push down --check`) it changes nothing and says what it would remove.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
MESH=seed
STATE=/var/lib/mesh-push/seed
MARK=mesh-push:seed
LEGACY_MARK=mesh-push
LEGACY=/var/lib/mesh-push
CHECK=${MESH_PUSH_CHECK:-0}
CHANGED=0
act() { [ "$CHECK" = 1 ] || "$@"; }
did() { printf 'changed: %s\n' "$*"; CHANGED=1; }
alias_of() { cat "/sys/class/net/$1/ifalias" 2>/dev/null || true; }
# Names this mesh gives interfaces (its WireGuard interface, its bridge, a wire per host):
# under one of them the mark every mesh shared before meshes had names is this mesh's too.
named() {
  case $1 in wg0|internet|bob|rho|vorke|epsilon|pi0|'') return 0 ;; esac
  return 1
}
# An older install (before meshes had names) whose script says it was this mesh's.
legacy_ours() {
  [ -f "$LEGACY/apply.sh" ] \
    && [ "$(sed -n '2s/^# mesh-push [^:]*: host .* of mesh \(.*\)\. Generated: do not edit\.$/\1/p' "$LEGACY/apply.sh")" = "$MESH" ]
}

# The re-resolver first (see the host script), stopped by its pid once that is checked to be
# ours, and waited for: it must not outlive `down`, nor touch the interfaces as they go.
stop_reresolver() {
  rr_pid=$(cat "$1/reresolve.pid" 2>/dev/null || true)
  case $rr_pid in ''|*[!0-9]*) return 0 ;; esac
  rr_cmdline() { tr '\0' ' ' 2>/dev/null < "/proc/$rr_pid/cmdline" || true; }
  if [ "$(rr_cmdline)" = "/bin/sh $1/reresolve.sh loop " ] \
    && [ "$(readlink "/proc/$rr_pid/ns/mnt")" = "$(readlink /proc/self/ns/mnt)" ]; then
    act kill "$rr_pid"
    [ "$CHECK" = 1 ] || for _ in $(seq 50); do [ -n "$(rr_cmdline)" ] || break; sleep 0.1; done
    did "re-resolver stopped"
  fi
}
stop_reresolver "$STATE"
LEGACY_OURS=0
if legacy_ours; then LEGACY_OURS=1; stop_reresolver "$LEGACY"; fi

# FRR first: its routes go with it, and it does not see the interfaces go one by one.
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

for dev in /sys/class/net/* /sys/class/net/.[!.]* /sys/class/net/..?*; do
  [ -e "$dev" ] || continue
  name=${dev##*/}
  case "$(alias_of "$name")" in
    "$MARK") ;;
    "$LEGACY_MARK") named "$name" || continue ;;
    *) continue ;;
  esac
  act ip link del dev "$name"; did "$name removed"
done
# wireguard-go exits when its interface goes; wait for it so nothing outlives `down`. (An
# interface of that name still there is not this mesh's: its socket is not either.)
sock=/run/wireguard/wg0.sock
if [ "$CHECK" = 0 ] && [ ! -e /sys/class/net/wg0 ]; then
  for _ in $(seq 50); do [ -e "$sock" ] || break; sleep 0.1; done
  if [ -e "$sock" ]; then rm -f "$sock"; did "stale $sock removed"; fi
fi

# The boot hook of every init (host/boot.py: whichever the apply command installed), then an
# older install's unit, when it was this mesh's.
if [ "$(readlink /etc/systemd/system/multi-user.target.wants/mesh-push-seed.service)" = /etc/systemd/system/mesh-push-seed.service ]; then
  if [ "$CHECK" = 0 ]; then { [ ! -d /run/systemd/system ] || systemctl disable -q mesh-push-seed.service 2>/dev/null || true; }; rm -f /etc/systemd/system/multi-user.target.wants/mesh-push-seed.service; fi
  did "boot hook "systemd" disabled"
fi
if [ "$(readlink /etc/runit/runsvdir/default/mesh-push-seed)" = /etc/sv/mesh-push-seed ]; then
  if [ "$CHECK" = 0 ]; then rm -f /etc/runit/runsvdir/default/mesh-push-seed; { sv exit /etc/sv/mesh-push-seed >/dev/null 2>&1 || true; }; fi
  did "boot hook "runit" disabled"
fi
if [ "$(readlink /etc/runlevels/default/mesh-push-seed)" = /etc/init.d/mesh-push-seed ]; then
  if [ "$CHECK" = 0 ]; then rm -f /etc/runlevels/default/mesh-push-seed; fi
  did "boot hook "openrc" disabled"
fi
if [ -n "$(find /etc/rc2.d -name 'S??mesh-push-seed' 2>/dev/null)" ]; then
  if [ "$CHECK" = 0 ]; then { ! command -v update-rc.d >/dev/null || update-rc.d -f mesh-push-seed remove >/dev/null 2>&1 || true; }; rm -f ''/etc/rc[0-6S].d/[SK][0-9][0-9]mesh-push-seed; fi
  did "boot hook "sysvinit" disabled"
fi
for f in /etc/init.d/mesh-push-seed /etc/sv/mesh-push-seed /etc/systemd/system/mesh-push-seed.service ; do
  if [ -e "$f" ]; then act rm -rf "$f"; did "boot hook $f removed"; fi
done
remove_unit() {
  if [ -e "$1" ] || [ -L "$2" ]; then
    if [ -d /run/systemd/system ]; then act systemctl disable "${1##*/}" >/dev/null 2>&1 || true; fi
    act rm -f "$1" "$2"
    did "boot hook ${1##*/} removed"
  fi
}
if [ "$LEGACY_OURS" = 1 ]; then remove_unit /etc/systemd/system/mesh-push.service /etc/systemd/system/multi-user.target.wants/mesh-push.service; fi
# This mesh's names in /etc/hosts (mesh.names): the block goes, nothing else of the file.
step() { :; }
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
if [ -d "$STATE" ]; then
  # The directory itself may be a mount point (as in the lab): empty it, then try to remove it.
  # Its `lock` alone is the down command's own (it holds it while this runs): nothing to say.
  kept=$(find "$STATE" -mindepth 1 ! -path "$STATE/lock" -print | head -n 1)
  act find "$STATE" -mindepth 1 -delete
  act rmdir "$STATE" 2>/dev/null || true
  [ -z "$kept" ] || did "$STATE removed"
fi
if [ "$LEGACY_OURS" = 1 ]; then
  for f in apply.sh applied.sha256 apply.log apply.rc rollback.sh rollback.sha256 rollback.log \
    armed.sh rolled-back reresolve.sh reresolve.pid reresolve.log; do
    act rm -f "$LEGACY/$f" "$LEGACY/$f.new"
  done
  act find "$LEGACY" -maxdepth 1 -type f -name 'confirmed.*' -delete
  did "older install's files in $LEGACY removed"
fi
[ "$CHANGED" = 1 ] || echo "no changes"
