#!/usr/bin/env bash
# Memory on a small board: gatewayd (this machine's release build) with the
# aarch64/riscv64 engine defaults, in a memory cgroup limited to 256 MiB (v1 or v2;
# needs root), serving the hello app under wrk load. Prints the peak memory
# the cgroup saw (resident memory plus the page cache it caused), after
# start-up and after each load, and fails if a request failed. A board's
# binary differs, but what grows with load (instances, pool slots, buffers) is
# sized by these same settings; under QEMU, QEMU's own memory would swamp the
# figure.
#
# Usage: benches/memory.sh [DURATION] [LIMIT]    (default 10s, 256M)
# Needs: wrk, root, a writable memory cgroup.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
limit=${2:-256M}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
source benches/lib.sh
work=$(mktemp -d)
pids=()
group=""
cleanup_all() { cleanup; [ -z "$group" ] || rmdir "$group" 2>/dev/null || true; }
trap cleanup_all EXIT

cargo build --release -q -p gatewayd -p gatewayctl
bash examples/build.sh >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release

if [ -d /sys/fs/cgroup/memory ]; then      # cgroup v1
  group=/sys/fs/cgroup/memory/gatewayd-bench-$$
  mkdir "$group"; echo "$limit" > "$group/memory.limit_in_bytes"
  peak_file=memory.max_usage_in_bytes
else                                       # cgroup v2
  group=/sys/fs/cgroup/gatewayd-bench-$$
  mkdir "$group"; echo "$limit" > "$group/memory.max"
  peak_file=memory.peak
fi

"$bin/gatewayctl" keygen -o "$work/key" >/dev/null
"$bin/gatewayctl" bundle examples/hello --key "$work/key.key" --version 1.0.0 -o "$work/hello.bundle" >/dev/null
mkdir -m 700 "$work/state"
cat > "$work/gatewayd.toml" <<CONFIG
listen = "127.0.0.1:0"
state_dir = "$work/state"
trusted_keys = ["$work/key.pub"]
[admin]
socket = "$work/admin.sock"
$(board_engine)
CONFIG

# Start gatewayd inside the cgroup (the shell joins it, then execs).
sh -c "echo \$\$ > $group/cgroup.procs; exec $bin/gatewayd serve --config $work/gatewayd.toml" >"$work/gatewayd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "serving on" "$work/gatewayd.log" && break; sleep 0.1; done
addr=$(grep -o 'http://[0-9.:]*' "$work/gatewayd.log" | head -n1 | sed 's#http://##')
"$bin/gatewayctl" push bundle "$work/hello.bundle" --to "unix://$work/admin.sock" >/dev/null
mib() { awk -v b="$(cat "$group/$1")" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "limit $limit; after start-up and the first push (compiling): peak $(mib "$peak_file")"
for c in 1 16 64; do
  read -r rps _ _ <<<"$(measure gatewayd "http://$addr/hello" "$c")"
  echo "wrk c=$c: $rps req/s, no failed request; peak so far $(mib "$peak_file")"
done
grep -q "out of memory\|Killed" "$work/gatewayd.log" && { echo "gatewayd ran out of memory" >&2; exit 1; }
kill -0 "${pids[0]}" && echo "gatewayd still running"
