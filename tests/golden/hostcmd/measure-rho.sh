d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
ping -n -c 10 -i 0.2 -W 2 -- 10.88.88.1 > "$d"/0 2>&1 &
ping -n -c 10 -i 0.2 -W 2 -- 10.88.88.4 > "$d"/1 2>&1 &
ping -n -c 10 -i 0.2 -W 2 -- 10.88.88.5 > "$d"/2 2>&1 &
ping -n -c 10 -i 0.2 -W 2 -- 10.88.88.3 > "$d"/3 2>&1 &
wait
printf '%s\n' '=== mesh-push measure bob'; cat "$d"/0
printf '%s\n' '=== mesh-push measure epsilon'; cat "$d"/1
printf '%s\n' '=== mesh-push measure pi0'; cat "$d"/2
printf '%s\n' '=== mesh-push measure vorke'; cat "$d"/3
