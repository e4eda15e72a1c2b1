# Sourced by scripts/install, scripts/demo and scripts/test; not a command of its own.
#
# The scripts run as whoever starts them and escalate only the steps that need root (apt-get,
# the lab, pytest): directly when that is already root (sudo is then never called, so it need
# not be installed), through sudo otherwise. Everything else (the .venv, ruff, mypy) runs as the
# owner of the checkout, so a user's checkout never ends up with root-owned files in it.

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCRIPT=${SCRIPT:-scripts/$(basename "$0")}
OWNER=$(stat -c %U .)
OWNER_UID=$(stat -c %u .)

# Python started as root in a checkout that is not root's: no __pycache__ owned by root.
ROOT_PY_ENV=()
if [ "$OWNER_UID" -ne 0 ]; then
  ROOT_PY_ENV=(PYTHONDONTWRITEBYTECODE=1)
fi

# Call before doing anything: a non-root user without sudo learns it now, not halfway through.
need_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  command -v sudo >/dev/null 2>&1 && return 0
  local me
  me=$(id -un)
  cat >&2 <<EOF
$SCRIPT: some steps need root; you are $me and sudo is not installed.
Either run the same command as root (su -, then cd $PWD and run it again; as root the
scripts use no sudo), or, as root, install sudo and give $me the right to use it:
    apt-get install sudo && usermod -aG sudo $me
then log in again as $me and rerun the command.
EOF
  exit 1
}

# as_root CMD ...: run CMD as root. Pass environment variables with `env VAR=value CMD`: sudo
# does not keep the caller's environment.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    need_root
    sudo "$@"
  fi
}

# as_owner CMD ...: run CMD as the checkout's owner (root running in a user's checkout drops
# to that user; anyone else runs it as themselves).
as_owner() {
  if [ "$(id -u)" -eq 0 ] && [ "$OWNER_UID" -ne 0 ]; then
    runuser -u "$OWNER" -- "$@"
  else
    "$@"
  fi
}
