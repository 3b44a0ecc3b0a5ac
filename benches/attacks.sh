#!/usr/bin/env bash
# Hostile input under load: gatewayd (this machine's release build, with the
# aarch64/riscv64 engine defaults and systemd's default limit of 1024 open
# files) serves an app with HTTP, Redis and MQTT triggers, while
# benches/src/bin/attack.rs runs one attack after another: idle HTTP and
# admin connections, bundle bombs, oversized and unread uploads, Redis and
# MQTT floods, looping and memory-hungry guests. For each it prints the
# daemon's peak resident memory, its most open descriptors, and the latency
# of a probe request sent every 20 ms beside the attack, against the quiet
# baseline measured first. Fails if an attack on the daemon's own resources
# takes it over 64 MiB or half its descriptors, or if a probe goes unanswered.
#
# Each attack gets a fresh gatewayd (state and compiled code kept from the
# first start), so one attack's leftovers do not count against the next.
#
# Usage: benches/attacks.sh [SECONDS] [ATTACK]   (default 10 s each, all attacks)
# Needs: redis-server, mosquitto (in /usr/sbin), python3; root or the same
# user as gatewayd (to reset its peak RSS between attacks).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
only=${2:-}
export PATH=$PATH:/usr/sbin
for tool in redis-server mosquitto python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
source benches/lib.sh
work=$(mktemp -d)
pids=()
trap cleanup EXIT

cargo build --release -q --bin gatewayd --bin gatewayctl --bin attack
bash examples/build.sh >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release
wasm=examples/target/wasm32-wasip2/release

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
mqtt_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmessage_size_limit 0\n' "$mqtt_port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)

# The app: the example components, copied in (sources stay inside a bundle).
mkdir "$work/app"
cp "$wasm/probe.wasm" "$wasm/hello.wasm" "$wasm/redis_trigger_sdk7.wasm" "$wasm/mqtt_trigger.wasm" "$work/app/"
cat >"$work/app/spin.toml" <<'MANIFEST'
spin_manifest_version = 2
[application]
name = "attacked"
[application.trigger.redis]
address = "{{ redis }}"
[application.trigger.mqtt]
address = "{{ broker }}"
username = ""
password = ""
keep_alive_interval = "30"
[variables]
redis = { required = true }
broker = { required = true }
[[trigger.http]]
route = "/probe/..."
component = "probe"
[[trigger.http]]
route = "/hello"
component = "hello"
[[trigger.redis]]
channel = "flood"
component = "redis"
max_attempts = 2
[[trigger.mqtt]]
component = "mqtt"
topic = "flood/+/temp"
qos = "1"
[component.probe]
source = "probe.wasm"
[component.hello]
source = "hello.wasm"
[component.redis]
source = "redis_trigger_sdk7.wasm"
allowed_outbound_hosts = ["redis://127.0.0.1:*"]
variables = { redis_address = "{{ redis }}" }
[component.mqtt]
source = "mqtt_trigger.wasm"
allowed_outbound_hosts = ["mqtt://127.0.0.1:*"]
variables = { reply_address = "{{ broker }}" }
MANIFEST

"$bin/gatewayctl" keygen -o "$work/key" >/dev/null
"$bin/gatewayctl" bundle "$work/app" --key "$work/key.key" --version 1.0.0 -o "$work/app.bundle" >/dev/null
# The bomb: a GNU long-name record declaring 1 GiB (of zeros: 1 MB gzip'd).
python3 - "$work/bomb.bundle" <<'BOMB'
import gzip, sys
size = 1 << 30
header = bytearray(512)
header[0:13] = b"././@LongLink"
header[100:108] = b"0000644\0"
header[124:136] = b"%011o\0" % size
header[156:157] = b"L"
header[257:265] = b"ustar  \0"
header[148:156] = b" " * 8
header[148:156] = b"%06o\0 " % sum(header)
with gzip.open(sys.argv[1], "wb", compresslevel=9) as out:
    out.write(bytes(header))
    zeros = bytes(1 << 20)
    for _ in range(size >> 20):
        out.write(zeros)
BOMB

mkdir -m 700 "$work/state"
cat >"$work/gatewayd.toml" <<CONFIG
listen = "127.0.0.1:0"
state_dir = "$work/state"
trusted_keys = ["$work/key.pub"]
[admin]
socket = "$work/admin.sock"
[limits]
request_timeout = "1s"
max_instance_memory = "32MiB"
$(board_engine)
CONFIG
# One gatewayd per attack, so each starts from the same state: the app
# installed, its code in the cache (as after a board's restart). systemd's
# default soft limit for a service: 1024 open files.
start_gatewayd() {
  (ulimit -n 1024 && SPIN_VARIABLE_REDIS="redis://127.0.0.1:$redis_port" \
    SPIN_VARIABLE_BROKER="mqtt://127.0.0.1:$mqtt_port" \
    exec "$bin/gatewayd" serve --config "$work/gatewayd.toml") >"$work/gatewayd.log" 2>&1 &
  gatewayd=$!
  pids+=($gatewayd)
  for _ in $(seq 1 100); do grep -q "serving on" "$work/gatewayd.log" && break; sleep 0.1; done
  addr=$(grep -o 'http://[0-9.:]*' "$work/gatewayd.log" | head -n1 | sed 's#http://##')
}
stop_gatewayd() { kill "$gatewayd"; wait "$gatewayd" 2>/dev/null || true; }

start_gatewayd
"$bin/gatewayctl" push bundle "$work/app.bundle" --to "unix://$work/admin.sock" >/dev/null
stop_gatewayd

ulimit -n 8192 # the attacker's own connections
header=""
failed=()
for attack in $("$bin/attack" --list); do
  [ -z "$only" ] || [ "$attack" = "$only" ] || continue
  start_gatewayd
  "$bin/attack" --pid "$gatewayd" --http "$addr" --admin "$work/admin.sock" \
    --redis "redis://127.0.0.1:$redis_port" --mqtt "127.0.0.1:$mqtt_port" \
    --bomb "$work/bomb.bundle" --seconds "$seconds" --only "$attack" $header || failed+=("$attack")
  header=--no-header
  kill -0 "$gatewayd" || { echo "gatewayd died during $attack:" >&2; tail -n 40 "$work/gatewayd.log" >&2; exit 1; }
  stop_gatewayd
done
[ ${#failed[@]} -eq 0 ] || { echo "bounds not kept under: ${failed[*]}" >&2; exit 1; }
