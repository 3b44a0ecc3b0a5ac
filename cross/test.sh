#!/usr/bin/env bash
# The QEMU tests: builds gatewayd for aarch64, riscv64 and armv7 (profile
# `qemu`), runs the daemon's unit tests for aarch64 under QEMU, then the
# end-to-end tests of tests/qemu.rs (module qemu of the e2e test binary), which start the board builds under QEMU
# and drive them from this machine (its gatewayctl, mosquitto and HTTP
# client) over loopback. Needs what cross/setup.sh installs.
#
#   cross/test.sh               # build (if out of date), then test
#   cross/test.sh --build-only  # only the builds (tests/all.sh runs this in
#                               # the background while the x86_64 tests run)
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=false
case "${1:-}" in
  --build-only) build_only=true ;;
  "") ;;
  *) echo "usage: cross/test.sh [--build-only]" >&2; exit 2 ;;
esac
bash cross/setup.sh

boards=(aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
config=(--config cross/cargo-config.toml)
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
took() { echo "cross/test.sh: $1 in $(( $(date +%s) - $2 ))s"; }

# One cargo run for the three boards: host-side build scripts and macros are
# built once, and the two cores stay busy. gatewayctl too: tests/all.sh
# packages these builds (packaging/build.sh --profile qemu). No all-targets feature: a board
# compiles only for itself.
started=$(date +%s)
cargo "${config[@]}" build --profile qemu --no-default-features --bin gatewayd \
  --bin gatewayctl "${boards[@]/#/--target=}"
took "board builds" "$started"

# gatewayd's default features (the compiler), as the board builds above get
# them through gatewayctl: the tests compile components.
unit_tests=(cargo "${config[@]}" test --profile qemu -p gatewayd --lib
  --target aarch64-unknown-linux-gnu)
if $build_only; then
  started=$(date +%s)
  "${unit_tests[@]}" --no-run
  took "aarch64 unit tests' build" "$started"
  exit 0
fi

started=$(date +%s)
"${unit_tests[@]}"
took "unit tests on aarch64 under QEMU" "$started"

started=$(date +%s)
# --workspace, as tests/all.sh runs it, so the host build is the one
# `cargo test --workspace` made (the same features), not a rebuild.
GATEWAYD_BOARD_BUILDS="$target_dir" cargo test --workspace --test e2e -- \
  --ignored --test-threads 2 qemu::
took "end-to-end tests under QEMU" "$started"
