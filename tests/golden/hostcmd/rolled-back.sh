STATE=/var/lib/mesh-push/seed
TOKEN=fedcba9876543210
if [ -e "$STATE/rolled-back" ] && [ "$(cat "$STATE/rolled-back")" = "$TOKEN" ]; then
  echo rolled-back
elif { [ ! -e "$STATE/armed.token" ] || [ "$(cat "$STATE/armed.token")" != "$TOKEN" ]; } && [ ! -e "$STATE/confirmed.$TOKEN" ]; then
  echo superseded
fi
