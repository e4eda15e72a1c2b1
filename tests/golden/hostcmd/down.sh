#!/bin/sh
# mesh-push 0.1.0: take mesh seed off this host. Generated: do not edit.
# Removes every interface mesh-push marked, the userspace WireGuard process with its socket,
# the boot hook and the pushed scripts. The private key stays unless purging.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
STATE=/var/lib/mesh-push
MARK=mesh-push
CHANGED=0
did() { echo "changed: $*"; CHANGED=1; }

# The re-resolver first (see the host script), stopped by its pid once that is checked to be
# ours, and waited for: it must not outlive `down`, nor touch the interfaces as they go.
rr_pid=$(cat "$STATE/reresolve.pid" 2>/dev/null || true)
case $rr_pid in ''|*[!0-9]*) rr_pid= ;; esac
rr_cmdline() { tr '\0' ' ' 2>/dev/null < "/proc/$rr_pid/cmdline" || true; }
if [ -n "$rr_pid" ] && [ "$(rr_cmdline)" = "/bin/sh $STATE/reresolve.sh loop " ] \
  && [ "$(readlink "/proc/$rr_pid/ns/mnt")" = "$(readlink /proc/self/ns/mnt)" ]; then
  kill "$rr_pid"
  for _ in $(seq 50); do [ -n "$(rr_cmdline)" ] || break; sleep 0.1; done
  did "re-resolver stopped"
fi

for dev in /sys/class/net/*; do
  name=${dev##*/}
  [ "$(cat "$dev/ifalias" 2>/dev/null)" = "$MARK" ] || continue
  ip link del dev "$name"; did "$name removed"
done
# wireguard-go exits when its interface goes; wait for it so nothing outlives `down`.
sock=/run/wireguard/wg0.sock
for _ in $(seq 50); do [ -e "$sock" ] || break; sleep 0.1; done
if [ -e "$sock" ]; then rm -f "$sock"; did "stale $sock removed"; fi

# The boot unit and its wants link, as the apply command installs them (apply.sh.j2).
unit=/etc/systemd/system/mesh-push.service
wants=/etc/systemd/system/multi-user.target.wants/mesh-push.service
if [ -e "$unit" ] || [ -L "$wants" ]; then
  if [ -d /run/systemd/system ]; then systemctl disable "${unit##*/}" >/dev/null 2>&1 || true; fi
  rm -f "$unit" "$wants"
  did "boot hook removed"
fi
if [ -d "$STATE" ]; then
  # The directory itself may be a mount point (as in the lab): empty it, then try to remove it.
  # Its `lock` alone is the down command's own (it holds it while this runs): nothing to say.
  kept=$(find "$STATE" -mindepth 1 ! -path "$STATE/lock" -print | head -n 1)
  find "$STATE" -mindepth 1 -delete
  rmdir "$STATE" 2>/dev/null || true
  [ -z "$kept" ] || did "$STATE removed"
fi
[ "$CHANGED" = 1 ] || echo "no changes"
