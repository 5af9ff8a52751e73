# Everyday recipes for had. `./run <recipe>` installs `just` first on a fresh machine.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Debian packages the lab, the services and the reference peers need (installed only when
# missing): heartbeat and keepalived are the peers had is measured against and must
# interoperate with; apache2, vsftpd and bind9 are the seed report's services; corosync,
# pacemaker, pacemaker-cli-utils (crm_verify), resource-agents and crmsh check and run what
# `hactl export pacemaker` writes (tests/pacemaker.rs); socat joins two pseudo-terminals into
# the null-modem cable of the serial tests (tests/ipv6_serial.rs); haproxy is seed 003's load
# balancer (the imported keepalived pair watches it, tests/keepalived.rs).
lab_pkgs := "iproute2 busybox tini procps util-linux tcpdump heartbeat net-tools keepalived apache2 vsftpd bind9 bind9-dnsutils ftp corosync pacemaker pacemaker-cli-utils resource-agents crmsh socat haproxy"

default:
    @just --list

# Install the Debian packages the lab needs (root; a no-op when they are present).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    for p in {{lab_pkgs}}; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
      if [ "$(id -u)" != 0 ]; then echo "setup: need root to install: ${missing[*]}" >&2; exit 1; fi
      echo "setup: apt-get install ${missing[*]}" >&2
      # Package scripts must not start these daemons on the host: they would talk outside
      # the lab. A policy-rc.d that says "no" is Debian's switch for that; ours is removed
      # afterwards, an existing one is left alone.
      ours=0
      if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; ours=1
      fi
      trap '[ $ours = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi

# Build every binary (had, hactl, ha-lab).
build:
    cargo build --workspace --bins

# The whole test suite: unit, property, and lab end-to-end tests (lab tests need root;
# with HA_REQUIRE_LAB=1 they fail instead of skipping when they cannot run).
test: setup build
    cargo test --workspace --no-fail-fast

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Two-node lab failover drill from seed 002's config (root).
demo: setup build
    ./target/debug/ha-lab demo

# Build a lab and leave it running (`just lab up`), list or remove labs (`just lab down`).
lab *args: setup build
    ./target/debug/ha-lab {{args}}

# had vs Heartbeat 3.0.6 vs Keepalived 2.2.7 in the same lab run: failover, handover, service
# death, idle footprint, ratios (root; ~15 min; `just bench --quick` = 1 run). Release builds, so
# the numbers are fair; results go to docs/bench/latest.{md,json} (quick.{md,json} with --quick).
bench *args: setup
    cargo build --release -p ha-daemon -p hactl -p ha-lab
    ./target/release/ha-lab bench --out-dir docs/bench {{args}}

# Fuzz the packet decoder and authenticator (needs a nightly toolchain; installs cargo-fuzz).
fuzz seconds="600":
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    cd fuzz && mkdir -p work && cargo +nightly fuzz run decode work corpus/decode -- -max_total_time={{seconds}}
