#!/usr/bin/env python3
"""Writes the Yocto recipe's crate list from the workspace's Cargo.lock.

The gatewayd recipe (yocto/meta-gatewayd) builds offline: bitbake fetches
every crate named in gatewayd-crates.inc and checks it against the sha256
that Cargo.lock records for it. This script writes that file in the layout
OE-core's `bitbake -c update_crates` uses (crate:// SRC_URI entries, then
SRC_URI[<name>-<version>.sha256sum] checksums), so either tool can refresh it.

    python3 yocto/gen-crates-inc.py          # rewrite the .inc
    python3 yocto/gen-crates-inc.py --check  # exit 1 if the .inc is stale

Only crates.io packages are listed; workspace members (no source) are the
recipe's own tree. A git or other-registry dependency is an error: the
recipe would need an extra SRC_URI entry for it, written by hand.
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_LOCK = HERE.parent / "Cargo.lock"
DEFAULT_INC = HERE / "meta-gatewayd/recipes-gatewayd/gatewayd/gatewayd-crates.inc"
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
REGENERATE = "python3 yocto/gen-crates-inc.py"


def version_key(version):
    """Orders 1.2.10 after 1.2.9; ties between odd strings stay deterministic."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", version)]


def crates_from_lock(lock_path):
    with open(lock_path, "rb") as f:
        lock = tomllib.load(f)
    crates = []
    for pkg in lock.get("package", []):
        name, version, source = pkg["name"], pkg["version"], pkg.get("source")
        if source is None:
            continue  # a workspace member or path dependency: part of the source tree
        if source != CRATES_IO:
            kind = "git" if source.startswith("git+") else "non-crates.io"
            sys.exit(
                f"gen-crates-inc: {lock_path}: package {name} {version} comes from a {kind} "
                f"source ({source}); the recipe only fetches crates.io crates. Add a SRC_URI "
                f"entry for it to gatewayd_*.bb by hand, or depend on a crates.io release."
            )
        if "checksum" not in pkg:
            sys.exit(f"gen-crates-inc: {lock_path}: package {name} {version} has no checksum")
        crates.append((name, version, pkg["checksum"]))
    crates.sort(key=lambda c: (c[0], version_key(c[1]), c[1]))
    return crates


def render(crates):
    lines = [
        "# gatewayd's crates.io dependencies, for an offline bitbake build.",
        "# Generated from Cargo.lock by yocto/gen-crates-inc.py: do not edit.",
        f"# Regenerate with: {REGENERATE}",
        "",
        'SRC_URI += "\\',
    ]
    lines += [f"    crate://crates.io/{name}/{version} \\" for name, version, _ in crates]
    lines += ['"', ""]
    lines += [f'SRC_URI[{name}-{version}.sha256sum] = "{sha}"' for name, version, sha in crates]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the existing file instead of writing it; exit 1 if stale")
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="Cargo.lock to read")
    parser.add_argument("--output", type=Path, default=DEFAULT_INC, help=".inc file to write or check")
    args = parser.parse_args()

    crates = crates_from_lock(args.lock)
    text = render(crates)
    if args.check:
        current = args.output.read_text() if args.output.exists() else None
        if current != text:
            state = "missing" if current is None else f"stale (does not match {args.lock.name})"
            print(f"gen-crates-inc: {args.output.name} is {state}; run: {REGENERATE}", file=sys.stderr)
            return 1
        print(f"gen-crates-inc: {args.output.name} is up to date ({len(crates)} crates)")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"gen-crates-inc: wrote {args.output} ({len(crates)} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
