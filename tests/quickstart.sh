#!/usr/bin/env bash
# Runs the README's quick start as a newcomer would: copies the first command
# of its "Quick start" section verbatim, starts it, waits for the answer the
# README promises (`curl URL` answers `TEXT`), and stops it. Fails if the
# command exits, or the answer differs, within the time limit (the command
# may build the gateway first). .ci/run calls this so the front door cannot
# break unnoticed.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=${QUICKSTART_TIMEOUT:-1200}

# The quick start's first ```sh block, and the "`curl URL` answers `TEXT`"
# sentence after it.
section=$(awk '/^## Quick start/{on=1; next} on && /^## /{exit} on' README.md)
command=$(printf '%s\n' "$section" | awk '/^```sh$/{on=1; next} on && /^```$/{exit} on')
promise=$(printf '%s\n' "$section" | grep -m1 -o '`curl [^`]*` answers `[^`]*`' || true)
url=$(printf '%s\n' "$promise" | sed -E 's/^`curl ([^`]*)` answers.*/\1/')
expected=$(printf '%s\n' "$promise" | sed -E 's/.*answers `([^`]*)`$/\1/')
if [ -z "$command" ] || [ -z "$promise" ]; then
  echo "quickstart: README.md has no quick-start command or no \"\`curl URL\` answers \`TEXT\`\"" >&2
  exit 1
fi
echo "quickstart: running the README's command: $command"

log=$(mktemp)
set -m
bash -c "$command" >"$log" 2>&1 &
pid=$!
set +m
stop() { kill -- -"$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap stop EXIT

deadline=$(( $(date +%s) + limit ))
answer=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$log"
    echo "quickstart: the command exited before answering" >&2
    exit 1
  fi
  if answer=$(curl -fsS --max-time 5 "$url" 2>/dev/null); then
    break
  fi
  sleep 1
done
if [ "$answer" != "$expected" ]; then
  tail -n 40 "$log"
  echo "quickstart: $url answered \"$answer\", the README promises \"$expected\"" >&2
  exit 1
fi
echo "quickstart: $url answered \"$answer\" as the README says"
