#!/usr/bin/env bash
# Renders docs/dashboard.png: the Grafana dashboard's panels with real data.
#
# Runs `gatewayd serve` (release build) with the whiskers demo (votes over
# HTTP -> MQTT -> tally -> key-value) against a real mosquitto, scraped every
# 2 s by a real Prometheus server, through three minutes of what a board
# sees: a push, steady votes and reads, a push refused for its signature,
# messages the tally handler fails (retried, then dead-lettered), a second
# push, a broker restart, a burst of load. Then render.py runs every panel's
# PromQL against that Prometheus and draws the panels.
#
# Needs: prometheus, mosquitto, mosquitto_pub, wrk, curl, /usr/bin/python3 with
# matplotlib (Debian: apt-get install --no-install-recommends prometheus;
# apt-get install mosquitto mosquitto-clients wrk python3-matplotlib).
#
# Usage: packaging/grafana/render.sh [OUT.png]   (default docs/dashboard.png)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-docs/dashboard.png}
export PATH="$PATH:/usr/sbin"
for tool in prometheus mosquitto mosquitto_pub wrk; do
  command -v "$tool" >/dev/null || { echo "render: $tool is missing (see the header of $0)" >&2; exit 1; }
done

cargo build --release -q -p gatewayd -p gatewayctl
bash examples/build.sh >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port=$(free_port); metrics_port=$(free_port); mqtt_port=$(free_port); prom_port=$(free_port)
now() { date +%s.%N; }
event() { echo "$(now) $1" >>"$work/events"; echo "render: $1"; }
: >"$work/events"

broker() {
  mosquitto -p "$mqtt_port" >"$work/mosquitto.log" 2>&1 &
  broker_pid=$!
  pids+=("$broker_pid")
}
broker

mkdir -m 700 "$work/state"
"$bin/gatewayctl" keygen -o "$work/release" >/dev/null
"$bin/gatewayctl" keygen -o "$work/stranger" >/dev/null
cat >"$work/variables.toml" <<VARS
mqtt_address = "mqtt://127.0.0.1:$mqtt_port"
VARS
cat >"$work/gatewayd.toml" <<CONF
listen = "127.0.0.1:$http_port"
state_dir = "$work/state"
trusted_keys = ["$work/release.pub"]
[admin]
socket = "$work/admin.sock"
[metrics]
listen = "127.0.0.1:$metrics_port"
[app]
variables_file = "$work/variables.toml"
CONF
"$bin/gatewayd" serve --config "$work/gatewayd.toml" >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -S "$work/admin.sock" ] && break; sleep 0.1; done
[ -S "$work/admin.sock" ] || { cat "$work/serve.log" >&2; exit 1; }

cat >"$work/prometheus.yml" <<PROM
global:
  scrape_interval: 2s
scrape_configs:
  - job_name: gatewayd
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
        labels: {instance: "board-1"}
PROM
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)

push() { "$bin/gatewayctl" push bundle "$1" --to "unix://$work/admin.sock" || true; }
for version in 1.0.0 1.1.0; do
  "$bin/gatewayctl" bundle examples/whiskers --key "$work/release.key" --version "$version" -o "$work/v$version.bundle" >/dev/null
done
"$bin/gatewayctl" bundle examples/whiskers --key "$work/stranger.key" --version 1.2.0 -o "$work/stranger.bundle" >/dev/null

# Prometheus must hold samples from before the first push: increase()
# cannot see an event that happened before a series' first sample.
for _ in $(seq 1 150); do
  curl -s "http://127.0.0.1:$prom_port/api/v1/query?query=gatewayd_uptime_seconds" | grep -q '"value"' && break
  sleep 0.2
done
sleep 4 # a few scrapes of an idle gateway
start=$(now)
event "push 1.0.0"
push "$work/v1.0.0.bundle"

# Steady traffic: about 25 votes and 10 reads a second, an unknown animal
# now and then (400).
/usr/bin/python3 - "$http_port" >/dev/null 2>&1 <<'LOAD' &
import random, sys, time, urllib.error, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
while True:
    for _ in range(10):
        animal = random.choice(["cat", "cat", "dog", "rabbit", "chicken", "unicorn"] if random.random() < 0.03 else ["cat", "cat", "dog", "rabbit", "chicken"])
        for request in [urllib.request.Request(f"{base}/vote/{animal}", method="POST")] * random.choice([2, 3]) + [urllib.request.Request(f"{base}/scores")]:
            try:
                urllib.request.urlopen(request, timeout=5).read()
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.08)
LOAD
pids+=($!)

sleep 35
event "push refused (unknown key)"
push "$work/stranger.bundle"
sleep 15
event "tally fails 5 messages"
for _ in 1 2 3 4 5; do mosquitto_pub -p "$mqtt_port" -q 1 -t whiskers/votes/unicorn -n; done
sleep 15
event "push 1.1.0"
push "$work/v1.1.0.bundle"
sleep 25
event "broker down 10 s"
kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
sleep 10
broker
sleep 20
event "wrk burst"
wrk -t1 -c16 -d20s "http://127.0.0.1:$http_port/scores" >/dev/null
sleep 20
end=$(now)
sleep 3 # the last scrape

mkdir -p "$(dirname "$out")"
/usr/bin/python3 packaging/grafana/render.py "http://127.0.0.1:$prom_port" \
  packaging/grafana/gatewayd-dashboard.json "$start" "$end" "$work/events" "$out"
"$bin/gatewayctl" status --to "unix://$work/admin.sock"
curl -s "http://127.0.0.1:$metrics_port/metrics" | grep -E '^gatewayd_(messages|message_retries|updates|code_cache)' | grep -v ' 0$'
