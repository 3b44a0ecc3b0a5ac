#!/usr/bin/env bash
# Release binaries of gatewayd and gatewayctl for the boards (profile
# `board`: size-optimised, LTO, stripped, static), with their sizes, and the
# runtime-only gatewayd (no compiler: runs code precompiled with
# `gatewayctl bundle --target`), kept in <triple>/board/runtime-only/.
# packaging/build.sh makes the same builds and packages them.
#
#   cross/build.sh                      # all three boards
#   cross/build.sh aarch64-unknown-linux-gnu
#
# Binaries land in ${CARGO_TARGET_DIR:-target}/<triple>/board/. They are
# static (cross/cargo-config.toml), so the board's libc does not matter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash cross/setup.sh

boards=("$@")
[ ${#boards[@]} -gt 0 ] || boards=(aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")

# The runtime-only gatewayd in a cargo run of its own (built beside
# gatewayctl it would get the compiler gatewayctl needs), copied aside
# because the full build that follows lands at the same path.
cargo --config cross/cargo-config.toml build --profile board -p gatewayd --no-default-features \
  --features oci --bin gatewayd "${boards[@]/#/--target=}"
for board in "${boards[@]}"; do
  mkdir -p "$target_dir/$board/board/runtime-only"
  cp "$target_dir/$board/board/gatewayd" "$target_dir/$board/board/runtime-only/gatewayd"
done
cargo --config cross/cargo-config.toml build --profile board --no-default-features \
  --bin gatewayd --bin gatewayctl "${boards[@]/#/--target=}"

for board in "${boards[@]}"; do
  for bin in gatewayd gatewayctl runtime-only/gatewayd; do
    file="$target_dir/$board/board/$bin"
    linkage=static
    if readelf -l "$file" | grep -q 'program interpreter'; then
      linkage="needs $(readelf --dyn-syms "$file" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
    fi
    printf '%-32s %-22s %6.2f MiB  %s\n' "$board" "$bin" \
      "$(awk -v s="$(stat -c %s "$file")" 'BEGIN { print s / 1048576 }')" "$linkage"
  done
done
