#!/usr/bin/env bash
# What recording metrics costs on the request path: the same wrk load, in one
# run, against
#   base      gatewayd built from BASE_REV, before metrics existed (no counters)
#   off       this tree, /metrics endpoint off (counters still recorded: they
#             are always on, the endpoint only reads them)
#   scraped   this tree, --metrics on and scraped every second, as a
#             Prometheus with a short interval would
# each serving examples/hello-wstd (WASI 0.2, a fresh instance per request).
# Rounds alternate the servers so drift in the machine hits all three alike;
# prints each run, then the mean per server and its ratio to base.
#
# Usage: benches/metrics.sh [DURATION] [ROUNDS] [BASE_REV]
#        (default 10s, 3 rounds, e20ab74: the last commit before metrics)
# Needs: wrk (apt-get install wrk), git. Uses loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
rounds=${2:-3}
base_rev=${3:-e20ab74}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
source benches/lib.sh
work=$(mktemp -d)
pids=()
cleanup_all() { cleanup; git worktree remove --force "$worktree" 2>/dev/null || true; }
worktree="$work/base-src"
trap cleanup_all EXIT

# One target dir for both builds (dependencies build once); each binary is
# copied out as soon as it is linked.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
bash examples/build.sh >/dev/null
git worktree add -q --detach "$worktree" "$base_rev"
(cd "$worktree" && cargo build --release -q -p gatewayd)
cp "$CARGO_TARGET_DIR/release/gatewayd" "$work/gatewayd-base"
cargo build --release -q -p gatewayd
cp "$CARGO_TARGET_DIR/release/gatewayd" "$work/gatewayd-now"
cmp -s "$work/gatewayd-base" "$work/gatewayd-now" && { echo "both builds are the same binary" >&2; exit 1; }

app=examples/hello-wstd
servers=(base off scraped)
start base "$work/base.log" "$work/gatewayd-base" up "$app" --listen 127.0.0.1:0 --state-dir "$work/s-base"
urls[0]="http://$addr/"
start off "$work/off.log" "$work/gatewayd-now" up "$app" --listen 127.0.0.1:0 --state-dir "$work/s-off"
urls[1]="http://$addr/"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metrics_port=$(free_port)
http_port=$(free_port)
# Fixed ports: this one logs two addresses (the app's and /metrics).
start scraped "$work/scraped.log" "$work/gatewayd-now" up "$app" --listen "127.0.0.1:$http_port" --state-dir "$work/s-scraped" --metrics "127.0.0.1:$metrics_port"
urls[2]="http://127.0.0.1:$http_port/"
(while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/metrics"; done) &
pids+=($!)

declare -A sum
printf '%-8s %5s %10s %9s %9s\n' server round req/s p50_us p99_us
for round in $(seq 1 "$rounds"); do
  for i in "${!servers[@]}"; do
    read -r rps p50 p99 <<<"$(measure "${servers[$i]}" "${urls[$i]}" 32)"
    printf '%-8s %5s %10s %9s %9s\n' "${servers[$i]}" "$round" "$rps" "$p50" "$p99"
    sum[${servers[$i]}]=$(awk -v a="${sum[${servers[$i]}]:-0 0 0}" -v r="$rps" -v p="$p50" -v q="$p99" \
      'BEGIN { split(a, s, " "); print s[1] + r, s[2] + p, s[3] + q }')
  done
done

echo
read -r br b50 b99 <<<"${sum[base]}"
for server in "${servers[@]}"; do
  read -r r p50 p99 <<<"${sum[$server]}"
  awk -v s="$server" -v n="$rounds" -v r="$r" -v p50="$p50" -v p99="$p99" -v br="$br" -v b99="$b99" 'BEGIN {
    printf "%-8s mean %9.0f req/s  p50 %6.0f us  p99 %6.0f us  vs base: throughput %.3fx, p99 %.2fx\n",
      s, r / n, p50 / n, p99 / n, r / br, p99 / b99 }'
done
