set -e
umask 077
STATE=/var/lib/mesh-push
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
  echo "mesh-push: another mesh-push run holds the lock on this host since $(lock_holder); gave up after "30" s" >&2
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
  echo "mesh-push: the script did not arrive whole ($size bytes, sha256 $received; expected sha256 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"): refused, nothing was run" >&2
  exit 65
fi
disarm
rm -f "$STATE/rolled-back" "$STATE"/confirmed.*
if [ -s "$STATE/apply.sh" ] && [ -e "$STATE/applied.sha256" ]; then
  cp "$STATE/apply.sh" "$STATE/rollback.sh"
  cp "$STATE/applied.sha256" "$STATE/rollback.sha256"
else
  echo IyEvYmluL3NoCiMgbWVzaC1wdXNoIDAuMS4wOiB0YWtlIG1lc2ggc2VlZCBvZmYgdGhpcyBob3N0LiBHZW5lcmF0ZWQ6IGRvIG5vdCBlZGl0LgojIFJlbW92ZXMgZXZlcnkgaW50ZXJmYWNlIG1lc2gtcHVzaCBtYXJrZWQsIHRoZSB1c2Vyc3BhY2UgV2lyZUd1YXJkIHByb2Nlc3Mgd2l0aCBpdHMgc29ja2V0LAojIHRoZSBib290IGhvb2sgYW5kIHRoZSBwdXNoZWQgc2NyaXB0cy4gVGhlIHByaXZhdGUga2V5IHN0YXlzIHVubGVzcyBwdXJnaW5nLgpzZXQgLWV1ClBBVEg9L3Vzci9sb2NhbC9zYmluOi91c3IvbG9jYWwvYmluOi91c3Ivc2JpbjovdXNyL2Jpbjovc2JpbjovYmluCkxDX0FMTD1DCmV4cG9ydCBQQVRIIExDX0FMTApTVEFURT0vdmFyL2xpYi9tZXNoLXB1c2gKTUFSSz1tZXNoLXB1c2gKQ0hBTkdFRD0wCmRpZCgpIHsgZWNobyAiY2hhbmdlZDogJCoiOyBDSEFOR0VEPTE7IH0KCiMgVGhlIHJlLXJlc29sdmVyIGZpcnN0IChzZWUgdGhlIGhvc3Qgc2NyaXB0KSwgc3RvcHBlZCBieSBpdHMgcGlkIG9uY2UgdGhhdCBpcyBjaGVja2VkIHRvIGJlCiMgb3VycywgYW5kIHdhaXRlZCBmb3I6IGl0IG11c3Qgbm90IG91dGxpdmUgYGRvd25gLCBub3IgdG91Y2ggdGhlIGludGVyZmFjZXMgYXMgdGhleSBnby4KcnJfcGlkPSQoY2F0ICIkU1RBVEUvcmVyZXNvbHZlLnBpZCIgMj4vZGV2L251bGwgfHwgdHJ1ZSkKY2FzZSAkcnJfcGlkIGluICcnfCpbITAtOV0qKSBycl9waWQ9IDs7IGVzYWMKcnJfY21kbGluZSgpIHsgdHIgJ1wwJyAnICcgMj4vZGV2L251bGwgPCAiL3Byb2MvJHJyX3BpZC9jbWRsaW5lIiB8fCB0cnVlOyB9CmlmIFsgLW4gIiRycl9waWQiIF0gJiYgWyAiJChycl9jbWRsaW5lKSIgPSAiL2Jpbi9zaCAkU1RBVEUvcmVyZXNvbHZlLnNoIGxvb3AgIiBdIFwKICAmJiBbICIkKHJlYWRsaW5rICIvcHJvYy8kcnJfcGlkL25zL21udCIpIiA9ICIkKHJlYWRsaW5rIC9wcm9jL3NlbGYvbnMvbW50KSIgXTsgdGhlbgogIGtpbGwgIiRycl9waWQiCiAgZm9yIF8gaW4gJChzZXEgNTApOyBkbyBbIC1uICIkKHJyX2NtZGxpbmUpIiBdIHx8IGJyZWFrOyBzbGVlcCAwLjE7IGRvbmUKICBkaWQgInJlLXJlc29sdmVyIHN0b3BwZWQiCmZpCgpmb3IgZGV2IGluIC9zeXMvY2xhc3MvbmV0Lyo7IGRvCiAgbmFtZT0ke2RldiMjKi99CiAgWyAiJChjYXQgIiRkZXYvaWZhbGlhcyIgMj4vZGV2L251bGwpIiA9ICIkTUFSSyIgXSB8fCBjb250aW51ZQogIGlwIGxpbmsgZGVsIGRldiAiJG5hbWUiOyBkaWQgIiRuYW1lIHJlbW92ZWQiCmRvbmUKIyB3aXJlZ3VhcmQtZ28gZXhpdHMgd2hlbiBpdHMgaW50ZXJmYWNlIGdvZXM7IHdhaXQgZm9yIGl0IHNvIG5vdGhpbmcgb3V0bGl2ZXMgYGRvd25gLgpzb2NrPS9ydW4vd2lyZWd1YXJkL3dnMC5zb2NrCmZvciBfIGluICQoc2VxIDUwKTsgZG8gWyAtZSAiJHNvY2siIF0gfHwgYnJlYWs7IHNsZWVwIDAuMTsgZG9uZQppZiBbIC1lICIkc29jayIgXTsgdGhlbiBybSAtZiAiJHNvY2siOyBkaWQgInN0YWxlICRzb2NrIHJlbW92ZWQiOyBmaQoKIyBUaGUgYm9vdCB1bml0IGFuZCBpdHMgd2FudHMgbGluaywgYXMgdGhlIGFwcGx5IGNvbW1hbmQgaW5zdGFsbHMgdGhlbSAoYXBwbHkuc2guajIpLgp1bml0PS9ldGMvc3lzdGVtZC9zeXN0ZW0vbWVzaC1wdXNoLnNlcnZpY2UKd2FudHM9L2V0Yy9zeXN0ZW1kL3N5c3RlbS9tdWx0aS11c2VyLnRhcmdldC53YW50cy9tZXNoLXB1c2guc2VydmljZQppZiBbIC1lICIkdW5pdCIgXSB8fCBbIC1MICIkd2FudHMiIF07IHRoZW4KICBpZiBbIC1kIC9ydW4vc3lzdGVtZC9zeXN0ZW0gXTsgdGhlbiBzeXN0ZW1jdGwgZGlzYWJsZSAiJHt1bml0IyMqL30iID4vZGV2L251bGwgMj4mMSB8fCB0cnVlOyBmaQogIHJtIC1mICIkdW5pdCIgIiR3YW50cyIKICBkaWQgImJvb3QgaG9vayByZW1vdmVkIgpmaQppZiBbIC1kICIkU1RBVEUiIF07IHRoZW4KICAjIFRoZSBkaXJlY3RvcnkgaXRzZWxmIG1heSBiZSBhIG1vdW50IHBvaW50IChhcyBpbiB0aGUgbGFiKTogZW1wdHkgaXQsIHRoZW4gdHJ5IHRvIHJlbW92ZSBpdC4KICAjIEl0cyBgbG9ja2AgYWxvbmUgaXMgdGhlIGRvd24gY29tbWFuZCdzIG93biAoaXQgaG9sZHMgaXQgd2hpbGUgdGhpcyBydW5zKTogbm90aGluZyB0byBzYXkuCiAga2VwdD0kKGZpbmQgIiRTVEFURSIgLW1pbmRlcHRoIDEgISAtcGF0aCAiJFNUQVRFL2xvY2siIC1wcmludCB8IGhlYWQgLW4gMSkKICBmaW5kICIkU1RBVEUiIC1taW5kZXB0aCAxIC1kZWxldGUKICBybWRpciAiJFNUQVRFIiAyPi9kZXYvbnVsbCB8fCB0cnVlCiAgWyAteiAiJGtlcHQiIF0gfHwgZGlkICIkU1RBVEUgcmVtb3ZlZCIKZmkKWyAiJENIQU5HRUQiID0gMSBdIHx8IGVjaG8gIm5vIGNoYW5nZXMiCg== | base64 -d > "$STATE/rollback.sh"
  rm -f "$STATE/rollback.sha256"
fi
echo fedcba9876543210 > "$STATE/armed.token.new" && mv "$STATE/armed.token.new" "$STATE/armed.token"
echo U1RBVEU9L3Zhci9saWIvbWVzaC1wdXNoClRPS0VOPWZlZGNiYTk4NzY1NDMyMTAKTE9DSz0iJFNUQVRFL2xvY2siCkNISUxEPQpsb2NrX2hvbGRlcigpIHsgc2VkIC1uIDFwICIkTE9DSyIgMj4vZGV2L251bGwgfCBncmVwIC4gfHwgZWNobyAiYW4gdW5rbm93biB0aW1lIChubyBob2xkZXIgcmVjb3JkZWQpIjsgfQojIFdoYXQgdG8gZG8gd2hlbiAkU1RBVEUgaXMgZ29uZSAoYSBgZG93bmAgcmVtb3ZlZCBpdCB3aGlsZSB3ZSB3YWl0ZWQpOiBtYWtlIGl0IGFnYWluOyB0aGUKIyByb2xsYmFjayB0aW1lciBhbmQgdGhlIGNvbmZpcm1hdGlvbiByZWRlZmluZSB0aGlzIHRvIGdpdmUgdXAgaW5zdGVhZC4KbG9ja19nb25lKCkgeyBta2RpciAtcCAiJFNUQVRFIjsgfQojIHRha2VfbG9jayBXSEFUIFNFQ09ORFM6IDAgb25jZSB0aGlzIHByb2dyYW0gaG9sZHMgdGhlIGxvY2ssIDEgaWYgYW5vdGhlciBzdGlsbCBob2xkcyBpdC4KIyBUaGUgd2FpdCBpcyBhIGNoaWxkIChmbG9jayBvbiBvdXIgZmQgOSBsb2NrcyBpdCBmb3IgdXMgdG9vKSwgc28gYSBURVJNIHRyYXAgcnVucyBhdCBvbmNlLgp0YWtlX2xvY2soKSB7CiAgbG9ja19lbmQ9JCgoJChkYXRlICslcykgKyAkMikpCiAgd2hpbGUgOjsgZG8KICAgIFsgLWQgIiRTVEFURSIgXSB8fCBsb2NrX2dvbmUKICAgIGV4ZWMgOT4+IiRMT0NLIgogICAgbG9ja19sZWZ0PSQoKGxvY2tfZW5kIC0gJChkYXRlICslcykpKQogICAgWyAiJGxvY2tfbGVmdCIgLWdlIDAgXSB8fCBsb2NrX2xlZnQ9MAogICAgZmxvY2sgLXcgIiRsb2NrX2xlZnQiIDkgJiBDSElMRD0kIQogICAgaWYgISB3YWl0ICIkQ0hJTEQiOyB0aGVuIENISUxEPTsgZXhlYyA5PiYtOyByZXR1cm4gMTsgZmkKICAgIENISUxEPQogICAgWyAiJExPQ0siIC1lZiAvcHJvYy9zZWxmL2ZkLzkgXSAmJiBicmVhawogICAgZXhlYyA5PiYtCiAgZG9uZQogIHByaW50ZiAnJXMgKHBpZCAlcywgJXMpXG4nICIkKGRhdGUgLXUgKyVZLSVtLSVkVCVIOiVNOiVTWikiICIkJCIgIiQxIiA+ICIkTE9DSyIKfQojIGxvY2sgV0hBVDogdGFrZSBpdCB3aXRoaW4gdGhlIGJvdW5kZWQgd2FpdCwgb3IgZmFpbCBjbGVhcmx5Lgpsb2NrKCkgewogIGlmICEgY29tbWFuZCAtdiBmbG9jayA+L2Rldi9udWxsOyB0aGVuCiAgICBlY2hvICJtZXNoLXB1c2g6IGZsb2NrIGlzIG1pc3Npbmcgb24gdGhpcyBob3N0IChhcHQtZ2V0IGluc3RhbGwgdXRpbC1saW51eCkiID4mMgogICAgZXhpdCA3NQogIGZpCiAgdGFrZV9sb2NrICIkMSIgMzAgJiYgcmV0dXJuIDAKICBlY2hvICJtZXNoLXB1c2g6IGFub3RoZXIgbWVzaC1wdXNoIHJ1biBob2xkcyB0aGUgbG9jayBvbiB0aGlzIGhvc3Qgc2luY2UgJChsb2NrX2hvbGRlcik7IGdhdmUgdXAgYWZ0ZXIgIjMwIiBzIiA+JjIKICBleGl0IDc1Cn0KIyBkaXNhcm06IGFuIGVhcmxpZXIgcm9sbGJhY2sgdGltZXIgKGFybWVkLnNoLmoyKSBiZWxvbmdzIHRvIGFuIGVhcmxpZXIgcm9sbG91dCwgd2hpY2ggdGhpcwojIHJ1biBzdXBlcnNlZGVzOiBmb3JnZXQgaXRzIHRva2VuICh0aGUgdGltZXIgZ2l2ZXMgdXAgd2hlbiBpdCBzZWVzIHRoYXQpIGFuZCBzdG9wIGl0LCBieSBpdHMKIyBwaWQgb25jZSBpdHMgY29tbWFuZCBsaW5lIGFuZCBtb3VudCBuYW1lc3BhY2Ugc2F5IGl0IGlzIG91cnMuIFJ1biBob2xkaW5nIHRoZSBsb2NrLgpkaXNhcm0oKSB7CiAgcm0gLWYgIiRTVEFURS9hcm1lZC50b2tlbiIKICB0X3BpZD0kKGNhdCAiJFNUQVRFL2FybWVkLnBpZCIgMj4vZGV2L251bGwgfHwgdHJ1ZSkKICBjYXNlICR0X3BpZCBpbiAnJ3wqWyEwLTldKikgdF9waWQ9IDs7IGVzYWMKICB0X2NtZGxpbmUoKSB7IHRyICdcMCcgJyAnIDI+L2Rldi9udWxsIDwgIi9wcm9jLyR0X3BpZC9jbWRsaW5lIiB8fCB0cnVlOyB9CiAgaWYgWyAtbiAiJHRfcGlkIiBdICYmIFsgIiQodF9jbWRsaW5lKSIgPSAiL2Jpbi9zaCAkU1RBVEUvYXJtZWQuc2ggIiBdIFwKICAgICYmIFsgIiQocmVhZGxpbmsgIi9wcm9jLyR0X3BpZC9ucy9tbnQiKSIgPSAiJChyZWFkbGluayAvcHJvYy9zZWxmL25zL21udCkiIF07IHRoZW4KICAgIGtpbGwgIiR0X3BpZCIgMj4vZGV2L251bGwgfHwgdHJ1ZQogICAgZm9yIF8gaW4gJChzZXEgNTApOyBkbyBbIC1uICIkKHRfY21kbGluZSkiIF0gfHwgYnJlYWs7IHNsZWVwIDAuMTsgZG9uZQogIGZpCiAgcm0gLWYgIiRTVEFURS9hcm1lZC5waWQiCn0KbG9ja19nb25lKCkgeyBleGl0IDA7IH0gICMgYSBgZG93bmAgcmVtb3ZlZCBldmVyeXRoaW5nOiBub3RoaW5nIGxlZnQgdG8gcm9sbCBiYWNrCnRyYXAgJ2lmIFsgLW4gIiRDSElMRCIgXTsgdGhlbiBraWxsICIkQ0hJTEQiIDI+L2Rldi9udWxsOyBmaTsgZXhpdCAwJyBURVJNCmVjaG8gJCQgPiAiJFNUQVRFL2FybWVkLnBpZC5uZXciICYmIG12ICIkU1RBVEUvYXJtZWQucGlkLm5ldyIgIiRTVEFURS9hcm1lZC5waWQiCm91cnMoKSB7IFsgIiQoY2F0ICIkU1RBVEUvYXJtZWQudG9rZW4iIDI+L2Rldi9udWxsKSIgPSAiJFRPS0VOIiBdOyB9CiMgSGVsZCAocmV0dXJucykgb25jZSBubyBvdGhlciBydW4gaG9sZHMgdGhlIGxvY2s7IGV4aXRzIG9uY2UgdGhlIHRva2VuIGlzIG5vdCBvdXJzLgpob2xkKCkgeyB1bnRpbCBvdXJzICYmIHRha2VfbG9jayAiJDEiIDMwOyBkbyBvdXJzIHx8IGV4aXQgMDsgZG9uZTsgfQpob2xkICJyb2xsYmFjayB0aW1lciwgd2FpdGluZyBmb3IgdGhlIGFwcGx5IHRvIGVuZCIKZXhlYyA5PiYtCnNsZWVwIDYwICYgQ0hJTEQ9JCEKd2FpdCAiJENISUxEIgpDSElMRD0KaG9sZCAicm9sbGJhY2sgdGltZXIiCm91cnMgfHwgZXhpdCAwCmlmIFsgISAtZSAiJFNUQVRFL2NvbmZpcm1lZC4kVE9LRU4iIF07IHRoZW4KICBzaCAiJFNUQVRFL3JvbGxiYWNrLnNoIiA5PiYtID4gIiRTVEFURS9yb2xsYmFjay5sb2ciIDI+JjEgfHwgdHJ1ZQogIG1rZGlyIC1wICIkU1RBVEUiCiAgaWYgWyAtZSAiJFNUQVRFL3JvbGxiYWNrLnNoYTI1NiIgXTsgdGhlbgogICAgY3AgIiRTVEFURS9yb2xsYmFjay5zaCIgIiRTVEFURS9hcHBseS5zaCIgJiYgbXYgIiRTVEFURS9yb2xsYmFjay5zaGEyNTYiICIkU1RBVEUvYXBwbGllZC5zaGEyNTYiCiAgZWxzZQogICAgcm0gLWYgIiRTVEFURS9hcHBsaWVkLnNoYTI1NiIKICBmaQogIGVjaG8gIiRUT0tFTiIgPiAiJFNUQVRFL3JvbGxlZC1iYWNrIgpmaQpybSAtZiAiJFNUQVRFL2FybWVkLnBpZCIgIiRTVEFURS9hcm1lZC50b2tlbiIK | base64 -d > "$STATE/armed.sh"
setsid /bin/sh "$STATE/armed.sh" 9>&- </dev/null >/dev/null 2>&1 &
rm -f "$STATE/apply.rc"
setsid sh -c 'STATE=/var/lib/mesh-push
UNIT=/etc/systemd/system/mesh-push.service
WANTS=/etc/systemd/system/multi-user.target.wants/mesh-push.service
sh "$STATE/pending.sh" 9>&- > "$STATE/apply.log" 2>&1
rc=$?
if [ "$rc" = 0 ]; then
  mv "$STATE/pending.sh" "$STATE/apply.sh"
  echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef > "$STATE/applied.sha256.new" && mv "$STATE/applied.sha256.new" "$STATE/applied.sha256"
  rm -f "$STATE/failed.sh"
  mkdir -p "${WANTS%/*}" && printf '"'"'%s'"'"' '"'"'[Unit]
Description=mesh-push: bring the mesh back at boot
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /var/lib/mesh-push/apply.sh

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
