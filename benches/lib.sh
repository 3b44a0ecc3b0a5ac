# Shared by the benchmark scripts (sourced). They set `work` (a temporary
# folder), `pids` (servers to stop), and `duration` (of each wrk run).

cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }

# start NAME LOGFILE COMMAND...: starts a server, waits for "http://ADDR" in its
# output (bounded), and sets $addr.
start() {
  local name=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do
    addr=$(grep -o 'http://[0-9.:]*' "$log" | head -n1 | sed 's#http://##') || true
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$log" >&2; exit 1
}

# measure NAME URL CONCURRENCY: one wrk run; prints "rps p50_us p99_us".
measure() {
  local out
  out=$(wrk -t1 -c"$3" -d"$duration" --latency "$2")
  local rps p50 p99
  rps=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
  if [ -z "$rps" ] || grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    echo "measure: bad run against $2:" >&2; echo "$out" >&2; exit 1
  fi
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$rps $(to_us "$p50") $(to_us "$p99")"
}

to_us() { # wrk prints 1.23ms / 456.00us / 1.2s
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 }
    else print v }'
}


# The [engine] table of the aarch64 and riscv64 defaults (see
# packaging/gatewayd.toml), for a config that sizes memory as a board does.
board_engine() {
  cat <<'ENGINE'
[engine]
# The aarch64 and riscv64 defaults (see packaging/gatewayd.toml).
memory_reservation = "128MiB"
memory_guard_size = "64KiB"
memory_reservation_for_growth = "32MiB"
warm_slots = 16
ENGINE
}
