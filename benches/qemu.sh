#!/usr/bin/env bash
# gatewayd on the boards under QEMU next to gatewayd on this machine, in one
# run:
# - start-up to the first response of the probe app (three components) with a
#   cold code cache (compiling on the emulated CPU) and a warm one;
# - requests/s of the hello app (wrk, 4 connections) under QEMU relative to
#   x86_64 native: a sanity ratio, QEMU is not a board;
# - native code vs the Pulley interpreter on the same component and the same
#   emulated CPU: riscv64 with the vector extension (has_v: native code) vs
#   baseline riscv64 (Pulley), on /probe/work/N (CPU and memory work), and the
#   same route on every board and on x86_64.
#
# Usage: benches/qemu.sh [DURATION] [PROFILE]
#   DURATION of each wrk run (default 5s); PROFILE of the board builds:
#   `board` (cross/build.sh, the default) or `qemu` (cross/test.sh's builds).
# Needs: wrk, and what cross/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5s}
profile=${2:-board}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
source benches/lib.sh
work=$(mktemp -d)
pids=()
trap cleanup EXIT

cargo build --release -q -p gatewayd -p gateway-benches
bash examples/build.sh >/dev/null
host=${CARGO_TARGET_DIR:-target}
qemu_for() {
  case "$1" in
    aarch64-*) echo "qemu-aarch64-static -L /usr/aarch64-linux-gnu" ;;
    riscv64*) echo "qemu-riscv64-static -L /usr/riscv64-linux-gnu" ;;
    armv7-*) echo "qemu-arm-static -L /usr/arm-linux-gnueabihf" ;;
  esac
}
boards=(aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
for board in "${boards[@]}"; do
  [ -x "$host/$board/$profile/gatewayd" ] || {
    echo "$host/$board/$profile/gatewayd is missing: run cross/build.sh (or pass qemu after cross/test.sh)" >&2
    exit 1
  }
done

# work_ms URL: median time of 5 requests, in ms.
work_ms() {
  for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "$1"; done |
    sort -n | sed -n 3p | awk '{ printf "%.0f", $1 * 1000 }'
}

rounds=40
printf '%-34s %9s %9s %9s %12s\n' gatewayd cold_ms warm_ms req/s "work/$rounds ms"
# run NAME "GATEWAYD ARGS" COMMAND...: start-up times, p3 hello req/s and
# work time of gatewayd run by COMMAND.
run() {
  local name=$1 extra=$2; shift 2
  local state; state=$(mktemp -d -p "$work")
  # shellcheck disable=SC2206
  local up=(up examples/probe --listen 127.0.0.1:0 --state-dir "$state" --request-timeout 120s $extra)
  local cold warm
  cold=$("$host/release/startup" /probe/ok -- "$@" "${up[@]}" | sed -n 's/.*first_response_ms=\([0-9.]*\).*/\1/p')
  warm=$("$host/release/startup" /probe/ok -- "$@" "${up[@]}" | sed -n 's/.*first_response_ms=\([0-9.]*\).*/\1/p')
  start "$name" "$work/$name.log" "$@" "${up[@]}"
  local rps; read -r rps _ _ <<<"$(measure "$name" "http://$addr/p3/" 4)"
  local ms; ms=$(work_ms "http://$addr/probe/work/$rounds")
  kill "${pids[-1]}"; unset 'pids[-1]'
  result[$name]=$rps
  printf '%-34s %9.0f %9.1f %9s %12s\n' "$name" "$cold" "$warm" "$rps" "$ms"
}
declare -A result
run x86_64-native "" "$host/release/gatewayd"
for board in "${boards[@]}"; do
  # shellcheck disable=SC2046
  run "$board" "" $(qemu_for "$board") "$host/$board/$profile/gatewayd"
done
# shellcheck disable=SC2046
run riscv64+has_v "--cpu-feature has_v" $(qemu_for riscv64) -cpu rv64,v=true \
  "$host/riscv64gc-unknown-linux-gnu/$profile/gatewayd"

echo
for board in "${boards[@]}"; do
  awk -v b="$board" -v q="${result[$board]}" -v n="${result[x86_64-native]}" 'BEGIN {
    printf "%s under QEMU / x86_64 native: %.3fx req/s\n", b, q / n }'
done
