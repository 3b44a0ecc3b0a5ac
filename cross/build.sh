#!/usr/bin/env bash
# Release binaries of gatewayd and gatewayctl for the boards (profile
# `board`: size-optimised, LTO, stripped), with their sizes and the newest
# glibc symbol version they need.
#
#   cross/build.sh                      # all three boards
#   cross/build.sh aarch64-unknown-linux-gnu
#
# Binaries land in ${CARGO_TARGET_DIR:-target}/<triple>/board/. Debian 12's
# cross sysroots make them need glibc 2.34 or newer; for older board images
# build with cargo-zigbuild and a versioned target (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash cross/setup.sh

boards=("$@")
[ ${#boards[@]} -gt 0 ] || boards=(aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")

cargo --config cross/cargo-config.toml build --profile board --no-default-features \
  --bin gatewayd --bin gatewayctl "${boards[@]/#/--target=}"

for board in "${boards[@]}"; do
  case "$board" in
    aarch64-*) objdump=aarch64-linux-gnu-objdump ;;
    riscv64*) objdump=riscv64-linux-gnu-objdump ;;
    armv7-*) objdump=arm-linux-gnueabihf-objdump ;;
    *) objdump=objdump ;;
  esac
  for bin in gatewayd gatewayctl; do
    file="$target_dir/$board/board/$bin"
    glibc=$("$objdump" -T "$file" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    printf '%-32s %-10s %6.2f MiB  needs %s\n' "$board" "$bin" \
      "$(awk -v s="$(stat -c %s "$file")" 'BEGIN { print s / 1048576 }')" "$glibc"
  done
done
