set -e
umask 077
STATE=/var/lib/mesh-push
mkdir -p "$STATE"
chmod 700 "$STATE"
STATE=/var/lib/mesh-push
mkdir -p "$STATE"
rm -f "$STATE/rolled-back" "$STATE"/confirmed.*
if [ -s "$STATE/apply.sh" ] && [ -e "$STATE/applied.sha256" ]; then
  cp "$STATE/apply.sh" "$STATE/rollback.sh"
  cp "$STATE/applied.sha256" "$STATE/rollback.sha256"
else
  echo IyEvYmluL3NoCiMgbWVzaC1wdXNoIDAuMS4wOiB0YWtlIG1lc2ggc2VlZCBvZmYgdGhpcyBob3N0LiBHZW5lcmF0ZWQ6IGRvIG5vdCBlZGl0LgojIFJlbW92ZXMgZXZlcnkgaW50ZXJmYWNlIG1lc2gtcHVzaCBtYXJrZWQsIHRoZSB1c2Vyc3BhY2UgV2lyZUd1YXJkIHByb2Nlc3Mgd2l0aCBpdHMgc29ja2V0LAojIHRoZSBib290IGhvb2sgYW5kIHRoZSBwdXNoZWQgc2NyaXB0cy4gVGhlIHByaXZhdGUga2V5IHN0YXlzIHVubGVzcyBwdXJnaW5nLgpzZXQgLWV1ClBBVEg9L3Vzci9sb2NhbC9zYmluOi91c3IvbG9jYWwvYmluOi91c3Ivc2JpbjovdXNyL2Jpbjovc2JpbjovYmluCkxDX0FMTD1DCmV4cG9ydCBQQVRIIExDX0FMTApTVEFURT0vdmFyL2xpYi9tZXNoLXB1c2gKTUFSSz1tZXNoLXB1c2gKQ0hBTkdFRD0wCmRpZCgpIHsgZWNobyAiY2hhbmdlZDogJCoiOyBDSEFOR0VEPTE7IH0KCiMgVGhlIHJlLXJlc29sdmVyIGZpcnN0IChzZWUgdGhlIGhvc3Qgc2NyaXB0KSwgc3RvcHBlZCBieSBpdHMgcGlkIG9uY2UgdGhhdCBpcyBjaGVja2VkIHRvIGJlCiMgb3VycywgYW5kIHdhaXRlZCBmb3I6IGl0IG11c3Qgbm90IG91dGxpdmUgYGRvd25gLCBub3IgdG91Y2ggdGhlIGludGVyZmFjZXMgYXMgdGhleSBnby4KcnJfcGlkPSQoY2F0ICIkU1RBVEUvcmVyZXNvbHZlLnBpZCIgMj4vZGV2L251bGwgfHwgdHJ1ZSkKY2FzZSAkcnJfcGlkIGluICcnfCpbITAtOV0qKSBycl9waWQ9IDs7IGVzYWMKcnJfY21kbGluZSgpIHsgdHIgJ1wwJyAnICcgMj4vZGV2L251bGwgPCAiL3Byb2MvJHJyX3BpZC9jbWRsaW5lIiB8fCB0cnVlOyB9CmlmIFsgLW4gIiRycl9waWQiIF0gJiYgWyAiJChycl9jbWRsaW5lKSIgPSAiL2Jpbi9zaCAkU1RBVEUvcmVyZXNvbHZlLnNoIGxvb3AgIiBdIFwKICAmJiBbICIkKHJlYWRsaW5rICIvcHJvYy8kcnJfcGlkL25zL21udCIpIiA9ICIkKHJlYWRsaW5rIC9wcm9jL3NlbGYvbnMvbW50KSIgXTsgdGhlbgogIGtpbGwgIiRycl9waWQiCiAgZm9yIF8gaW4gJChzZXEgNTApOyBkbyBbIC1uICIkKHJyX2NtZGxpbmUpIiBdIHx8IGJyZWFrOyBzbGVlcCAwLjE7IGRvbmUKICBkaWQgInJlLXJlc29sdmVyIHN0b3BwZWQiCmZpCgpmb3IgZGV2IGluIC9zeXMvY2xhc3MvbmV0Lyo7IGRvCiAgbmFtZT0ke2RldiMjKi99CiAgWyAiJChjYXQgIiRkZXYvaWZhbGlhcyIgMj4vZGV2L251bGwpIiA9ICIkTUFSSyIgXSB8fCBjb250aW51ZQogIGlwIGxpbmsgZGVsIGRldiAiJG5hbWUiOyBkaWQgIiRuYW1lIHJlbW92ZWQiCmRvbmUKIyB3aXJlZ3VhcmQtZ28gZXhpdHMgd2hlbiBpdHMgaW50ZXJmYWNlIGdvZXM7IHdhaXQgZm9yIGl0IHNvIG5vdGhpbmcgb3V0bGl2ZXMgYGRvd25gLgpzb2NrPS9ydW4vd2lyZWd1YXJkL3dnMC5zb2NrCmZvciBfIGluICQoc2VxIDUwKTsgZG8gWyAtZSAiJHNvY2siIF0gfHwgYnJlYWs7IHNsZWVwIDAuMTsgZG9uZQppZiBbIC1lICIkc29jayIgXTsgdGhlbiBybSAtZiAiJHNvY2siOyBkaWQgInN0YWxlICRzb2NrIHJlbW92ZWQiOyBmaQoKIyBUaGUgYm9vdCB1bml0IGFuZCBpdHMgd2FudHMgbGluaywgYXMgdGhlIGFwcGx5IGNvbW1hbmQgaW5zdGFsbHMgdGhlbSAoYXBwbHkuc2guajIpLgp1bml0PS9ldGMvc3lzdGVtZC9zeXN0ZW0vbWVzaC1wdXNoLnNlcnZpY2UKd2FudHM9L2V0Yy9zeXN0ZW1kL3N5c3RlbS9tdWx0aS11c2VyLnRhcmdldC53YW50cy9tZXNoLXB1c2guc2VydmljZQppZiBbIC1lICIkdW5pdCIgXSB8fCBbIC1MICIkd2FudHMiIF07IHRoZW4KICBpZiBbIC1kIC9ydW4vc3lzdGVtZC9zeXN0ZW0gXTsgdGhlbiBzeXN0ZW1jdGwgZGlzYWJsZSAiJHt1bml0IyMqL30iID4vZGV2L251bGwgMj4mMSB8fCB0cnVlOyBmaQogIHJtIC1mICIkdW5pdCIgIiR3YW50cyIKICBkaWQgImJvb3QgaG9vayByZW1vdmVkIgpmaQppZiBbIC1kICIkU1RBVEUiIF07IHRoZW4KICAjIFRoZSBkaXJlY3RvcnkgaXRzZWxmIG1heSBiZSBhIG1vdW50IHBvaW50IChhcyBpbiB0aGUgbGFiKTogZW1wdHkgaXQsIHRoZW4gdHJ5IHRvIHJlbW92ZSBpdC4KICBmaW5kICIkU1RBVEUiIC1taW5kZXB0aCAxIC1kZWxldGUKICBybWRpciAiJFNUQVRFIiAyPi9kZXYvbnVsbCB8fCB0cnVlCiAgZGlkICIkU1RBVEUgcmVtb3ZlZCIKZmkKWyAiJENIQU5HRUQiID0gMSBdIHx8IGVjaG8gIm5vIGNoYW5nZXMiCg== | base64 -d > "$STATE/rollback.sh"
  rm -f "$STATE/rollback.sha256"
fi
echo U1RBVEU9L3Zhci9saWIvbWVzaC1wdXNoClRPS0VOPWZlZGNiYTk4NzY1NDMyMTAKc2xlZXAgNjAKWyAtZSAiJFNUQVRFL2NvbmZpcm1lZC4kVE9LRU4iIF0gJiYgZXhpdCAwCnNoICIkU1RBVEUvcm9sbGJhY2suc2giID4gIiRTVEFURS9yb2xsYmFjay5sb2ciIDI+JjEgfHwgdHJ1ZQpta2RpciAtcCAiJFNUQVRFIgppZiBbIC1lICIkU1RBVEUvcm9sbGJhY2suc2hhMjU2IiBdOyB0aGVuCiAgY3AgIiRTVEFURS9yb2xsYmFjay5zaCIgIiRTVEFURS9hcHBseS5zaCIgJiYgbXYgIiRTVEFURS9yb2xsYmFjay5zaGEyNTYiICIkU1RBVEUvYXBwbGllZC5zaGEyNTYiCmVsc2UKICBybSAtZiAiJFNUQVRFL2FwcGxpZWQuc2hhMjU2IgpmaQplY2hvICIkVE9LRU4iID4gIiRTVEFURS9yb2xsZWQtYmFjayIK | base64 -d > "$STATE/armed.sh"
setsid sh "$STATE/armed.sh" </dev/null >/dev/null 2>&1 &
cat > "$STATE/apply.sh.new"
mv "$STATE/apply.sh.new" "$STATE/apply.sh"
rm -f "$STATE/apply.rc"
setsid sh -c 'STATE=/var/lib/mesh-push
UNIT=/etc/systemd/system/mesh-push.service
WANTS=/etc/systemd/system/multi-user.target.wants/mesh-push.service
sh "$STATE/apply.sh" > "$STATE/apply.log" 2>&1
rc=$?
if [ "$rc" = 0 ]; then
  echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef > "$STATE/applied.sha256.new" && mv "$STATE/applied.sha256.new" "$STATE/applied.sha256"
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
fi
echo $rc > "$STATE/apply.rc.new"
mv "$STATE/apply.rc.new" "$STATE/apply.rc"
' </dev/null >/dev/null 2>&1 &
while [ ! -e "$STATE/apply.rc" ]; do sleep 0.02; done
cat "$STATE/apply.log"
exit $(cat "$STATE/apply.rc")
