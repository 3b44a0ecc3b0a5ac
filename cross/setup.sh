#!/usr/bin/env bash
# Installs what building for the boards and testing under QEMU needs on an
# x86_64 Debian host: the Rust targets, Debian's cross compilers (linkers and
# sysroots), lld (armv7 links with it) and qemu-user-static, and the boards'
# linker (cross/linker). Safe to run again; installs only what is missing.
set -euo pipefail

rustup target add aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu \
  armv7-unknown-linux-gnueabihf >/dev/null

missing=()
for tool in aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu \
            riscv64-linux-gnu-gcc:gcc-riscv64-linux-gnu \
            arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf \
            qemu-aarch64-static:qemu-user-static \
            ld.lld:lld; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The linker of every target in cross/cargo-config.toml (cross/linker),
# installed at one path for every clone: cargo passes the linker to each
# rustc it runs for the target, so a path inside the clone made every clone
# rebuild all board crates in CI's shared build cache.
linker=/usr/local/bin/gatewayd-board-linker
if ! cmp -s "$(dirname "$0")/linker" "$linker"; then
  $sudo install -m 0755 "$(dirname "$0")/linker" "$linker"
fi
