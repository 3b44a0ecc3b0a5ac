#!/usr/bin/env bash
# Where a request's CPU goes, and how close to the native server a gateway on
# wasmtime can come on this machine.
#
# In one run, under the same wrk load (-t1, CONNECTIONS connections):
# - the native hyper server and gatewayd serving hello-wstd (WASI 0.2, a
#   fresh instance per request): req/s, and CPU per request of the server and
#   of wrk itself (user + system, from /proc and the shell's `time`);
# - instance-cost, in one process with no network and no server, with as
#   many requests interleaved as one of gatewayd's serving threads gets
#   (CONNECTIONS / cores): what wasmtime alone costs per request (a fresh
#   instance with the cheapest host state; the floor), what gatewayd's own
#   handler costs for the same request, and for the Spin SDK 7 hello
#   (WASI 0.3, instances reused).
# Then it splits gatewayd's CPU per request into the native server's share,
# wasmtime's floor, Spin's request headers, gatewayd's handler beyond those,
# and the rest (its HTTP serving beyond native hyper's, and what load adds),
# and prints the
# ceiling: the ratio to native of a gateway that added only wasmtime's floor
# (or, for WASI 0.3, gatewayd's reused-instance call) to the native server's
# work, if every core were busy with it and wrk.
#
# Usage: benches/cost.sh [DURATION] [CONNECTIONS]   (default 10s, 32)
# Needs: wrk (apt-get install wrk). Uses loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
connections=${2:-32}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p gatewayd -p gateway-benches
bash examples/build.sh >/dev/null
target=${CARGO_TARGET_DIR:-target}/release
wasm=examples/target/wasm32-wasip2/release/hello_wstd.wasm
wasm03=examples/target/wasm32-wasip2/release/hello.wasm
cores=$(nproc)
source benches/lib.sh
work=$(mktemp -d)
pids=()
trap cleanup EXIT

ticks=$(getconf CLK_TCK)
# cpu_ticks PID: user + system clock ticks the process has used so far.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# load NAME URL: one wrk run after a 2 s warm-up; prints
# "req/s server_us_per_request wrk_us_per_request".
load() {
  local name=$1 url=$2 pid=${pids[-1]}
  wrk -t1 -c"$connections" -d2s "$url" >/dev/null
  local before after out
  before=$(cpu_ticks "$pid")
  # wrk's own CPU, user and system seconds, from the shell's `time`.
  local TIMEFORMAT='%U %S'
  { time wrk -t1 -c"$connections" -d"$duration" "$url" >"$work/wrk.out"; } 2>"$work/wrk.time"
  after=$(cpu_ticks "$pid")
  out=$(cat "$work/wrk.out")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    echo "$name: bad run:" >&2; echo "$out" >&2; exit 1
  fi
  local requests rps
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
  read -r wrk_user wrk_system <"$work/wrk.time"
  awk -v r="$requests" -v rps="$rps" -v b="$before" -v a="$after" -v hz="$ticks" \
    -v wu="$wrk_user" -v ws="$wrk_system" \
    'BEGIN { printf "%s %.2f %.2f\n", rps, (a - b) / hz * 1e6 / r, (wu + ws) * 1e6 / r }'
}

start native "$work/native.log" "$target/native-hello"
read -r native_rps native_us native_wrk < <(load native "http://$addr/")
kill "${pids[-1]}"
start gatewayd "$work/gatewayd.log" "$target/gatewayd" up examples/hello-wstd \
  --listen 127.0.0.1:0 --state-dir "$work/state"
read -r gw_rps gw_us gw_wrk < <(load gatewayd "http://$addr/")
kill "${pids[-1]}"

"$target/instance-cost" --concurrency $(( (connections + cores - 1) / cores )) \
  "$wasm" "$wasm03" | tee "$work/cost.txt"
floor=$(awk '/^floor_us/ {print $2}' "$work/cost.txt")
headers=$(awk '/^spin_headers_us/ {print $2}' "$work/cost.txt")
handler=$(awk '/^gatewayd_us/ {print $2}' "$work/cost.txt")
reused=$(awk '/^gatewayd_wasi03_us/ {print $2}' "$work/cost.txt")

echo
# cores: the CPU the server and wrk used per second of the run (the rest went
# to the kernel outside them, or was idle).
row() { awk -v n="$1" -v r="$2" -v s="$3" -v w="$4" 'BEGIN {
  printf "%-24s %10.0f %14.2f %12.2f %7.2f\n", n, r, s, w, (s + w) * r / 1e6 }'; }
printf '%-24s %10s %14s %12s %7s\n' "c=$connections, $duration" req/s "server µs/req" "wrk µs/req" cores
row "native hyper" "$native_rps" "$native_us" "$native_wrk"
row "gatewayd, hello-wstd" "$gw_rps" "$gw_us" "$gw_wrk"
awk -v nr="$native_rps" -v gr="$gw_rps" -v n="$native_us" -v g="$gw_us" -v w="$native_wrk" \
  -v f="$floor" -v s="$headers" -v h="$handler" -v r="$reused" -v cores="$cores" 'BEGIN {
  printf "\ngatewayd, CPU per request under load: %.2f µs =\n", g
  printf "  %6.2f  the native server'"'"'s work (hyper, the kernel'"'"'s TCP)\n", n
  printf "  %6.2f  wasmtime: fresh instance, handler call, drop (instance-cost floor)\n", f
  printf "  %6.2f  Spin'"'"'s seven spin-* request headers, host and guest side\n", s - f
  printf "  %6.2f  gatewayd'"'"'s handler beyond that (its store, grants, limits, task)\n", h - s
  printf "  %6.2f  the rest: gatewayd'"'"'s HTTP serving beyond hyper'"'"'s, and what load adds\n", g - n - h
  printf "measured gatewayd/native: %.2fx\n", gr / nr
  printf "ceiling, WASI 0.2 with fresh instances: %.2fx (%d cores / (wrk + native + floor) / native req/s)\n", cores * 1e6 / (w + n + f) / nr, cores
  printf "ceiling, WASI 0.3 with reused instances: %.2fx (the same with gatewayd'"'"'s reused call without Spin'"'"'s headers, %.2f µs)\n", cores * 1e6 / (w + n + r) / nr, r
}'
