#!/usr/bin/env bash
# The whole test suite, as CI runs it: the x86_64 unit and end-to-end tests
# (`cargo test --workspace`), then the QEMU tests (cross/test.sh).
#
# The board builds the QEMU tests need are the longest part. They start first,
# in the background at the lowest CPU priority, and take what CPU the x86_64
# side leaves (its build ends one crate at a time: Cranelift, wasmtime,
# gatewayd). The builds' log is printed only if they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
bash cross/setup.sh

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
mkdir -p "$target_dir"
log="$target_dir/board-builds.log"
# Job control gives the background builds their own process group, so a
# failure here stops all of them (cargo and its rustc children).
set -m
nice -n 19 bash cross/test.sh --build-only >"$log" 2>&1 &
builds=$!
set +m
trap 'kill -- -"$builds" 2>/dev/null || true' EXIT

cargo test --workspace

echo "tests/all.sh: waiting for the board builds (log: $log)"
if ! wait "$builds"; then
  cat "$log"
  echo "tests/all.sh: the board builds failed" >&2
  exit 1
fi
trap - EXIT
grep '^cross/test.sh:' "$log" || true
bash cross/test.sh
