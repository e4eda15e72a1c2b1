echo '=== facts'
umask 077
k=/etc/wireguard/mesh-push-seed.key
pub=
echo "public_key=${pub:-$(wg pubkey < "$k" 2>/dev/null)}"
# Loaded, built in, or loadable: `ip link add ... type wireguard` then loads it by itself.
echo "kernel_wireguard=$({ [ -d /sys/module/wireguard ] || modprobe -nq wireguard 2>/dev/null; } && echo yes || echo no)"
echo "wireguard_go=$(command -v wireguard-go || true)"
echo "wg=$(command -v wg || true)"
echo "brctl=$(command -v brctl || true)"
# BusyBox's `ip -V` prints no iproute2 version (and its `ip` has no VXLAN or WireGuard).
echo "iproute2=$(ip -V 2>&1 | grep -q iproute2 && echo yes || echo no)"
echo "flock=$(command -v flock || true)"
echo "applied=$(cat /var/lib/mesh-push/seed/applied.sha256 2>/dev/null)"
echo '=== hostname'; uname -n
echo '=== now'; date +%s
# Every WireGuard interface: this mesh's (one, or one per link) and any other, read only.
for what in public-key listen-port latest-handshakes endpoints transfer allowed-ips persistent-keepalive; do
  echo "=== wg-all-$what"; wg show all "$what" 2>/dev/null
done
# Pre-shared keys as fingerprints, reduced here (fp_of): the keys themselves never leave
# the host. A peer without one is `none`; the files are this mesh's copies (by peer name).
fp_of() { printf 'mesh-push psk %s' "$1" | sha256sum | cut -c1-16; }
echo '=== wg-all-preshared-keys'
wg show all preshared-keys 2>/dev/null | while read -r ifc pub psk; do
  case $psk in ''|'(none)') printf '%s\t%s\tnone\n' "$ifc" "$pub" ;; *) printf '%s\t%s\t%s\n' "$ifc" "$pub" "$(fp_of "$psk")" ;; esac
done
psk=
echo '=== psk-files'
for f in /etc/wireguard/mesh-push-seed.psk/*; do
  [ -f "$f" ] || continue
  k=; IFS= read -r k < "$f" || true
  [ -z "$k" ] || printf '%s\t%s\n' "${f##*/}" "$(fp_of "$k")"
done
k=
# When each key was made: its file's time (a key file is only ever renamed into place, whole,
# when the key is made, installed or rotated), as unix time. Never the key.
echo '=== key-time'
stat -c %Y /etc/wireguard/mesh-push-seed.key 2>/dev/null || true
echo '=== psk-times'
for f in /etc/wireguard/mesh-push-seed.psk/*; do
  [ -f "$f" ] && printf '%s\t%s\n' "${f##*/}" "$(stat -c %Y "$f")"
done
# `addr show` is `link show` with each interface's addresses.
echo '=== ip-link'; ip -j -d addr show
# TX checksum offload of every VXLAN device (ethtool's word: on or off), where ethtool is.
echo '=== tx-checksum'
if command -v ethtool >/dev/null; then
  for dev in $(ip -o link show type vxlan 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}'); do
    printf '%s\t%s\n' "$dev" "$(ethtool -k "$dev" 2>/dev/null | sed -n 's/^tx-checksumming: \([a-z]*\).*/\1/p')"
  done
fi
# This mesh's block of names in /etc/hosts (mesh.names, include/names.sh.j2), as it is.
echo '=== names'
b='# BEGIN mesh-push:seed names (mesh-push writes this block: do not edit)' e='# END mesh-push:seed names' awk '$0 == ENVIRON["b"] {i = 1} i {print} $0 == ENVIRON["e"] {i = 0}' /etc/hosts 2>/dev/null || true
# The host's init, which boot hooks of this mesh are in place (host/boot.py: files there and
# enabled), and whether the script they run is.
echo '=== boot'
pid1=$(cat /proc/1/comm 2>/dev/null)
if [ -d /run/systemd/system ]; then echo init=systemd
elif [ "$pid1" = runit ] && command -v sv >/dev/null; then echo init=runit
elif [ -d /run/openrc ] && [ -x /sbin/openrc-run ]; then echo init=openrc
elif [ "$pid1" = init ] && [ -d /etc/init.d ] && [ -d /etc/rc2.d ]; then echo init=sysvinit
else echo init=none
fi
if [ -e /etc/systemd/system/mesh-push-seed.service ] && [ "$(readlink /etc/systemd/system/multi-user.target.wants/mesh-push-seed.service)" = /etc/systemd/system/mesh-push-seed.service ]; then echo hook=systemd; fi
if [ -e /etc/sv/mesh-push-seed/run ] && [ "$(readlink /etc/runit/runsvdir/default/mesh-push-seed)" = /etc/sv/mesh-push-seed ]; then echo hook=runit; fi
if [ -e /etc/init.d/mesh-push-seed ] && [ "$(readlink /etc/runlevels/default/mesh-push-seed)" = /etc/init.d/mesh-push-seed ]; then echo hook=openrc; fi
if [ -e /etc/init.d/mesh-push-seed ] && [ -n "$(find /etc/rc2.d -name 'S??mesh-push-seed' 2>/dev/null)" ]; then echo hook=sysvinit; fi
[ -s /var/lib/mesh-push/seed/apply.sh ] && echo script=yes || echo script=no
BR=internet
echo '=== brctl'; command -v brctl >/dev/null && brctl showstp "$BR" 2>/dev/null
echo '=== bridge-root'; cat "/sys/class/net/$BR/bridge/root_id" 2>/dev/null
echo '=== end'
true
