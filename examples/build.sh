#!/usr/bin/env bash
# Builds every Rust example component for wasm32-wasip2 and checks that each
# expected .wasm exists and has the export the gateway calls (a wasi:http
# handler, a Redis inbound interface or the MQTT trigger's root function).
# Idempotent: cargo skips up-to-date crates, so a second run takes a second.
# Set CARGO_BUILD_JOBS to limit parallelism (e.g. 1 while something else builds).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# The spin.toml files point at examples/target, so a CARGO_TARGET_DIR set for
# the main workspace (e.g. a CI cache) must not redirect these builds.
export CARGO_TARGET_DIR="$here/target"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

cargo build --release --target wasm32-wasip2 --locked

out="$here/target/wasm32-wasip2/release"
# crate name -> the export the gateway calls
expected=(
    "hello wasi:http/handler@0.3"
    "hello_sdk5 wasi:http/incoming-handler@0.2"
    "hello_wstd wasi:http/incoming-handler@0.2"
    "kv_sdk5 wasi:http/incoming-handler@0.2"
    "kv_sdk7 wasi:http/handler@0.3"
    "mqtt_sdk5 wasi:http/incoming-handler@0.2"
    "mqtt_sdk7 wasi:http/handler@0.3"
    "mqtt_trigger handle-message"
    "probe wasi:http/incoming-handler@0.2"
    "redis_sdk5 wasi:http/incoming-handler@0.2"
    "redis_sdk7 wasi:http/handler@0.3"
    "redis_trigger_sdk5 fermyon:spin/inbound-redis"
    "redis_trigger_sdk7 spin:redis/inbound-redis@3.0.0"
    "vars_sdk5 wasi:http/incoming-handler@0.2"
    "vars_sdk7 wasi:http/handler@0.3"
    "whiskers_scores wasi:http/handler@0.3"
    "whiskers_tally handle-message"
    "whiskers_vote wasi:http/handler@0.3"
)
status=0
for entry in "${expected[@]}"; do
    read -r name export <<<"$entry"
    wasm="$out/$name.wasm"
    if [[ ! -s "$wasm" ]]; then
        echo "build.sh: missing $wasm" >&2
        status=1
        continue
    fi
    # Prefer a real component parser; the string search is a fallback that still
    # catches a crate built as a plain module or for the wrong world.
    if command -v wasm-tools >/dev/null; then
        found=$(wasm-tools component wit "$wasm" | grep -c "export $export" || true)
    else
        found=$(grep -ac "$export" "$wasm" || true)
    fi
    if [[ "$found" -eq 0 ]]; then
        echo "build.sh: $wasm does not export $export" >&2
        status=1
    else
        echo "ok $name.wasm ($(stat -c %s "$wasm") bytes, exports $export)"
    fi
done
exit "$status"
