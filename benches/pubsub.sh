#!/usr/bin/env bash
# Pub/sub trigger benchmark: gatewayd running examples/mqtt-triggered (each
# message on sensors/<k>/temp handled by a fresh component instance that
# publishes it back on reply/<topic> at QoS 1) and examples/redis-triggered
# (SDK 7 and SDK 5 components answering on channel `reply`), against native
# Rust echoes doing the same work with the same client crates, all driven by
# the same load (benches/src/bin/pubsub-load) against a mosquitto and a
# redis-server started here on free loopback ports, in one run.
# Prints messages/s, end-to-end latency p50 and p99 (publish -> handled ->
# reply received), lost and duplicated messages, the gateway/native ratios,
# and the gateway's RSS before and after the MQTT runs.
#
# Usage: benches/pubsub.sh [MESSAGES]   (default 5000 per measurement, after
#                                        200 warm-up messages)
# Needs: mosquitto, redis-server, redis-cli. Uses loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5000}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "mosquitto is missing: apt-get install mosquitto" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server" >&2; exit 1; }

cargo build --release -q -p gatewayd -p gateway-benches \
  --bin gatewayd --bin pubsub-load --bin native-mqtt-echo --bin native-redis-echo
bash examples/build.sh >/dev/null
target=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for NAME LOG REGEX: waits (at most 60 s) for a line of LOG matching
# the extended REGEX.
wait_for() {
  for _ in $(seq 1 600); do
    grep -q -E -- "$3" "$2" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 is not ready after 60 s:" >&2; cat "$2" >&2; exit 1
}

# stop PID: SIGTERM, then SIGKILL after 5 s.
stop() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

failed=0
declare -A result
printf '%-30s %6s %9s %8s %8s %5s %4s\n' path window msg/s p50_us p99_us lost dup
# measure KEY LABEL WINDOW pubsub-load ARGS...: one measured run, one table row.
measure() {
  local key=$1 label=$2 window=$3 line rc=0; shift 3
  line=$("$target/pubsub-load" --count "$count" --window "$window" "$@") || rc=$?
  if [ -z "$line" ]; then echo "$label: pubsub-load failed (status $rc)" >&2; exit 1; fi
  [ "$rc" = 0 ] || failed=1
  result[$key]=$line
  read -r rate p50 p99 lost dup <<<"$line"
  [ "$lost$dup" = 00 ] || failed=1
  printf '%-30s %6s %9s %8s %8s %5s %4s\n' "$label" "$window" "$rate" "$p50" "$p99" "$lost" "$dup"
}

# --- servers
mqtt_port=$(free_port)
cat >"$work/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
# Without it the broker's two back-to-back writes to the load generator (the
# PUBACK of its message, then the reply) meet Nagle's algorithm and the
# receiver's delayed ACK: every round trip takes ~44 ms, native or gateway.
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
CONF
"$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null && redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
broker=127.0.0.1:$mqtt_port
redis=redis://127.0.0.1:$redis_port

# --- MQTT: native echo, then the gateway (both answer the same filter, so one at a time)
"$target/native-mqtt-echo" --broker "$broker" >"$work/native-mqtt.log" 2>&1 &
native=$!
pids+=("$native")
wait_for native-mqtt-echo "$work/native-mqtt.log" subscribed
for w in 1 4; do measure "native-mqtt,$w" "native mqtt echo" "$w" mqtt --broker "$broker"; done
stop "$native"

# Twice: the first start compiles the component, so that the RSS figures
# are those of a start with a warm code cache, as on a board after its first boot.
for run in compile measure; do
  RUST_LOG=info "$target/gatewayd" up examples/mqtt-triggered --listen 127.0.0.1:0 \
    --state-dir "$work/state" --variable "broker=mqtt://$broker" >"$work/gatewayd-mqtt.log" 2>&1 &
  gateway=$!
  pids+=("$gateway")
  # A restart finds its session at the broker: no new subscription then.
  wait_for gatewayd "$work/gatewayd-mqtt.log" 'MQTT trigger "sensors".*: (subscribed|resumed its session)'
  [ "$run" = measure ] || stop "$gateway"
done
rss=("$(rss_kib "$gateway")")
for w in 1 4; do
  measure "gatewayd-mqtt,$w" "gatewayd mqtt-trigger" "$w" mqtt --broker "$broker"
  rss+=("$(rss_kib "$gateway")")
done
handled=$(grep -c 'mqtt-trigger: handled' "$work/gatewayd-mqtt.log" || true)
mqtt_problems=$(grep -E -c ' (WARN|ERROR) ' "$work/gatewayd-mqtt.log" || true)
stop "$gateway"

# --- Redis: one channel, so one message at a time
"$target/native-redis-echo" --server "$redis" --channel native >"$work/native-redis.log" 2>&1 &
pids+=($!)
wait_for native-redis-echo "$work/native-redis.log" subscribed
measure "native-redis,1" "native redis echo" 1 redis --server "$redis" --channel native --reply-prefix native:

RUST_LOG=info "$target/gatewayd" up examples/redis-triggered --listen 127.0.0.1:0 \
  --state-dir "$work/state" --variable "redis=$redis" >"$work/gatewayd-redis.log" 2>&1 &
pids+=($!)
wait_for gatewayd "$work/gatewayd-redis.log" 'channel "v7"\): connected'
wait_for gatewayd "$work/gatewayd-redis.log" 'channel "v5"\): connected'
for sdk in v7 v5; do
  measure "gatewayd-redis-$sdk,1" "gatewayd redis-trigger $sdk" 1 redis --server "$redis" --channel "$sdk" --reply-prefix "$sdk:"
done
redis_problems=$(grep -E -c ' (WARN|ERROR) ' "$work/gatewayd-redis.log" || true)

# --- summary
echo
ratio() { # LABEL GATEWAY_KEY NATIVE_KEY
  read -r gr _ g99 _ <<<"${result[$2]}"
  read -r nr _ n99 _ <<<"${result[$3]}"
  awk -v l="$1" -v gr="$gr" -v nr="$nr" -v g99="$g99" -v n99="$n99" 'BEGIN {
    printf "%-32s gatewayd/native: throughput %.2fx, p99 %.2fx\n", l, gr / nr, g99 / n99 }'
}
ratio "mqtt, window 1:" "gatewayd-mqtt,1" "native-mqtt,1"
ratio "mqtt, window 4:" "gatewayd-mqtt,4" "native-mqtt,4"
ratio "redis v7, window 1:" "gatewayd-redis-v7,1" "native-redis,1"
ratio "redis v5, window 1:" "gatewayd-redis-v5,1" "native-redis,1"
echo
echo "gatewayd RSS (mqtt app), KiB: ${rss[0]} after start-up, ${rss[1]} after window 1, ${rss[2]} after window 4 ($((count + 200)) messages each)"
echo "mqtt-trigger component runs: $handled for $((2 * (count + 200))) messages sent"
echo "gateway log lines at WARN or ERROR: mqtt $mqtt_problems, redis $redis_problems"
if [ "$failed" != 0 ]; then
  echo "some messages were lost or duplicated (see the table and the messages above)" >&2
  exit 1
fi
