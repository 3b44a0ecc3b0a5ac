#!/usr/bin/env bash
# Writes cross/startup-functions.txt: the functions gatewayd runs to start and
# answer its first requests, which cross/linker places together at the front
# of the board builds' code (see that file for why). Run it after changes
# that move start-up code (new dependencies, a reworked start-up); a stale
# list only costs idle memory, which benches/idle.sh shows.
#
#   sudo cross/startup-profile.sh
#
# It builds this machine's (x86_64) gatewayd with the board profile, unstripped
# (and gatewayctl, to push a bundle), and runs it from a loop-mounted file
# system with readahead off, after evicting the binary from the page cache:
# then a page of code is resident only if it ran. Scenarios, each answering a
# few requests: a cold start (compiles) and a warm start (code from the cache)
# of `up` with examples/hello-wstd and with examples/hello, and the service
# as packaged: `serve` with a config, pushed a signed bundle of hello-wstd,
# then started again with it installed. The list is the union of the Rust
# functions in those pages, demangled, without crate hashes (cross/linker
# compares names that way, so it serves every board); those that ran only on
# cold starts are marked `compile`, and cross/linker keeps them apart from
# what a warm start runs. Needs root (mount, the loop device's readahead),
# python3, c++filt.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "cross/startup-profile.sh: needs root (loop mount)" >&2; exit 1; }
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
triple=x86_64-unknown-linux-gnu
CARGO_PROFILE_BOARD_STRIP=false cargo --config cross/cargo-config.toml build --profile board \
  -p gatewayd --target "$triple"
cargo build --release -p gatewayctl
bash examples/build.sh >/dev/null

work=$(mktemp -d)
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  umount "$work/mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
truncate -s 256M "$work/fs.img"
mkfs.ext4 -q "$work/fs.img"
mkdir "$work/mnt"
mount -o loop "$work/fs.img" "$work/mnt"
loop=$(findmnt -n -o SOURCE "$work/mnt")
echo 0 >"/sys/block/$(basename "$loop")/queue/read_ahead_kb"
bin="$work/mnt/gatewayd"
cp "$target_dir/$triple/board/gatewayd" "$bin"

# run SETUP COMMAND...: starts gatewayd (COMMAND, a function below) with its
# code evicted from the page cache, runs SETUP (its output joins the log,
# where the first "GET http://..." line names the route to ask), asks that
# route 5 times, and adds the code pages resident to $work/pages-KIND (KIND:
# warm, or cold for a start that compiles).
run() {
  local kind=$1 setup=$2
  shift 2
  sync
  python3 -c 'import os, sys; os.posix_fadvise(os.open(sys.argv[1], os.O_RDONLY), 0, 0, os.POSIX_FADV_DONTNEED)' "$bin"
  "$@" >"$work/log" 2>&1 &
  pid=$!
  "$setup" >>"$work/log"
  local url=
  for _ in $(seq 600); do
    url=$(grep -o 'GET http://[^ ]*' "$work/log" | head -n1 | sed 's/^GET //; s/[.][.][.]$//') || true
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { cat "$work/log" >&2; exit 1; }
  local answered=
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && { answered=1; break; }
    sleep 0.1
  done
  [ -n "$answered" ] || { echo "no answer from $url" >&2; cat "$work/log" >&2; exit 1; }
  for _ in 1 2 3 4; do curl -fsS -o /dev/null "$url"; done
  sleep 1
  python3 - "$pid" "$bin" >>"$work/pages-$kind" <<'EOF'
import struct, sys
pid, binary = sys.argv[1], sys.argv[2]
mapped = False
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
    for line in maps:
        f = line.split()
        if len(f) < 6 or f[5] != binary or "x" not in f[1]:
            continue
        mapped = True
        start, end = (int(x, 16) for x in f[0].split("-"))
        pagemap.seek(start // 4096 * 8)
        entries = pagemap.read((end - start) // 4096 * 8)
        for i in range(len(entries) // 8):
            if struct.unpack_from("<Q", entries, i * 8)[0] >> 63:
                print(int(f[2], 16) // 4096 + i)  # page of the file
if not mapped:
    sys.exit(f"cross/startup-profile.sh: process {pid} has no code of {binary} mapped")
EOF
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
}
mkdir -m 700 "$work/wstd" "$work/hello" "$work/serve"
up() { exec "$bin" up "$1" --listen 127.0.0.1:0 --state-dir "$2"; }
run cold : up examples/hello-wstd "$work/wstd"
run warm : up examples/hello-wstd "$work/wstd"
run cold : up examples/hello "$work/hello"
run warm : up examples/hello "$work/hello"

# The service as packaged: `serve` with a config, given a signed bundle of
# hello-wstd (it compiles), then started again with it installed.
ctl="$target_dir/release/gatewayctl"
"$ctl" keygen -o "$work/release" >/dev/null
"$ctl" bundle examples/hello-wstd --key "$work/release.key" --version 1.0.0 -o "$work/hello.bundle" >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/gatewayd.toml" <<EOF_CONFIG
listen = "127.0.0.1:$port"
state_dir = "$work/serve"
trusted_keys = ["$work/release.pub"]
[admin]
socket = "$work/admin.sock"
EOF_CONFIG
serve() { exec "$bin" serve --config "$work/gatewayd.toml"; }
route() {
  for _ in $(seq 100); do [ -S "$work/admin.sock" ] && break; sleep 0.1; done
  echo "GET http://127.0.0.1:$port/hello"
}
push() {
  route >/dev/null
  "$ctl" push bundle "$work/hello.bundle" --to "unix://$work/admin.sock" >/dev/null
  route
}
run cold push serve    # compiles the pushed app
rm -f "$work/admin.sock"
run warm route serve   # the installed app

# Functions overlapping a resident page (file offsets to addresses through
# the executable segment), keyed by cross/linker itself.
python3 - "$bin" "$work/pages-warm" "$work/pages-cold" cross/startup-functions.txt <<'EOF'
import subprocess, sys
binary, warm_file, cold_file, out = sys.argv[1:]
warm = {int(l) for l in open(warm_file)}
cold = {int(l) for l in open(cold_file)}
segments = []
for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.split()
    if f and f[0] == "LOAD" and "E" in f[-2]:
        segments.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
def pages_of(address, size):
    for offset, vaddr, filesz in segments:
        if vaddr <= address < vaddr + filesz:
            first = (address - vaddr + offset) // 4096
            return set(range(first, (address + max(size, 1) - 1 - vaddr + offset) // 4096 + 1))
    return set()
symbols = []  # (mangled, ran on a warm start)
for line in subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.split()
    if len(f) == 4 and f[2] in "tTwW" and f[3].startswith(("_R", "_ZN")):
        pages = pages_of(int(f[0], 16), int(f[1], 16))
        if pages & (warm | cold):
            symbols.append((f[3], bool(pages & warm)))
keys = subprocess.run(["cross/linker", "--keys"], input="\n".join(m for m, _ in symbols) + "\n", capture_output=True, text=True, check=True).stdout.splitlines()
assert len(keys) == len(symbols), "cross/linker --keys: not one key per name"
tiers = {}  # key -> "" (warm) or " compile" (only starts that compile)
for (_, on_warm), key in zip(symbols, keys):
    if on_warm or key not in tiers:
        tiers[key] = "" if on_warm else " compile"
with open(out, "w") as f:
    f.write("# Made by cross/startup-profile.sh; read by cross/linker. One function per line:\n")
    f.write("# the first 16 hex digits of the SHA-256 of its demangled name without crate\n")
    f.write("# hashes (the names themselves would be 3 MB), then `compile` if only a start\n")
    f.write("# that compiled ran it.\n")
    f.writelines(k + tiers[k] + "\n" for k in sorted(tiers))
compile = sum(1 for t in tiers.values() if t)
print(f"cross/startup-profile.sh: {len(warm)} pages of code ran on warm starts, {len(cold - warm)} more on cold ones; "
      f"{len(tiers) - compile} + {compile} (compile) functions in them -> {out}")
EOF
