#!/usr/bin/env bash
# Compile benchmark: what the function cache (`--function-cache-size`,
# Cranelift's incremental cache) saves, against the same build with it off,
# in one run, on this machine's release build.
#
# Two steps per round, each on a fresh state dir, with the cache off and on:
#   cold    `gatewayd up examples/probe`: an empty code cache, so its three
#           components (probe: wstd, WASI 0.2; hello-sdk5; hello: SDK 7,
#           WASI 0.3) are compiled; with the cache, each finds the functions
#           the ones before it share with it.
#   update  the same state dir, the app with its probe component changed as
#           a developer changes it (one more route in the handler, rebuilt
#           with the examples' release profile): only that component is
#           compiled again, and with the cache its unchanged functions come
#           from it.
# Prints the compile time of each step (the sum of the "compiled ... in"
# lines), the functions reused, and the cache file's size; then the median
# per step and the ratio on/off.
#
# Usage: benches/compile.sh [ROUNDS]   (default 5)
#        GATEWAYD=path/to/gatewayd benches/compile.sh   (nothing is built)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
source benches/lib.sh
work=$(mktemp -d)
pids=()
trap cleanup EXIT

if [ -n "${GATEWAYD:-}" ]; then
  gatewayd=$GATEWAYD
else
  cargo build --release -q -p gatewayd
  gatewayd=${CARGO_TARGET_DIR:-target}/release/gatewayd
fi
bash examples/build.sh >/dev/null
examples=$PWD/examples

# The changed probe: a copy of its crate with one more route, built with the
# examples' lockfile and release profile, in a target dir of its own that is
# kept between runs (the first run builds its dependencies).
variant_src=${CARGO_TARGET_DIR:-$PWD/target}/bench-compile-variant
mkdir -p "$variant_src"
rm -rf "$variant_src/src"
cp -r examples/probe/src examples/probe/Cargo.toml "$variant_src/"
cp examples/Cargo.lock "$variant_src/"
sed -n '/^\[profile.release\]/,$p' examples/Cargo.toml >>"$variant_src/Cargo.toml"
printf '\n[workspace]\n' >>"$variant_src/Cargo.toml"
python3 - "$variant_src/src/lib.rs" <<'EDIT'
import sys
path = sys.argv[1]
source = open(path).read()
anchor = '    if path == "/headers" {'
assert anchor in source, "the probe's handler changed: update the edit"
route = '''    if path == "/header-count" {
        let count = request.headers().len();
        return text(StatusCode::OK, format!("{count} headers\\n"));
    }
'''
open(path, "w").write(source.replace(anchor, route + anchor, 1))
EDIT
CARGO_TARGET_DIR="$variant_src/target" cargo build -q --release --target wasm32-wasip2 \
  --manifest-path "$variant_src/Cargo.toml"
variant_wasm="$variant_src/target/wasm32-wasip2/release/probe.wasm"
original_wasm="$examples/target/wasm32-wasip2/release/probe.wasm"
cmp -s "$variant_wasm" "$original_wasm" && { echo "the changed probe is the same wasm" >&2; exit 1; }

# The probe app with absolute sources, and the same with the changed probe.
mkdir -p "$work/app" "$work/changed"
for app in app changed; do
  cp -r examples/probe/assets "$work/$app/"
  sed "s#\"\.\./target/#\"$examples/target/#" examples/probe/spin.toml >"$work/$app/spin.toml"
done
sed -i "s#\"$original_wasm\"#\"$variant_wasm\"#" "$work/changed/spin.toml"
grep -q "$variant_wasm" "$work/changed/spin.toml" || { echo "no probe source to replace" >&2; exit 1; }

# run MODE STATE APP: starts gatewayd up, waits until it serves, stops it;
# prints "compile_ms reused functions" from its log.
run() {
  local size=0 log="$work/$1-$RANDOM.log"
  [ "$1" = on ] && size=64MiB
  local before=${#pids[@]}
  start gatewayd "$log" "$gatewayd" up "$3" --listen 127.0.0.1:0 --state-dir "$2" \
    --function-cache-size "$size"
  local pid=${pids[$before]}
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  grep "executor: compiled" "$log" | awk '
    {
      if (match($0, / in [0-9.]+(ms|s|µs)/)) {
        t = substr($0, RSTART + 4, RLENGTH - 4)
        if (t ~ /ms$/) ms += t + 0; else if (t ~ /µs$/) ms += (t + 0) / 1000; else ms += (t + 0) * 1000
      }
      if (match($0, /reusing [0-9]+ of its [0-9]+/)) {
        split(substr($0, RSTART, RLENGTH), w, " "); reused += w[2]; total += w[5]
      }
      n++
    }
    END { if (n == 0) exit 1; printf "%.1f %d %d\n", ms, reused, total }'
}

printf '%-5s %-4s %-7s %11s %16s %12s\n' round mode step compile_ms "functions reused" "cache KiB"
declare -A times
for r in $(seq 1 "$rounds"); do
  for mode in off on; do
    state="$work/state-$mode-$r"
    mkdir -m 700 "$state"
    for step in cold update; do
      app="$work/app"
      [ "$step" = update ] && app="$work/changed"
      read -r ms reused total <<<"$(run "$mode" "$state" "$app")"
      kib=0
      [ -f "$state/cache/functions.sqlite" ] && kib=$(( $(stat -c %s "$state/cache/functions.sqlite") / 1024 ))
      printf '%-5s %-4s %-7s %11s %16s %12s\n' "$r" "$mode" "$step" "$ms" "$reused/$total" "$kib"
      times[$mode-$step]+="$ms "
    done
  done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
for step in cold update; do
  off=$(median <<<"${times[off-$step]}")
  on=$(median <<<"${times[on-$step]}")
  awk -v s="$step" -v off="$off" -v on="$on" \
    'BEGIN { printf "%-7s median compile: %8.1f ms without the function cache, %8.1f ms with it: %.2fx\n", s, off, on, on / off }'
done
