umask 077
k=/etc/wireguard/wg0.key
wg genkey > "$k.next.new" && mv "$k.next.new" "$k.next" && wg pubkey < "$k.next"
