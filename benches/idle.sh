#!/usr/bin/env bash
# Idle memory: the resident set of `gatewayd up` (this machine's release
# build) after it started and answered one request, once after a cold start
# (empty code cache: it compiled the component) and once after a warm one
# (code from the cache), for each app given. The difference is what
# compiling leaves behind; a board that compiles at start-up or on an
# update keeps it for as long as it runs.
#
# Usage: benches/idle.sh [APP...]    (default examples/hello-wstd examples/hello)
#        GATEWAYD=path/to/gatewayd benches/idle.sh    (another build, e.g. an
#        older one to compare with; nothing is built)
# Prints one line per app and start, in MiB: the resident set (VmRSS) and its
# two parts, anonymous memory (RssAnon: heaps, stacks, instance memory; what
# the process really holds) and file pages (RssFile: mostly gatewayd's own
# code as far as it ran, clean pages the kernel drops under memory pressure
# and reads back when needed), and the peak (VmHWM). The last column is the
# part of gatewayd's binary that serving requests touches: the kernel maps
# file pages 64 KiB around each page fault (fault-around), so RssFile counts
# every page near any code that ever ran, start-up included; this clears the
# pages' referenced bits (/proc/PID/clear_refs), serves 20 more requests and
# sums what they referenced of the binary (smaps' Referenced).
set -euo pipefail
cd "$(dirname "$0")/.."
apps=("$@")
[ ${#apps[@]} -gt 0 ] || apps=(examples/hello-wstd examples/hello)
source benches/lib.sh
work=$(mktemp -d)
pids=()
trap cleanup EXIT

if [ -n "${GATEWAYD:-}" ]; then
  gatewayd=$GATEWAYD
else
  cargo build --release -q -p gatewayd -p gatewayctl
  gatewayd=${CARGO_TARGET_DIR:-target}/release/gatewayd
fi
bash examples/build.sh >/dev/null

# rss PID FIELD: a /proc/PID/status field in MiB.
rss() { awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# binary_referenced PID BINARY: MiB of BINARY's mappings referenced since the
# last clear_refs.
binary_referenced() {
  awk -v bin="$(readlink -f "$2")" '
    /^[0-9a-f]+-[0-9a-f]+ / { mine = ($6 == bin) }
    mine && /^Referenced:/ { kb += $2 }
    END { printf "%.1f", kb / 1024 }' "/proc/$1/smaps"
}

printf '%-12s %-5s %9s %9s %9s %9s %12s\n' app start "RSS" "anon" "file" "peak" "code used"
for app in "${apps[@]}"; do
  state="$work/state-$(basename "$app")"
  mkdir -m 700 "$state"
  for start in cold warm; do
    log="$work/$(basename "$app")-$start.log"
    start_pid=${#pids[@]}
    start gatewayd "$log" "$gatewayd" up "$app" --listen 127.0.0.1:0 --state-dir "$state"
    pid=${pids[$start_pid]}
    route=$(grep -o "GET http://$addr/[^ ]*" "$log" | head -n1 | sed "s/^GET //")
    curl -fsS -o /dev/null "${route%...}"
    # Let the serving threads go idle (the epoch ticker stops with no
    # instance alive) before reading.
    sleep 1
    line=$(printf '%-12s %-5s %9s %9s %9s %9s' "$(basename "$app")" "$start" \
      "$(rss "$pid" VmRSS)" "$(rss "$pid" RssAnon)" "$(rss "$pid" RssFile)" "$(rss "$pid" VmHWM)")
    echo 1 >"/proc/$pid/clear_refs"
    for _ in $(seq 20); do curl -fsS -o /dev/null "${route%...}"; done
    printf '%s %12s\n' "$line" "$(binary_referenced "$pid" "$gatewayd")"
    grep -q "executor: compiled" "$log" && [ "$start" = warm ] && { echo "warm start compiled:" >&2; cat "$log" >&2; exit 1; }
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done
