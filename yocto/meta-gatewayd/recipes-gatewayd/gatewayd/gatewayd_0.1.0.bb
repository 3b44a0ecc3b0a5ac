# gatewayd (the WebAssembly gateway daemon) and gatewayctl (its operator
# tool), built from source, offline, with OE-core's cargo class. The crates
# come from gatewayd-crates.inc (python3 yocto/gen-crates-inc.py writes it
# from Cargo.lock). The layer's README says how to point it at a tree.
SUMMARY = "Runs Spin WebAssembly apps on small Linux boards"
DESCRIPTION = "gatewayd serves Spin-style WebAssembly apps (HTTP, Redis and \
               MQTT triggers) with a fresh, isolated instance per request, and \
               installs signed app bundles with health checks and rollback. \
               gatewayctl makes keys and bundles and pushes them to a board."
HOMEPAGE = "https://github.com/example/gatewayd"
SECTION = "net"
# gatewayd's own code. The repository has no license file yet, so the
# checksum is that of OE-core's copy of the Apache-2.0 text.
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# The repository to build: set both in local.conf or a bbappend, e.g.
#   GATEWAYD_GIT_URI = "git://git.example.org/gatewayd.git;protocol=https;branch=main"
#   SRCREV:pn-gatewayd = "<40-hex commit>"
# or build a local checkout with externalsrc (then neither is used).
GATEWAYD_GIT_URI ??= "git://github.com/example/gatewayd.git;protocol=https;branch=main"
# destsuffix=${BP}: the tree lands in ${S} on every supported series.
SRC_URI = "${GATEWAYD_GIT_URI};destsuffix=${BP}"
# Until SRCREV is set it is all zeros and the recipe is skipped (below). Not
# a word: externalsrc resolves SRCREV at parse time, and would look a word up
# on the remote as a branch name.
SRCREV ??= "${GATEWAYD_SRCREV_UNSET}"
GATEWAYD_SRCREV_UNSET = "0000000000000000000000000000000000000000"

require gatewayd-crates.inc

inherit cargo systemd useradd

# The workspace's rust-version (Cargo.toml); cargo refuses an older rustc.
GATEWAYD_MIN_RUST = "1.95"

# Skip the recipe, saying why, when there is nothing to build or the Rust
# toolchain is too old: better at parse time than after building rust-native.
python () {
    if d.getVar("SRCREV") == d.getVar("GATEWAYD_SRCREV_UNSET") and not d.getVar("EXTERNALSRC"):
        raise bb.parse.SkipRecipe("set SRCREV:pn-gatewayd (and GATEWAYD_GIT_URI) to the gatewayd commit to build, or use externalsrc; see meta-gatewayd/README.md")
    rust = (d.getVar("RUSTVERSION") or "").rstrip("%")
    minimum = d.getVar("GATEWAYD_MIN_RUST")
    if rust and bb.utils.vercmp_string_op(rust, minimum, "<"):
        raise bb.parse.SkipRecipe("gatewayd needs rustc >= %s; RUSTVERSION is %s: add a layer with a newer Rust and set RUSTVERSION" % (minimum, rust))
}

# The workspace also holds the benchmark tools: build only the two programs.
# The class's release profile is used (the workspace's "board" profile strips,
# which OE does itself after splitting out debug info).
CARGO_BUILD_FLAGS:append = " -p gatewayd -p gatewayctl"

# Installed by hand rather than by cargo_do_install, which would also pick up
# the daemon's library (libgatewayd.rlib) on older series.
do_install() {
    install -d ${D}${bindir}
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/gatewayd ${D}${bindir}/gatewayd
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/gatewayctl ${D}${bindir}/gatewayctl

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/packaging/gatewayd.service ${D}${systemd_system_unitdir}/gatewayd.service
    install -m 0644 ${S}/packaging/gatewayd.socket ${D}${systemd_system_unitdir}/gatewayd.socket

    # Readable by the daemon's group only: admin tokens may be added to it.
    install -d -m 0750 ${D}${sysconfdir}/gatewayd
    install -m 0640 ${S}/packaging/gatewayd.toml ${D}${sysconfdir}/gatewayd/gatewayd.toml
    chown -R root:gatewayd ${D}${sysconfdir}/gatewayd
}

# /var/lib/gatewayd and /run/gatewayd come from the unit's StateDirectory= and
# RuntimeDirectory=; operators join group gatewayd to use the admin socket.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/gatewayd --no-create-home --shell ${base_sbindir}/nologin --user-group gatewayd"

SYSTEMD_SERVICE:${PN} = "gatewayd.service"
SYSTEMD_AUTO_ENABLE = "enable"
# Socket activation (HTTP on port 80) is opt-in: shipped, not enabled.
FILES:${PN} += "${systemd_system_unitdir}/gatewayd.socket"

CONFFILES:${PN} = "${sysconfdir}/gatewayd/gatewayd.toml"
