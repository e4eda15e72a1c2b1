STATE=/var/lib/mesh-push
TOKEN=fedcba9876543210
if [ "$(cat "$STATE/rolled-back" 2>/dev/null)" = "$TOKEN" ]; then
  echo rolled-back
elif [ "$(cat "$STATE/armed.token" 2>/dev/null)" != "$TOKEN" ] && [ ! -e "$STATE/confirmed.$TOKEN" ]; then
  echo superseded
fi
