cat /var/lib/mesh-push/rolled-back 2>/dev/null || true
