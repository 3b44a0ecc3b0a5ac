#!/usr/bin/env bash
# Which libc the static binaries should carry: gatewayd linked statically
# against glibc (what packaging/build.sh ships, crt-static) and against musl
# (Rust's x86_64-unknown-linux-musl, C parts built with musl-gcc), the same
# release profile, side by side in one run on this machine: requests/s and
# p99 of the hello apps under wrk (a fresh instance per request: allocation
# heavy), peak RSS (VmHWM) after the load, and the binary sizes.
#
# x86_64 natively rather than a board under QEMU: the allocator is the
# difference being measured, and emulation would drown it; of the board
# musl targets only aarch64's standard library is installable here.
#
# Usage: benches/libc.sh [DURATION]     (default 10s per measurement)
# Needs: wrk and musl-tools (apt-get install wrk musl-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v musl-gcc >/dev/null || { echo "musl-gcc is missing: apt-get install musl-tools" >&2; exit 1; }
rustup target add x86_64-unknown-linux-musl >/dev/null
source benches/lib.sh
work=$(mktemp -d)
pids=()
trap cleanup EXIT

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
cargo --config cross/cargo-config.toml build --release -q -p gatewayd \
  --target x86_64-unknown-linux-gnu
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release -q -p gatewayd \
  --target x86_64-unknown-linux-musl
bash examples/build.sh >/dev/null

builds=(glibc musl)
binary_of() {
  case "$1" in
    glibc) echo "$target_dir/x86_64-unknown-linux-gnu/release/gatewayd" ;;
    musl) echo "$target_dir/x86_64-unknown-linux-musl/release/gatewayd" ;;
  esac
}
for build in "${builds[@]}"; do
  if readelf -l "$(binary_of "$build")" | grep -q 'program interpreter'; then
    echo "$(binary_of "$build") is not static" >&2
    exit 1
  fi
done

printf '%-6s %-12s %4s %10s %9s %9s %11s\n' libc app c req/s p50_us p99_us peak_rss_MiB
declare -A rps_of
for app in hello-wstd hello; do
  for build in "${builds[@]}"; do
    start "$build" "$work/$build-$app.log" "$(binary_of "$build")" up "examples/$app" \
      --listen 127.0.0.1:0 --state-dir "$work/state-$build"
    pid=${pids[-1]}
    route=/
    [ "$app" = hello ] && route=/hello
    curl -fsS "http://$addr$route" >/dev/null
    for c in 1 32; do
      read -r rps p50 p99 <<<"$(measure "$build" "http://$addr$route" "$c")"
      rps_of[$build,$app,$c]=$rps
      peak=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
      printf '%-6s %-12s %4s %10s %9s %9s %11s\n' "$build" "$app" "$c" "$rps" "$p50" "$p99" "$peak"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done

echo
for app in hello-wstd hello; do
  for c in 1 32; do
    awk -v app="$app" -v c="$c" -v g="${rps_of[glibc,$app,$c]}" -v m="${rps_of[musl,$app,$c]}" \
      'BEGIN { printf "%-12s c=%-3s musl/glibc throughput %.2fx\n", app, c, m / g }'
  done
done
for build in "${builds[@]}"; do
  stripped="$work/$build.stripped"
  strip -o "$stripped" "$(binary_of "$build")"
  printf '%-6s gatewayd stripped: %.2f MiB\n' "$build" "$(awk -v s="$(stat -c %s "$stripped")" 'BEGIN { print s / 1048576 }')"
done
