STATE=/var/lib/mesh-push
TOKEN=fedcba9876543210
[ ! -e "$STATE/rolled-back" ] && touch "$STATE/confirmed.$TOKEN"
