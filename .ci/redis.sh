#!/usr/bin/env bash
# Run a command with a Redis to test against: the one on 127.0.0.1:6379 if it answers,
# else a throwaway redis-server (installed from Debian when missing) on a free port.
set -euo pipefail
if [ -n "${BOT_TEST_REDIS_URL:-}" ]; then exec "$@"; fi
if python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", 6379)); s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
then
  export BOT_TEST_REDIS_URL="redis://127.0.0.1:6379/0"
  exec "$@"
fi
if ! command -v redis-server >/dev/null; then
  echo "no Redis answers and redis-server is missing; installing it (Debian package redis-server)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; fi
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --save '' --appendonly no --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize no >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export BOT_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
"$@"
