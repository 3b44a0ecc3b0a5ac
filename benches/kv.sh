#!/usr/bin/env bash
# Key-value benchmark: gatewayd serving examples/kv; each request is one
# get + set of a counter in the embedded default store (an fsync per write),
# through the Spin SDK 5 component (WASI 0.2) and the SDK 7 one (WASI 0.3).
# A read-only run (get) shows the cost without the disk flush. Prints req/s,
# p50 and p99 at 1 and 8 connections.
#
# Usage: benches/kv.sh [DURATION]      (default 10s per measurement)
# Needs: wrk (apt-get install wrk). Uses loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p gatewayd
bash examples/build.sh >/dev/null
target=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$target/gatewayd" up examples/kv --listen 127.0.0.1:0 --state-dir "$work/state" \
  --key-value counter=0 >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  addr=$(grep -o 'http://[0-9.:]*' "$work/log" | head -n1 | sed 's#http://##') || true
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/log" >&2; exit 1; }
echo 'wrk.method = "POST"' >"$work/post.lua"

to_us() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 }
    else print v }'
}

printf '%-28s %3s %9s %9s %9s\n' operation c req/s p50_us p99_us
for c in 1 8; do
  for run in "v5 incr (get+set)|/v5/default/incr/counter|post" \
             "v7 incr (get+set)|/v7/default/incr/counter|post" \
             "v5 get|/v5/default/get/counter|get"; do
    IFS='|' read -r name path method <<<"$run"
    script=()
    [ "$method" = post ] && script=(-s "$work/post.lua")
    out=$(wrk -t1 -c"$c" -d"$duration" --latency "${script[@]}" "http://$addr$path")
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "$out" >&2; exit 1; fi
    rps=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_us "$(awk '$1=="50%" {print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1=="99%" {print $2}' <<<"$out")")
    printf '%-28s %3s %9s %9s %9s\n' "$name" "$c" "$rps" "$p50" "$p99"
  done
done
