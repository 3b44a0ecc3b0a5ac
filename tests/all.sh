#!/usr/bin/env bash
# The whole test suite, as CI runs it: the x86_64 unit and end-to-end tests
# (`cargo test --workspace`), then the QEMU tests (cross/test.sh), then the
# .deb and .ipk packages (packaging/build.sh, tests/packages.rs).
#
# The board builds the QEMU tests need (and packaging/build.sh packages) are
# the longest part. They start first,
# in the background at the lowest CPU priority, and take what CPU the x86_64
# side leaves (its build ends one crate at a time: Cranelift, wasmtime,
# gatewayd). The builds' log is printed only if they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
bash cross/setup.sh
# The Yocto layer: its crates include matches Cargo.lock; oelint-adv finds
# no error.
bash yocto/check.sh

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
mkdir -p "$target_dir"
log="$target_dir/board-builds.log"
# Only this run's packages: CI's build cache outlives runs, and the package
# tests check every package file they find.
rm -rf "$target_dir/packages"
# Job control gives the background builds their own process group, so a
# failure here stops all of them (cargo and its rustc children).
set -m
# packaging/build.sh builds the three boards in one cargo run with the same
# flags and environment as cross/test.sh, so it finds them built. The
# runtime-only flavour (a second build of the wasmtime stack per
# architecture) is packaged for amd64 only, whose binary the package tests
# run: the boards' runtime-only builds differ from it only by target, and
# each would add minutes to the longest part of CI.
nice -n 19 bash -c 'bash cross/test.sh --build-only && bash packaging/build.sh --profile qemu --flavour full \
  && bash packaging/build.sh --profile qemu --flavour runtime amd64' \
  >"$log" 2>&1 &
builds=$!
set +m
trap 'kill -- -"$builds" 2>/dev/null || true' EXIT

started=$(date +%s)
cargo test --workspace
echo "tests/all.sh: x86_64 build and tests in $(( $(date +%s) - started ))s"

started=$(date +%s)
echo "tests/all.sh: waiting for the board builds (log: $log)"
if ! wait "$builds"; then
  cat "$log"
  echo "tests/all.sh: the board builds failed" >&2
  exit 1
fi
trap - EXIT
echo "tests/all.sh: waited $(( $(date +%s) - started ))s for the board builds"
grep -E '^(cross/test.sh|packaging/build.sh):|/packages/' "$log" || true
bash cross/test.sh

# The packages, made from the board builds above (and an amd64 one): their
# contents, lintian, and the amd64 .deb installed, run and purged here.
started=$(date +%s)
GATEWAYD_PACKAGES="$target_dir/packages" cargo test --workspace --test e2e -- \
  --ignored packages::
echo "tests/all.sh: package tests in $(( $(date +%s) - started ))s"
