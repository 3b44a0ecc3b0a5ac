#!/usr/bin/env bash
# Outbound Redis benchmark: each request opens the (shared) connection and
# runs one INCR through the Spin SDK 5 component and the SDK 7 one, against a
# redis-server started here on a free loopback port. For scale, the same INCR
# straight from redis-benchmark (no HTTP, no Wasm) in the same run.
# Prints req/s, p50 and p99 at 1 and 8 connections.
#
# Usage: benches/redis.sh [DURATION]    (default 10s per measurement)
# Needs: wrk, redis-server (and redis-benchmark, from redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p gatewayd
bash examples/build.sh >/dev/null
target=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

"$target/gatewayd" up examples/redis --listen 127.0.0.1:0 --state-dir "$work/state" >"$work/log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
  addr=$(grep -o 'http://[0-9.:]*' "$work/log" | head -n1 | sed 's#http://##') || true
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/log" >&2; exit 1; }
cat >"$work/incr.lua" <<LUA
wrk.method = "POST"
wrk.headers["x-redis-address"] = "redis://127.0.0.1:$port"
LUA

to_us() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 }
    else print v }'
}

printf '%-26s %3s %9s %9s %9s\n' path c req/s p50_us p99_us
for c in 1 8; do
  for sdk in v5 v7; do
    out=$(wrk -t1 -c"$c" -d"$duration" --latency -s "$work/incr.lua" "http://$addr/$sdk/incr/counter")
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "$out" >&2; exit 1; fi
    rps=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_us "$(awk '$1=="50%" {print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1=="99%" {print $2}' <<<"$out")")
    printf '%-26s %3s %9s %9s %9s\n' "gatewayd $sdk incr" "$c" "$rps" "$p50" "$p99"
  done
  if command -v redis-benchmark >/dev/null; then
    # Its progress output uses carriage returns; the final line is "INCR: N requests per second".
    rps=$(redis-benchmark -p "$port" -c "$c" -n 50000 -q -t incr | tr '\r' '\n' | awk '/^INCR:/ {v=$2} END {print v}')
    printf '%-26s %3s %9s %9s %9s\n' "redis-benchmark incr" "$c" "$rps" - -
  fi
done
