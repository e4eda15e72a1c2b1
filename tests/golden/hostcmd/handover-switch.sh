umask 077
STATE=/var/lib/mesh-push/seed
mkdir -p "$STATE"
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
lock rotate-keys
k=/etc/wireguard/mesh-push-seed.key
[ -s "$k.next" ] || exit 0
mv "$k.next" "$k"
wg set wg0 private-key "$k"
echo switched
