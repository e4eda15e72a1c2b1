ping -c 1 -W 2 -q -- 10.99.99.1 >/dev/null 2>&1 || printf '%s\n' bob
ping -c 1 -W 2 -q -- 10.99.99.4 >/dev/null 2>&1 || printf '%s\n' epsilon
ping -c 1 -W 2 -q -- 10.99.99.5 >/dev/null 2>&1 || printf '%s\n' pi0
ping -c 1 -W 2 -q -- 10.99.99.3 >/dev/null 2>&1 || printf '%s\n' vorke
true
