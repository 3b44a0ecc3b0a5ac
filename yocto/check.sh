#!/usr/bin/env bash
# Checks the Yocto layer (yocto/meta-gatewayd) without a bitbake build tree:
#  - gatewayd-crates.inc matches Cargo.lock (yocto/gen-crates-inc.py --check);
#  - the recipe's version and minimum Rust match the workspace's Cargo.toml;
#  - every file the recipe installs from the tree (${S}/...) exists;
#  - oelint-adv (installed with pip if missing) reports no error for the
#    recipes (warnings are printed; the layer README says which remain, and why).
# Runs from any directory: bash yocto/check.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
layer="$root/yocto/meta-gatewayd"
cd "$root"

# (a) The crate list is current.
python3 yocto/gen-crates-inc.py --check
crates=$(grep -c '^    crate://' "$layer/recipes-gatewayd/gatewayd/gatewayd-crates.inc")

# The recipe follows the workspace: its file name carries the version, and it
# refuses a rustc older than the workspace's rust-version.
mapfile -t recipes < <(find "$layer" -path '*/recipes-*/*' -name '*.bb' | sort)
[ "${#recipes[@]}" -gt 0 ] || { echo "yocto/check.sh: no recipes under $layer" >&2; exit 1; }
python3 - "$layer/recipes-gatewayd/gatewayd" <<'EOF'
import re, sys, tomllib
from pathlib import Path
ws = tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]
recipe = Path(sys.argv[1]) / f"gatewayd_{ws['version']}.bb"
if not recipe.exists():
    sys.exit(f"yocto/check.sh: {recipe} missing: rename the recipe to the workspace version {ws['version']}")
m = re.search(r'^GATEWAYD_MIN_RUST = "([^"]+)"', recipe.read_text(), re.M)
if not m or m.group(1) != ws["rust-version"]:
    sys.exit(f"yocto/check.sh: {recipe.name}: GATEWAYD_MIN_RUST must be the workspace rust-version {ws['rust-version']}")
EOF

# (c) The files the recipes install from the source tree exist.
for recipe in "${recipes[@]}"; do
    while read -r path; do
        [ -f "$root/$path" ] || { echo "yocto/check.sh: ${recipe#"$root"/} installs \${S}/$path, which does not exist" >&2; exit 1; }
    done < <(grep -o '\${S}/[^ ;"]*' "$recipe" | sed 's|^\${S}/||' | sort -u)
done

# (b) oelint-adv: no errors, for the oldest and the newest series the layer supports.
if command -v oelint-adv >/dev/null 2>&1; then
    oelint=(oelint-adv)
else
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check oelint-adv
    oelint=(python3 -m oelint_adv)
fi
read -r -a series <<<"$(sed -n 's/^LAYERSERIES_COMPAT_gatewayd = "\(.*\)"/\1/p' "$layer/conf/layer.conf")"
[ "${#series[@]}" -gt 0 ] || { echo "yocto/check.sh: no LAYERSERIES_COMPAT_gatewayd in layer.conf" >&2; exit 1; }
findings=""
for release in "${series[0]}" "${series[-1]}"; do
    out=$("${oelint[@]}" --quiet --exit-zero --mode all --hide info --relpaths --release "$release" "${recipes[@]}" 2>&1)
    [ -z "$out" ] || findings+="$(sed "s/^/[$release] /" <<<"$out")"$'\n'
done
[ -z "$findings" ] || printf '%s' "$findings"
if grep -q ':error:' <<<"$findings"; then
    echo "yocto/check.sh: oelint-adv reported errors (above)" >&2
    exit 1
fi

echo "yocto/check.sh: ok ($crates crates)"
