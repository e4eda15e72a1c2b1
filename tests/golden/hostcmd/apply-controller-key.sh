set -e
umask 077
STATE=/var/lib/mesh-push
mkdir -p "$STATE"
chmod 700 "$STATE"
IFS= read -r key
k=/etc/wireguard/wg0.key
mkdir -p "${k%/*}"
chmod 700 "${k%/*}"
printf '%s\n' "$key" > "$k.new"
key=
if cmp -s "$k.new" "$k"; then rm -f "$k.new"; else mv "$k.new" "$k"; echo "changed: private key installed"; fi
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
