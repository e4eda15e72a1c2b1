set -e
umask 077
STATE=/var/lib/mesh-push/seed
mkdir -p "$STATE"
chmod 700 "$STATE"
LOCK="$STATE/lock"
CHILD=
lock_holder() { sed -n 1p "$LOCK" 2>/dev/null | grep . || echo "an unknown time (no holder recorded)"; }
# What to do when $STATE is gone (a `down` removed it while we waited): make it again; the
# rollback timer and the confirmation redefine this to give up instead.
lock_gone() { mkdir -p "$STATE"; }
# take_lock WHAT SECONDS: 0 once this program holds the lock, 1 if another still holds it.
# The wait is a child (flock on our fd 9 locks it for us too), so a TERM trap runs at once.
take_lock() {
  lock_end=$(($(date +%s) + $2))
  while :; do
    [ -d "$STATE" ] || lock_gone
    exec 9>>"$LOCK"
    lock_left=$((lock_end - $(date +%s)))
    [ "$lock_left" -ge 0 ] || lock_left=0
    flock -w "$lock_left" 9 & CHILD=$!
    if ! wait "$CHILD"; then CHILD=; exec 9>&-; return 1; fi
    CHILD=
    [ "$LOCK" -ef /proc/self/fd/9 ] && break
    exec 9>&-
  done
  printf '%s (pid %s, %s)\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$1" > "$LOCK"
}
# lock WHAT: take it within the bounded wait, or fail clearly.
lock() {
  if ! command -v flock >/dev/null; then
    echo "mesh-push: flock is missing on this host (apt-get install util-linux)" >&2
    exit 75
  fi
  take_lock "$1" 30 && return 0
  printf 'mesh-push: another mesh-push run holds the lock on this host since %s; gave up after %s s\n' "$(lock_holder)" 30 >&2
  exit 75
}
# disarm: an earlier rollback timer (armed.sh.j2) belongs to an earlier rollout, which this
# run supersedes: forget its token (the timer gives up when it sees that) and stop it, by its
# pid once its command line and mount namespace say it is ours. Run holding the lock.
disarm() {
  rm -f "$STATE/armed.token"
  t_pid=$(cat "$STATE/armed.pid" 2>/dev/null || true)
  case $t_pid in ''|*[!0-9]*) t_pid= ;; esac
  t_cmdline() { tr '\0' ' ' 2>/dev/null < "/proc/$t_pid/cmdline" || true; }
  if [ -n "$t_pid" ] && [ "$(t_cmdline)" = "/bin/sh $STATE/armed.sh " ] \
    && [ "$(readlink "/proc/$t_pid/ns/mnt")" = "$(readlink /proc/self/ns/mnt)" ]; then
    kill "$t_pid" 2>/dev/null || true
    for _ in $(seq 50); do [ -n "$(t_cmdline)" ] || break; sleep 0.1; done
  fi
  rm -f "$STATE/armed.pid"
}
lock apply
IFS= read -r key
k=/etc/wireguard/mesh-push-seed.key
mkdir -p "${k%/*}"
chmod 700 "${k%/*}"
printf '%s\n' "$key" > "$k.new"
key=
if cmp -s "$k.new" "$k"; then rm -f "$k.new"; else mv "$k.new" "$k"; echo "changed: private key installed"; fi
cat > "$STATE/pending.sh"
received=$(sha256sum < "$STATE/pending.sh")
received=${received%% *}
if [ "$received" != 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ]; then
  size=$(wc -c < "$STATE/pending.sh")
  rm -f "$STATE/pending.sh"
  printf 'mesh-push: the script did not arrive whole (%s bytes, sha256 %s; expected sha256 %s): refused, nothing was run\n' "$size" "$received" 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef >&2
  exit 65
fi
disarm
rm -f "$STATE/apply.rc"
setsid sh -c 'STATE=/var/lib/mesh-push/seed
MESH_PUSH_ADOPT=0 sh "$STATE/pending.sh" 9>&- > "$STATE/apply.log" 2>&1
rc=$?
if [ "$rc" = 0 ]; then
  mv "$STATE/pending.sh" "$STATE/apply.sh"
  printf '"'"'%s\n'"'"' 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef > "$STATE/applied.sha256.new" && mv "$STATE/applied.sha256.new" "$STATE/applied.sha256"
  rm -f "$STATE/failed.sh"
  {
boot_changed=0
if ! printf '"'"'%s'"'"' '"'"'[Unit]
Description=mesh-push: bring mesh seed back at boot
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /var/lib/mesh-push/seed/apply.sh

[Install]
WantedBy=multi-user.target
'"'"' | cmp -s - /etc/systemd/system/mesh-push-seed.service; then
  boot_changed=1
  mkdir -p /etc/systemd/system && printf '"'"'%s'"'"' '"'"'[Unit]
Description=mesh-push: bring mesh seed back at boot
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /var/lib/mesh-push/seed/apply.sh

[Install]
WantedBy=multi-user.target
'"'"' > /etc/systemd/system/mesh-push-seed.service.new && chmod 644 /etc/systemd/system/mesh-push-seed.service.new && mv /etc/systemd/system/mesh-push-seed.service.new /etc/systemd/system/mesh-push-seed.service
fi
if [ "$boot_changed" = 1 ] || ! [ "$(readlink /etc/systemd/system/multi-user.target.wants/mesh-push-seed.service)" = /etc/systemd/system/mesh-push-seed.service ]; then
  mkdir -p /etc/systemd/system/multi-user.target.wants && ln -sfn /etc/systemd/system/mesh-push-seed.service /etc/systemd/system/multi-user.target.wants/mesh-push-seed.service && { [ ! -d /run/systemd/system ] || systemctl daemon-reload; }
  echo "changed: boot unit installed"
fi
  } >> "$STATE/apply.log" 2>&1
else
  mv "$STATE/pending.sh" "$STATE/failed.sh"
fi
echo $rc > "$STATE/apply.rc.new"
mv "$STATE/apply.rc.new" "$STATE/apply.rc"
' </dev/null >/dev/null 2>&1 &
while [ ! -e "$STATE/apply.rc" ]; do sleep 0.02; done
cat "$STATE/apply.log"
exit $(cat "$STATE/apply.rc")
