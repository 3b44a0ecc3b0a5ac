#!/usr/bin/env bash
# Builds app.wasm from app.py. Needs python3 (3.10+) and PyPI; the tools go into a
# private venv (.venv, or $HELLO_PY_VENV) pinned to the versions Spin's Python
# SDK documents together, so a rebuild gives the same world.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="${HELLO_PY_VENV:-$here/.venv}"
pins=(componentize-py==0.25.1 spin-sdk==5.0.0)

if ! "$venv/bin/python" -m pip show -q "${pins[@]%%==*}" >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "${pins[@]}"
fi
# Skip the (slow, ~seconds) componentize step when app.wasm is newer than app.py.
if [[ app.wasm -nt app.py ]]; then
    echo "app.wasm up to date"
    exit 0
fi
# componentize-py finds the SDK's WIT through the active environment, as if
# the venv were activated.
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
componentize-py -w spin:up/http-trigger@4.1.0 componentize app -o app.wasm
echo "built $here/app.wasm ($(stat -c %s app.wasm) bytes)"
