#!/usr/bin/env bash
# Builds gatewayd's packages, a .deb (Debian, Ubuntu, Raspberry Pi OS:
# systemd) and an .ipk (OpenWrt's opkg: procd) per architecture and flavour,
# from static builds of gatewayd and gatewayctl. Two flavours:
#   gatewayd          compiles components on the board (Cranelift inside);
#   gatewayd-runtime  runtime only: no compiler, much smaller, runs only
#                     bundles with code precompiled for the board
#                     (`gatewayctl bundle --target`). It conflicts with and
#                     replaces gatewayd: same files, same service.
#
#   bash packaging/build.sh                   # amd64 arm64 riscv64 armhf, both
#   bash packaging/build.sh arm64 armhf       # some of them
#   bash packaging/build.sh --flavour runtime arm64
#   bash packaging/build.sh --profile qemu    # package CI's quicker builds
#
# Writes ${CARGO_TARGET_DIR:-target}/packages/<package>_<version>_<arch>.deb
# and .ipk and prints each with its size. The binaries are static (glibc's
# crt-static, set in cross/cargo-config.toml): one build runs on any Debian
# release, on board images whose glibc is older than a dynamic build needs,
# and on musl systems such as OpenWrt. Archives are reproducible: owners,
# order and times are fixed (SOURCE_DATE_EPOCH, the last commit's time).
#
# .ipk Architecture names are OpenWrt's generic ones for each CPU family;
# opkg installs only names listed in the board's opkg.conf, so set
# IPK_ARCH_<arch> (e.g. IPK_ARCH_arm64=aarch64_cortex-a53) to match a feed.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

profile=board
flavours=(full runtime)
arches=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile)
      [ $# -ge 2 ] || { echo "packaging/build.sh: --profile needs a cargo profile name" >&2; exit 2; }
      profile=$2
      shift 2
      ;;
    --flavour)
      case "${2:-}" in
        full | runtime) flavours=("$2") ;;
        both) flavours=(full runtime) ;;
        *) echo "packaging/build.sh: --flavour takes full, runtime or both" >&2; exit 2 ;;
      esac
      shift 2
      ;;
    -h | --help) usage; exit 0 ;;
    amd64 | arm64 | riscv64 | armhf) arches+=("$1"); shift ;;
    *)
      echo "packaging/build.sh: unknown architecture or option '$1' (architectures: amd64 arm64 riscv64 armhf)" >&2
      exit 2
      ;;
  esac
done
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64 riscv64 armhf)

triple_of() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-gnu ;;
    arm64) echo aarch64-unknown-linux-gnu ;;
    riscv64) echo riscv64gc-unknown-linux-gnu ;;
    armhf) echo armv7-unknown-linux-gnueabihf ;;
  esac
}
ipk_arch_of() {
  case "$1" in
    amd64) echo "${IPK_ARCH_amd64:-x86_64}" ;;
    arm64) echo "${IPK_ARCH_arm64:-aarch64_generic}" ;;
    riscv64) echo "${IPK_ARCH_riscv64:-riscv64_riscv64}" ;;
    armhf) echo "${IPK_ARCH_armhf:-arm_cortex-a7_neon-vfpv4}" ;;
  esac
}
# How to run a binary of ARCH on this x86_64 machine (for its man pages).
runner_of() {
  case "$1" in
    amd64) ;;
    arm64) echo qemu-aarch64-static ;;
    riscv64) echo qemu-riscv64-static ;;
    armhf) echo qemu-arm-static ;;
  esac
}

# The binutils that strip ARCH's binaries (from the cross gcc packages).
strip_of() {
  case "$1" in
    amd64) echo strip ;;
    arm64) echo aarch64-linux-gnu-strip ;;
    riscv64) echo riscv64-linux-gnu-strip ;;
    armhf) echo arm-linux-gnueabihf-strip ;;
  esac
}

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
changelog_version=$(sed -n '1s/^gatewayd (\([^)]*\)).*/\1/p' packaging/deb/changelog)
if [ "$version" != "$changelog_version" ]; then
  echo "packaging/build.sh: Cargo.toml's version is $version but the newest entry of packaging/deb/changelog is $changelog_version: add an entry for $version" >&2
  exit 1
fi
maintainer=$(sed -n 's/^ -- \(.*>\)  .*/\1/p' packaging/deb/changelog | head -1)

bash cross/setup.sh
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
profile_dir=$profile
[ "$profile" != dev ] || profile_dir=debug
out="$target_dir/packages"
mkdir -p "$out"

bins_of() { echo "$target_dir/$(triple_of "$1")/$profile_dir"; }
# Where the runtime-only gatewayd of ARCH is kept: cargo puts both flavours
# at the same path, so it is copied aside before the full build.
runtime_bins_of() { echo "$(bins_of "$1")/runtime-only"; }

# The boards in one cargo run, exactly as cross/test.sh builds them (same
# targets, flags and environment, so CI builds them once), and amd64 in its
# own. The runtime-only gatewayd first, in cargo runs of its own (built with
# gatewayctl, it would get the compiler gatewayctl needs); then the full
# build, which also makes the gatewayctl both flavours ship, so that the
# usual path holds the full gatewayd afterwards, as cross/test.sh expects.
boards=()
host=()
for arch in "${arches[@]}"; do
  if [ "$arch" = amd64 ]; then host+=("--target=$(triple_of "$arch")"); else boards+=("--target=$(triple_of "$arch")"); fi
done
started=$(date +%s)
if [[ " ${flavours[*]} " == *" runtime "* ]]; then
  for targets in "${boards[*]}" "${host[*]}"; do
    [ -n "$targets" ] || continue
    # shellcheck disable=SC2086 # one word per target
    cargo --config cross/cargo-config.toml build --profile "$profile" -p gatewayd \
      --no-default-features --features oci --bin gatewayd $targets
  done
  for arch in "${arches[@]}"; do
    mkdir -p "$(runtime_bins_of "$arch")"
    cp "$(bins_of "$arch")/gatewayd" "$(runtime_bins_of "$arch")/gatewayd"
  done
fi
for targets in "${boards[*]}" "${host[*]}"; do
  [ -n "$targets" ] || continue
  # shellcheck disable=SC2086 # one word per target
  cargo --config cross/cargo-config.toml build --profile "$profile" --no-default-features \
    --bin gatewayd --bin gatewayctl $targets
done
echo "packaging/build.sh: binaries built in $(($(date +%s) - started))s"
# Set only now: the cc crate makes C code (ring, SQLite) rebuild when
# SOURCE_DATE_EPOCH changes, and with it everything above it, so setting it
# before cargo rebuilt the boards cross/test.sh had just built.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A gzip'd tar of DIR's contents with fixed owners, order and times.
archive() {
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    --format=gnu -C "$2" -cf - . | gzip -9n >"$1"
}

# The binary BIN of ARCH in FLAVOUR's package.
binary_of() {
  if [ "$2" = gatewayd ] && [ "$3" = runtime ]; then
    echo "$(runtime_bins_of "$1")/gatewayd"
  else
    echo "$(bins_of "$1")/$2"
  fi
}
package_of() { if [ "$1" = runtime ]; then echo gatewayd-runtime; else echo gatewayd; fi; }
# The package a FLAVOUR's package conflicts with and replaces.
other_of() { if [ "$1" = runtime ]; then echo gatewayd; else echo gatewayd-runtime; fi; }

# Refuses a dynamically linked binary: the packages promise static ones.
for arch in "${arches[@]}"; do
  for flavour in "${flavours[@]}"; do
    for bin in gatewayd gatewayctl; do
      if readelf -l "$(binary_of "$arch" "$bin" "$flavour")" | grep -q 'program interpreter'; then
        echo "packaging/build.sh: $(binary_of "$arch" "$bin" "$flavour") is dynamically linked; cross/cargo-config.toml should make it static (crt-static)" >&2
        exit 1
      fi
    done
  done
done

# Man pages, from the first architecture's binaries (the same on all).
first=${arches[0]}
for bin in gatewayd gatewayctl; do
  $(runner_of "$first") "$(bins_of "$first")/$bin" manpages "$work/man"
done
for page in "$work"/man/*.1; do gzip -9n "$page"; done
# Shell completions for gatewayctl, likewise.
for shell in bash zsh fish; do
  $(runner_of "$first") "$(bins_of "$first")/gatewayctl" completions "$shell" >"$work/gatewayctl.$shell"
done

# gatewayd and gatewayctl of ARCH and FLAVOUR into ROOT/usr/bin, stripped
# (the board profile strips already; the test profiles keep symbols).
install_binaries() {
  local arch=$1 flavour=$2 root=$3 bin
  for bin in gatewayd gatewayctl; do
    install -D -m 0755 "$(binary_of "$arch" "$bin" "$flavour")" "$root/usr/bin/$bin"
    "$(strip_of "$arch")" --strip-unneeded --remove-section=.comment "$root/usr/bin/$bin"
  done
}

# What ends the first line of FLAVOUR's description.
synopsis_of() { if [ "$1" = runtime ]; then echo " (runtime only)"; fi; }
ipk_note_of() {
  if [ "$1" = runtime ]; then
    echo " Runtime only: runs bundles with code precompiled for the board."
  fi
}
# The last paragraph of FLAVOUR's .deb description.
flavour_note() {
  if [ "$1" = runtime ]; then
    printf '%s\n' ' .' \
      ' This is the runtime-only build: without the Cranelift compiler it is' \
      ' much smaller, and it runs only bundles that carry code precompiled for' \
      ' this board (gatewayctl bundle --target); it refuses others and says' \
      ' why. The gatewayd package compiles on the board instead.'
  fi
}

deb() {
  local arch=$1 flavour=$2 package
  package=$(package_of "$flavour")
  local root="$work/deb-$arch-$flavour"
  install_binaries "$arch" "$flavour" "$root"
  install -D -m 0644 packaging/gatewayd.service "$root/usr/lib/systemd/system/gatewayd.service"
  install -D -m 0644 packaging/gatewayd.socket "$root/usr/lib/systemd/system/gatewayd.socket"
  install -D -m 0644 packaging/gatewayd.toml "$root/etc/gatewayd/gatewayd.toml"
  install -d -m 0755 "$root/usr/share/man/man1"
  install -m 0644 "$work"/man/*.1.gz "$root/usr/share/man/man1/"
  install -D -m 0644 "$work/gatewayctl.bash" "$root/usr/share/bash-completion/completions/gatewayctl"
  install -D -m 0644 "$work/gatewayctl.zsh" "$root/usr/share/zsh/vendor-completions/_gatewayctl"
  install -D -m 0644 "$work/gatewayctl.fish" "$root/usr/share/fish/vendor_completions.d/gatewayctl.fish"
  install -D -m 0644 packaging/deb/copyright "$root/usr/share/doc/$package/copyright"
  sed "1s/^gatewayd /$package /" packaging/deb/changelog | gzip -9n >"$root/usr/share/doc/$package/changelog.gz"
  chmod 0644 "$root/usr/share/doc/$package/changelog.gz"
  sed "s/^gatewayd: /$package: /" packaging/deb/lintian-overrides >"$work/lintian-overrides"
  install -D -m 0644 "$work/lintian-overrides" "$root/usr/share/lintian/overrides/$package"

  install -d -m 0755 "$root/DEBIAN"
  install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
  echo /etc/gatewayd/gatewayd.toml >"$root/DEBIAN/conffiles"
  (cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
  local size
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  cat >"$root/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: adduser
Conflicts: $(other_of "$flavour")
Replaces: $(other_of "$flavour")
Section: net
Priority: optional
Description: WebAssembly edge gateway: runs Spin apps on small Linux boards$(synopsis_of "$flavour")
 gatewayd runs WebAssembly components (the component model, WASI 0.2 and
 0.3) as isolated microservices, from Spin apps (spin.toml): HTTP routes,
 Redis channels and MQTT topics, each event in a fresh instance with memory
 and CPU-time limits. Apps arrive as signed bundles pushed with gatewayctl
 and switch atomically after a health check, with rollback.
 .
 This package runs gatewayd as a hardened systemd service (user gatewayd,
 state in /var/lib/gatewayd, admin socket /run/gatewayd/admin.sock).
EOF
  flavour_note "$flavour" >>"$root/DEBIAN/control"
  chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
  dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${package}_${version}_$arch.deb" >/dev/null
}

ipk() {
  local arch=$1 flavour=$2 package
  package=$(package_of "$flavour")
  local dir="$work/ipk-$arch-$flavour"
  local root="$dir/data" control="$dir/control"
  install_binaries "$arch" "$flavour" "$root"
  install -D -m 0755 packaging/gatewayd.init "$root/etc/init.d/gatewayd"
  # OpenWrt keeps /var in RAM: state on flash in /opt, the socket in /var/run.
  install -d -m 0755 "$root/etc/gatewayd"
  sed -e 's|^state_dir = "/var/lib/gatewayd"|state_dir = "/opt/gatewayd"|' \
    -e 's|^socket = "/run/gatewayd/admin.sock"|socket = "/var/run/gatewayd/admin.sock"|' \
    packaging/gatewayd.toml >"$root/etc/gatewayd/gatewayd.toml"
  chmod 0644 "$root/etc/gatewayd/gatewayd.toml"

  install -d -m 0755 "$control"
  install -m 0755 packaging/ipk/postinst packaging/ipk/prerm "$control/"
  echo /etc/gatewayd/gatewayd.toml >"$control/conffiles"
  # OpenWrt's feeds count Installed-Size in bytes.
  local size
  size=$(du -sb "$root" | cut -f1)
  cat >"$control/control" <<EOF
Package: $package
Version: $version
Architecture: $(ipk_arch_of "$arch")
Maintainer: $maintainer
Installed-Size: $size
Conflicts: $(other_of "$flavour")
Section: net
License: Apache-2.0
Description: WebAssembly edge gateway: runs Spin apps (HTTP, Redis, MQTT
 triggers; signed bundle updates) under procd. Static binaries.$(ipk_note_of "$flavour")
EOF
  chmod 0644 "$control/control" "$control/conffiles"
  printf '2.0\n' >"$dir/debian-binary"
  archive "$dir/control.tar.gz" "$control"
  archive "$dir/data.tar.gz" "$root"
  local file="$out/${package}_${version}_$arch.ipk"
  rm -f "$file"
  (cd "$dir" && ar rcD "$file" debian-binary control.tar.gz data.tar.gz)
}

mib() { awk -v s="$(stat -c %s "$1")" 'BEGIN { printf "%.2f MiB", s / 1048576 }'; }
for arch in "${arches[@]}"; do
  for flavour in "${flavours[@]}"; do
    deb "$arch" "$flavour"
    ipk "$arch" "$flavour"
    package=$(package_of "$flavour")
    for file in "$out/${package}_${version}_$arch".{deb,ipk}; do
      echo "$file  $(mib "$file")  (gatewayd $(mib "$work/deb-$arch-$flavour/usr/bin/gatewayd") stripped)"
    done
  done
done
