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
rm -f "$STATE/rolled-back" "$STATE"/confirmed.*
if [ -s "$STATE/apply.sh" ] && [ -e "$STATE/applied.sha256" ]; then
  cp "$STATE/apply.sh" "$STATE/rollback.sh"
  cp "$STATE/applied.sha256" "$STATE/rollback.sha256"
else
  printf '%s\n' IyEvYmluL3NoCiMgbWVzaC1wdXNoIDAuMS4wOiB0YWtlIG1lc2ggc2VlZCBvZmYgdGhpcyBob3N0LiBHZW5lcmF0ZWQ6IGRvIG5vdCBlZGl0LgojIFJlbW92ZXMgdGhlIGludGVyZmFjZXMgdGhpcyBtZXNoIG1hcmtlZCwgdGhlIHVzZXJzcGFjZSBXaXJlR3VhcmQgcHJvY2VzcyB3aXRoIGl0cyBzb2NrZXQsCiMgaXRzIGJvb3QgdW5pdCBhbmQgaXRzIHN0YXRlIGRpcmVjdG9yeS4gTm90aGluZyBhbm90aGVyIG1lc2ggKG9yIGFueW9uZSBlbHNlKSBtYWRlIGlzCiMgdG91Y2hlZC4gVGhlIGtleXMgc3RheSB1bmxlc3MgcHVyZ2luZy4gV2l0aCBNRVNIX1BVU0hfQ0hFQ0s9MSBpbiBpdHMgZW52aXJvbm1lbnQKIyAoYG1lc2gtcHVzaCBkb3duIC0tY2hlY2tgKSBpdCBjaGFuZ2VzIG5vdGhpbmcgYW5kIHNheXMgd2hhdCBpdCB3b3VsZCByZW1vdmUuCnNldCAtZXUKUEFUSD0vdXNyL2xvY2FsL3NiaW46L3Vzci9sb2NhbC9iaW46L3Vzci9zYmluOi91c3IvYmluOi9zYmluOi9iaW4KTENfQUxMPUMKZXhwb3J0IFBBVEggTENfQUxMCk1FU0g9c2VlZApTVEFURT0vdmFyL2xpYi9tZXNoLXB1c2gvc2VlZApNQVJLPW1lc2gtcHVzaDpzZWVkCkxFR0FDWV9NQVJLPW1lc2gtcHVzaApMRUdBQ1k9L3Zhci9saWIvbWVzaC1wdXNoCkNIRUNLPSR7TUVTSF9QVVNIX0NIRUNLOi0wfQpDSEFOR0VEPTAKYWN0KCkgeyBbICIkQ0hFQ0siID0gMSBdIHx8ICIkQCI7IH0KZGlkKCkgeyBwcmludGYgJ2NoYW5nZWQ6ICVzXG4nICIkKiI7IENIQU5HRUQ9MTsgfQphbGlhc19vZigpIHsgY2F0ICIvc3lzL2NsYXNzL25ldC8kMS9pZmFsaWFzIiAyPi9kZXYvbnVsbCB8fCB0cnVlOyB9CiMgTmFtZXMgdGhpcyBtZXNoIGdpdmVzIGludGVyZmFjZXMgKGl0cyBXaXJlR3VhcmQgaW50ZXJmYWNlLCBpdHMgYnJpZGdlLCBhIHdpcmUgcGVyIGhvc3QpOgojIHVuZGVyIG9uZSBvZiB0aGVtIHRoZSBtYXJrIGV2ZXJ5IG1lc2ggc2hhcmVkIGJlZm9yZSBtZXNoZXMgaGFkIG5hbWVzIGlzIHRoaXMgbWVzaCdzIHRvby4KbmFtZWQoKSB7CiAgY2FzZSAkMSBpbiB3ZzB8aW50ZXJuZXR8Ym9ifHJob3x2b3JrZXxlcHNpbG9ufHBpMHwnJykgcmV0dXJuIDAgOzsgZXNhYwogIHJldHVybiAxCn0KIyBBbiBvbGRlciBpbnN0YWxsIChiZWZvcmUgbWVzaGVzIGhhZCBuYW1lcykgd2hvc2Ugc2NyaXB0IHNheXMgaXQgd2FzIHRoaXMgbWVzaCdzLgpsZWdhY3lfb3VycygpIHsKICBbIC1mICIkTEVHQUNZL2FwcGx5LnNoIiBdIFwKICAgICYmIFsgIiQoc2VkIC1uICcycy9eIyBtZXNoLXB1c2ggW146XSo6IGhvc3QgLiogb2YgbWVzaCBcKC4qXClcLiBHZW5lcmF0ZWQ6IGRvIG5vdCBlZGl0XC4kL1wxL3AnICIkTEVHQUNZL2FwcGx5LnNoIikiID0gIiRNRVNIIiBdCn0KCiMgVGhlIHJlLXJlc29sdmVyIGZpcnN0IChzZWUgdGhlIGhvc3Qgc2NyaXB0KSwgc3RvcHBlZCBieSBpdHMgcGlkIG9uY2UgdGhhdCBpcyBjaGVja2VkIHRvIGJlCiMgb3VycywgYW5kIHdhaXRlZCBmb3I6IGl0IG11c3Qgbm90IG91dGxpdmUgYGRvd25gLCBub3IgdG91Y2ggdGhlIGludGVyZmFjZXMgYXMgdGhleSBnby4Kc3RvcF9yZXJlc29sdmVyKCkgewogIHJyX3BpZD0kKGNhdCAiJDEvcmVyZXNvbHZlLnBpZCIgMj4vZGV2L251bGwgfHwgdHJ1ZSkKICBjYXNlICRycl9waWQgaW4gJyd8KlshMC05XSopIHJldHVybiAwIDs7IGVzYWMKICBycl9jbWRsaW5lKCkgeyB0ciAnXDAnICcgJyAyPi9kZXYvbnVsbCA8ICIvcHJvYy8kcnJfcGlkL2NtZGxpbmUiIHx8IHRydWU7IH0KICBpZiBbICIkKHJyX2NtZGxpbmUpIiA9ICIvYmluL3NoICQxL3JlcmVzb2x2ZS5zaCBsb29wICIgXSBcCiAgICAmJiBbICIkKHJlYWRsaW5rICIvcHJvYy8kcnJfcGlkL25zL21udCIpIiA9ICIkKHJlYWRsaW5rIC9wcm9jL3NlbGYvbnMvbW50KSIgXTsgdGhlbgogICAgYWN0IGtpbGwgIiRycl9waWQiCiAgICBbICIkQ0hFQ0siID0gMSBdIHx8IGZvciBfIGluICQoc2VxIDUwKTsgZG8gWyAtbiAiJChycl9jbWRsaW5lKSIgXSB8fCBicmVhazsgc2xlZXAgMC4xOyBkb25lCiAgICBkaWQgInJlLXJlc29sdmVyIHN0b3BwZWQiCiAgZmkKfQpzdG9wX3JlcmVzb2x2ZXIgIiRTVEFURSIKTEVHQUNZX09VUlM9MAppZiBsZWdhY3lfb3VyczsgdGhlbiBMRUdBQ1lfT1VSUz0xOyBzdG9wX3JlcmVzb2x2ZXIgIiRMRUdBQ1kiOyBmaQoKIyBGUlIgZmlyc3Q6IGl0cyByb3V0ZXMgZ28gd2l0aCBpdCwgYW5kIGl0IGRvZXMgbm90IHNlZSB0aGUgaW50ZXJmYWNlcyBnbyBvbmUgYnkgb25lLgpQUz1tZXNoLXB1c2gtc2VlZAppZiBbIC1kICIvZXRjL2Zyci8kUFMiIF0gfHwgWyAtZCAiL3Zhci9ydW4vZnJyLyRQUyIgXTsgdGhlbgogIGlmIFsgLWQgL3J1bi9zeXN0ZW1kL3N5c3RlbSBdOyB0aGVuCiAgICAjIHN5c3RlbWQgcmVhZHMgIi0iIGluIGFuIGluc3RhbmNlIG5hbWUgYXMgIi8iOiB0aGUgbmFtZSBnb2VzIGVzY2FwZWQuCiAgICB1bml0PSJmcnJAJChzeXN0ZW1kLWVzY2FwZSAiJFBTIikuc2VydmljZSIKICAgIGlmIHN5c3RlbWN0bCAtcSBpcy1hY3RpdmUgIiR1bml0IiAyPi9kZXYvbnVsbDsgdGhlbiBhY3Qgc3lzdGVtY3RsIHN0b3AgIiR1bml0IiB8fCB0cnVlOyBmaQogICAgIyBBIHN0YXJ0IHRoYXQgZmFpbGVkIHN0YXlzIGxpc3RlZCBhcyBmYWlsZWQgdW50aWwgdG9sZCBvdGhlcndpc2UuCiAgICBhY3Qgc3lzdGVtY3RsIHJlc2V0LWZhaWxlZCAiJHVuaXQiIDI+L2Rldi9udWxsIHx8IHRydWUKICBmaQogIGlmIFsgLXMgIi92YXIvcnVuL2Zyci8kUFMvd2F0Y2hmcnIucGlkIiBdICYmIFsgLXggL3Vzci9saWIvZnJyL2ZycmluaXQuc2ggXTsgdGhlbgogICAgYWN0IC91c3IvbGliL2Zyci9mcnJpbml0LnNoIHN0b3AgIiRQUyIgPi9kZXYvbnVsbCAyPiYxIHx8IHRydWUKICBmaQogICMgSXRzIHBpZCBmaWxlcyBhbmQgc29ja2V0cyBzdGF5IGJlaGluZCBvbmNlIHRoZSBkYWVtb25zIGFyZSBnb25lLgogIGFjdCBybSAtcmYgIi9ldGMvZnJyLyRQUyIgIi92YXIvcnVuL2Zyci8kUFMiCiAgZGlkICJGUlIgaW5zdGFuY2UgJFBTIHN0b3BwZWQgYW5kIHJlbW92ZWQiCmZpCiMgVGhlIFZURVBzJyB1bnJlYWNoYWJsZSByb3V0ZSAoZXZwbi9ob3N0LnNoLmoyKSwgYnkgaXRzIHByb3RvY29sIG51bWJlcjogb3VycyBvbmx5LgpjYXNlICIkKGlwIC1vIHJvdXRlIHNob3cgZXhhY3QgMTAuODguODguMC8yNCAyPi9kZXYvbnVsbCB8fCB0cnVlKSIgaW4KICAidW5yZWFjaGFibGUgIjEwLjg4Ljg4LjAvMjQiIHByb3RvICIyMzMiICIqKQogICAgYWN0IGlwIHJvdXRlIGRlbCB1bnJlYWNoYWJsZSAxMC44OC44OC4wLzI0IHByb3RvIDIzMwogICAgZGlkICJyb3V0ZSAiMTAuODguODguMC8yNCIgcmVtb3ZlZCIgOzsKZXNhYwoKZm9yIGRldiBpbiAvc3lzL2NsYXNzL25ldC8qIC9zeXMvY2xhc3MvbmV0Ly5bIS5dKiAvc3lzL2NsYXNzL25ldC8uLj8qOyBkbwogIFsgLWUgIiRkZXYiIF0gfHwgY29udGludWUKICBuYW1lPSR7ZGV2IyMqL30KICBjYXNlICIkKGFsaWFzX29mICIkbmFtZSIpIiBpbgogICAgIiRNQVJLIikgOzsKICAgICIkTEVHQUNZX01BUksiKSBuYW1lZCAiJG5hbWUiIHx8IGNvbnRpbnVlIDs7CiAgICAqKSBjb250aW51ZSA7OwogIGVzYWMKICBhY3QgaXAgbGluayBkZWwgZGV2ICIkbmFtZSI7IGRpZCAiJG5hbWUgcmVtb3ZlZCIKZG9uZQojIHdpcmVndWFyZC1nbyBleGl0cyB3aGVuIGl0cyBpbnRlcmZhY2UgZ29lczsgd2FpdCBmb3IgaXQgc28gbm90aGluZyBvdXRsaXZlcyBgZG93bmAuIChBbgojIGludGVyZmFjZSBvZiB0aGF0IG5hbWUgc3RpbGwgdGhlcmUgaXMgbm90IHRoaXMgbWVzaCdzOiBpdHMgc29ja2V0IGlzIG5vdCBlaXRoZXIuKQpzb2NrPS9ydW4vd2lyZWd1YXJkL3dnMC5zb2NrCmlmIFsgIiRDSEVDSyIgPSAwIF0gJiYgWyAhIC1lIC9zeXMvY2xhc3MvbmV0L3dnMCBdOyB0aGVuCiAgZm9yIF8gaW4gJChzZXEgNTApOyBkbyBbIC1lICIkc29jayIgXSB8fCBicmVhazsgc2xlZXAgMC4xOyBkb25lCiAgaWYgWyAtZSAiJHNvY2siIF07IHRoZW4gcm0gLWYgIiRzb2NrIjsgZGlkICJzdGFsZSAkc29jayByZW1vdmVkIjsgZmkKZmkKCiMgVGhlIGJvb3QgdW5pdCBhbmQgaXRzIHdhbnRzIGxpbmssIGFzIHRoZSBhcHBseSBjb21tYW5kIGluc3RhbGxzIHRoZW0gKGFwcGx5LnNoLmoyKSwgYW5kIGFuCiMgb2xkZXIgaW5zdGFsbCdzLCB3aGVuIGl0IHdhcyB0aGlzIG1lc2gncy4KcmVtb3ZlX3VuaXQoKSB7CiAgaWYgWyAtZSAiJDEiIF0gfHwgWyAtTCAiJDIiIF07IHRoZW4KICAgIGlmIFsgLWQgL3J1bi9zeXN0ZW1kL3N5c3RlbSBdOyB0aGVuIGFjdCBzeXN0ZW1jdGwgZGlzYWJsZSAiJHsxIyMqL30iID4vZGV2L251bGwgMj4mMSB8fCB0cnVlOyBmaQogICAgYWN0IHJtIC1mICIkMSIgIiQyIgogICAgZGlkICJib290IGhvb2sgJHsxIyMqL30gcmVtb3ZlZCIKICBmaQp9CnJlbW92ZV91bml0IC9ldGMvc3lzdGVtZC9zeXN0ZW0vbWVzaC1wdXNoLXNlZWQuc2VydmljZSAvZXRjL3N5c3RlbWQvc3lzdGVtL211bHRpLXVzZXIudGFyZ2V0LndhbnRzL21lc2gtcHVzaC1zZWVkLnNlcnZpY2UKaWYgWyAiJExFR0FDWV9PVVJTIiA9IDEgXTsgdGhlbiByZW1vdmVfdW5pdCAvZXRjL3N5c3RlbWQvc3lzdGVtL21lc2gtcHVzaC5zZXJ2aWNlIC9ldGMvc3lzdGVtZC9zeXN0ZW0vbXVsdGktdXNlci50YXJnZXQud2FudHMvbWVzaC1wdXNoLnNlcnZpY2U7IGZpCmlmIFsgLWQgIiRTVEFURSIgXTsgdGhlbgogICMgVGhlIGRpcmVjdG9yeSBpdHNlbGYgbWF5IGJlIGEgbW91bnQgcG9pbnQgKGFzIGluIHRoZSBsYWIpOiBlbXB0eSBpdCwgdGhlbiB0cnkgdG8gcmVtb3ZlIGl0LgogICMgSXRzIGBsb2NrYCBhbG9uZSBpcyB0aGUgZG93biBjb21tYW5kJ3Mgb3duIChpdCBob2xkcyBpdCB3aGlsZSB0aGlzIHJ1bnMpOiBub3RoaW5nIHRvIHNheS4KICBrZXB0PSQoZmluZCAiJFNUQVRFIiAtbWluZGVwdGggMSAhIC1wYXRoICIkU1RBVEUvbG9jayIgLXByaW50IHwgaGVhZCAtbiAxKQogIGFjdCBmaW5kICIkU1RBVEUiIC1taW5kZXB0aCAxIC1kZWxldGUKICBhY3Qgcm1kaXIgIiRTVEFURSIgMj4vZGV2L251bGwgfHwgdHJ1ZQogIFsgLXogIiRrZXB0IiBdIHx8IGRpZCAiJFNUQVRFIHJlbW92ZWQiCmZpCmlmIFsgIiRMRUdBQ1lfT1VSUyIgPSAxIF07IHRoZW4KICBmb3IgZiBpbiBhcHBseS5zaCBhcHBsaWVkLnNoYTI1NiBhcHBseS5sb2cgYXBwbHkucmMgcm9sbGJhY2suc2ggcm9sbGJhY2suc2hhMjU2IHJvbGxiYWNrLmxvZyBcCiAgICBhcm1lZC5zaCByb2xsZWQtYmFjayByZXJlc29sdmUuc2ggcmVyZXNvbHZlLnBpZCByZXJlc29sdmUubG9nOyBkbwogICAgYWN0IHJtIC1mICIkTEVHQUNZLyRmIiAiJExFR0FDWS8kZi5uZXciCiAgZG9uZQogIGFjdCBmaW5kICIkTEVHQUNZIiAtbWF4ZGVwdGggMSAtdHlwZSBmIC1uYW1lICdjb25maXJtZWQuKicgLWRlbGV0ZQogIGRpZCAib2xkZXIgaW5zdGFsbCdzIGZpbGVzIGluICRMRUdBQ1kgcmVtb3ZlZCIKZmkKWyAiJENIQU5HRUQiID0gMSBdIHx8IGVjaG8gIm5vIGNoYW5nZXMiCg== | base64 -d > "$STATE/rollback.sh"
  rm -f "$STATE/rollback.sha256"
fi
printf '%s\n' fedcba9876543210 > "$STATE/armed.token.new" && mv "$STATE/armed.token.new" "$STATE/armed.token"
printf '%s\n' U1RBVEU9L3Zhci9saWIvbWVzaC1wdXNoL3NlZWQKVE9LRU49ZmVkY2JhOTg3NjU0MzIxMApMT0NLPSIkU1RBVEUvbG9jayIKQ0hJTEQ9CmxvY2tfaG9sZGVyKCkgeyBzZWQgLW4gMXAgIiRMT0NLIiAyPi9kZXYvbnVsbCB8IGdyZXAgLiB8fCBlY2hvICJhbiB1bmtub3duIHRpbWUgKG5vIGhvbGRlciByZWNvcmRlZCkiOyB9CiMgV2hhdCB0byBkbyB3aGVuICRTVEFURSBpcyBnb25lIChhIGBkb3duYCByZW1vdmVkIGl0IHdoaWxlIHdlIHdhaXRlZCk6IG1ha2UgaXQgYWdhaW47IHRoZQojIHJvbGxiYWNrIHRpbWVyIGFuZCB0aGUgY29uZmlybWF0aW9uIHJlZGVmaW5lIHRoaXMgdG8gZ2l2ZSB1cCBpbnN0ZWFkLgpsb2NrX2dvbmUoKSB7IG1rZGlyIC1wICIkU1RBVEUiOyB9CiMgdGFrZV9sb2NrIFdIQVQgU0VDT05EUzogMCBvbmNlIHRoaXMgcHJvZ3JhbSBob2xkcyB0aGUgbG9jaywgMSBpZiBhbm90aGVyIHN0aWxsIGhvbGRzIGl0LgojIFRoZSB3YWl0IGlzIGEgY2hpbGQgKGZsb2NrIG9uIG91ciBmZCA5IGxvY2tzIGl0IGZvciB1cyB0b28pLCBzbyBhIFRFUk0gdHJhcCBydW5zIGF0IG9uY2UuCnRha2VfbG9jaygpIHsKICBsb2NrX2VuZD0kKCgkKGRhdGUgKyVzKSArICQyKSkKICB3aGlsZSA6OyBkbwogICAgWyAtZCAiJFNUQVRFIiBdIHx8IGxvY2tfZ29uZQogICAgZXhlYyA5Pj4iJExPQ0siCiAgICBsb2NrX2xlZnQ9JCgobG9ja19lbmQgLSAkKGRhdGUgKyVzKSkpCiAgICBbICIkbG9ja19sZWZ0IiAtZ2UgMCBdIHx8IGxvY2tfbGVmdD0wCiAgICBmbG9jayAtdyAiJGxvY2tfbGVmdCIgOSAmIENISUxEPSQhCiAgICBpZiAhIHdhaXQgIiRDSElMRCI7IHRoZW4gQ0hJTEQ9OyBleGVjIDk+Ji07IHJldHVybiAxOyBmaQogICAgQ0hJTEQ9CiAgICBbICIkTE9DSyIgLWVmIC9wcm9jL3NlbGYvZmQvOSBdICYmIGJyZWFrCiAgICBleGVjIDk+Ji0KICBkb25lCiAgcHJpbnRmICclcyAocGlkICVzLCAlcylcbicgIiQoZGF0ZSAtdSArJVktJW0tJWRUJUg6JU06JVNaKSIgIiQkIiAiJDEiID4gIiRMT0NLIgp9CiMgbG9jayBXSEFUOiB0YWtlIGl0IHdpdGhpbiB0aGUgYm91bmRlZCB3YWl0LCBvciBmYWlsIGNsZWFybHkuCmxvY2soKSB7CiAgaWYgISBjb21tYW5kIC12IGZsb2NrID4vZGV2L251bGw7IHRoZW4KICAgIGVjaG8gIm1lc2gtcHVzaDogZmxvY2sgaXMgbWlzc2luZyBvbiB0aGlzIGhvc3QgKGFwdC1nZXQgaW5zdGFsbCB1dGlsLWxpbnV4KSIgPiYyCiAgICBleGl0IDc1CiAgZmkKICB0YWtlX2xvY2sgIiQxIiAzMCAmJiByZXR1cm4gMAogIHByaW50ZiAnbWVzaC1wdXNoOiBhbm90aGVyIG1lc2gtcHVzaCBydW4gaG9sZHMgdGhlIGxvY2sgb24gdGhpcyBob3N0IHNpbmNlICVzOyBnYXZlIHVwIGFmdGVyICVzIHNcbicgIiQobG9ja19ob2xkZXIpIiAzMCA+JjIKICBleGl0IDc1Cn0KIyBkaXNhcm06IGFuIGVhcmxpZXIgcm9sbGJhY2sgdGltZXIgKGFybWVkLnNoLmoyKSBiZWxvbmdzIHRvIGFuIGVhcmxpZXIgcm9sbG91dCwgd2hpY2ggdGhpcwojIHJ1biBzdXBlcnNlZGVzOiBmb3JnZXQgaXRzIHRva2VuICh0aGUgdGltZXIgZ2l2ZXMgdXAgd2hlbiBpdCBzZWVzIHRoYXQpIGFuZCBzdG9wIGl0LCBieSBpdHMKIyBwaWQgb25jZSBpdHMgY29tbWFuZCBsaW5lIGFuZCBtb3VudCBuYW1lc3BhY2Ugc2F5IGl0IGlzIG91cnMuIFJ1biBob2xkaW5nIHRoZSBsb2NrLgpkaXNhcm0oKSB7CiAgcm0gLWYgIiRTVEFURS9hcm1lZC50b2tlbiIKICB0X3BpZD0kKGNhdCAiJFNUQVRFL2FybWVkLnBpZCIgMj4vZGV2L251bGwgfHwgdHJ1ZSkKICBjYXNlICR0X3BpZCBpbiAnJ3wqWyEwLTldKikgdF9waWQ9IDs7IGVzYWMKICB0X2NtZGxpbmUoKSB7IHRyICdcMCcgJyAnIDI+L2Rldi9udWxsIDwgIi9wcm9jLyR0X3BpZC9jbWRsaW5lIiB8fCB0cnVlOyB9CiAgaWYgWyAtbiAiJHRfcGlkIiBdICYmIFsgIiQodF9jbWRsaW5lKSIgPSAiL2Jpbi9zaCAkU1RBVEUvYXJtZWQuc2ggIiBdIFwKICAgICYmIFsgIiQocmVhZGxpbmsgIi9wcm9jLyR0X3BpZC9ucy9tbnQiKSIgPSAiJChyZWFkbGluayAvcHJvYy9zZWxmL25zL21udCkiIF07IHRoZW4KICAgIGtpbGwgIiR0X3BpZCIgMj4vZGV2L251bGwgfHwgdHJ1ZQogICAgZm9yIF8gaW4gJChzZXEgNTApOyBkbyBbIC1uICIkKHRfY21kbGluZSkiIF0gfHwgYnJlYWs7IHNsZWVwIDAuMTsgZG9uZQogIGZpCiAgcm0gLWYgIiRTVEFURS9hcm1lZC5waWQiCn0KbG9ja19nb25lKCkgeyBleGl0IDA7IH0gICMgYSBgZG93bmAgcmVtb3ZlZCBldmVyeXRoaW5nOiBub3RoaW5nIGxlZnQgdG8gcm9sbCBiYWNrCnRyYXAgJ2lmIFsgLW4gIiRDSElMRCIgXTsgdGhlbiBraWxsICIkQ0hJTEQiIDI+L2Rldi9udWxsOyBmaTsgZXhpdCAwJyBURVJNCm91cnMoKSB7IFsgLWUgIiRTVEFURS9hcm1lZC50b2tlbiIgXSAmJiBbICIkKGNhdCAiJFNUQVRFL2FybWVkLnRva2VuIikiID0gIiRUT0tFTiIgXTsgfQojIFN1cGVyc2VkZWQgKGEgbGF0ZXIgcnVuIHRvb2sgdGhlIHRva2VuKTogaXRzIHBpZCBmaWxlIGdvZXMgd2l0aCBpdCwgaWYgaXQgaXMgc3RpbGwgaXRzIG93bi4KZ2l2ZV91cCgpIHsKICBpZiBbICIkKGNhdCAiJFNUQVRFL2FybWVkLnBpZCIgMj4vZGV2L251bGwpIiA9ICIkJCIgXTsgdGhlbiBybSAtZiAiJFNUQVRFL2FybWVkLnBpZCI7IGZpCiAgZXhpdCAwCn0KIyBIZWxkIChyZXR1cm5zKSBvbmNlIG5vIG90aGVyIHJ1biBob2xkcyB0aGUgbG9jazsgZ2l2ZXMgdXAgb25jZSB0aGUgdG9rZW4gaXMgbm90IG91cnMuCmhvbGQoKSB7IHVudGlsIG91cnMgJiYgdGFrZV9sb2NrICIkMSIgMzA7IGRvIG91cnMgfHwgZ2l2ZV91cDsgZG9uZTsgfQpob2xkICJyb2xsYmFjayB0aW1lciwgd2FpdGluZyBmb3IgdGhlIGFwcGx5IHRvIGVuZCIKZXhlYyA5PiYtCnNsZWVwIDYwICYgQ0hJTEQ9JCEKd2FpdCAiJENISUxEIgpDSElMRD0KaG9sZCAicm9sbGJhY2sgdGltZXIiCm91cnMgfHwgZ2l2ZV91cAppZiBbICEgLWUgIiRTVEFURS9jb25maXJtZWQuJFRPS0VOIiBdOyB0aGVuCiAgc2ggIiRTVEFURS9yb2xsYmFjay5zaCIgOT4mLSA+ICIkU1RBVEUvcm9sbGJhY2subG9nIiAyPiYxIHx8IHRydWUKICBta2RpciAtcCAiJFNUQVRFIgogIGlmIFsgLWUgIiRTVEFURS9yb2xsYmFjay5zaGEyNTYiIF07IHRoZW4KICAgIGNwICIkU1RBVEUvcm9sbGJhY2suc2giICIkU1RBVEUvYXBwbHkuc2giICYmIG12ICIkU1RBVEUvcm9sbGJhY2suc2hhMjU2IiAiJFNUQVRFL2FwcGxpZWQuc2hhMjU2IgogIGVsc2UKICAgIHJtIC1mICIkU1RBVEUvYXBwbGllZC5zaGEyNTYiCiAgZmkKICBwcmludGYgJyVzXG4nICIkVE9LRU4iID4gIiRTVEFURS9yb2xsZWQtYmFjayIKZmkKcm0gLWYgIiRTVEFURS9hcm1lZC5waWQiICIkU1RBVEUvYXJtZWQudG9rZW4iCg== | base64 -d > "$STATE/armed.sh"
setsid /bin/sh "$STATE/armed.sh" 9>&- </dev/null >/dev/null 2>&1 &
# Its pid is known before this apply ends, so that a `down` or `up` right after it can stop it
# (setsid does not fork here: a background job of a shell without job control leads no group).
echo $! > "$STATE/armed.pid.new" && mv "$STATE/armed.pid.new" "$STATE/armed.pid"
rm -f "$STATE/apply.rc"
setsid sh -c 'STATE=/var/lib/mesh-push/seed
UNIT=/etc/systemd/system/mesh-push-seed.service
WANTS=/etc/systemd/system/multi-user.target.wants/mesh-push-seed.service
sh "$STATE/pending.sh" 9>&- > "$STATE/apply.log" 2>&1
rc=$?
if [ "$rc" = 0 ]; then
  mv "$STATE/pending.sh" "$STATE/apply.sh"
  printf '"'"'%s\n'"'"' 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef > "$STATE/applied.sha256.new" && mv "$STATE/applied.sha256.new" "$STATE/applied.sha256"
  rm -f "$STATE/failed.sh"
  mkdir -p "${WANTS%/*}" && printf '"'"'%s'"'"' '"'"'[Unit]
Description=mesh-push: bring mesh seed back at boot
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /var/lib/mesh-push/seed/apply.sh

[Install]
WantedBy=multi-user.target
'"'"' > "$UNIT.new"
  if cmp -s "$UNIT.new" "$UNIT" && [ "$(readlink "$WANTS")" = "$UNIT" ]; then
    rm -f "$UNIT.new"
  else
    mv "$UNIT.new" "$UNIT" && ln -sf "$UNIT" "$WANTS"
    echo "changed: boot unit installed" >> "$STATE/apply.log"
  fi
else
  mv "$STATE/pending.sh" "$STATE/failed.sh"
fi
echo $rc > "$STATE/apply.rc.new"
mv "$STATE/apply.rc.new" "$STATE/apply.rc"
' </dev/null >/dev/null 2>&1 &
while [ ! -e "$STATE/apply.rc" ]; do sleep 0.02; done
cat "$STATE/apply.log"
exit $(cat "$STATE/apply.rc")
