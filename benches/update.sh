#!/usr/bin/env bash
# Update benchmark: time from `gatewayctl push bundle` to the new version
# serving, and where it goes (upload, verify, unpack, compile, health, switch),
# for an example app on `gatewayd serve` (release build, loopback, this CPU).
# The first push compiles the component; later pushes of the same component
# find its code in the cache, as a version bump that changes only config does.
#
# Usage: benches/update.sh [APP] [PUSHES]   (default examples/hello, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
app=${1:-examples/hello}
pushes=${2:-10}

cargo build --release -q -p gatewayd -p gatewayctl
bash examples/build.sh >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

mkdir -m 700 "$work/state"
"$bin/gatewayctl" keygen -o "$work/release" >/dev/null
cat >"$work/gatewayd.toml" <<CONF
listen = "127.0.0.1:0"
state_dir = "$work/state"
trusted_keys = ["$work/release.pub"]
[admin]
socket = "$work/admin.sock"
CONF
"$bin/gatewayd" serve --config "$work/gatewayd.toml" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -S "$work/admin.sock" ] && break; sleep 0.1; done
[ -S "$work/admin.sock" ] || { cat "$work/serve.log" >&2; exit 1; }

size=0
for i in $(seq 1 "$pushes"); do
  "$bin/gatewayctl" bundle "$app" --key "$work/release.key" --version "1.0.$i" -o "$work/b$i.bundle" >/dev/null
done
size=$(stat -c %s "$work/b1.bundle")
echo "app $app, bundle $size bytes, $pushes pushes"
for i in $(seq 1 "$pushes"); do
  start=$(date +%s%N)
  out=$("$bin/gatewayctl" push bundle "$work/b$i.bundle" --to "unix://$work/admin.sock")
  end=$(date +%s%N)
  echo "push $i: $(( (end - start) / 1000000 )) ms end to end; ${out#applied: }"
done
