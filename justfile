# Everyday recipes for had. `./run <recipe>` installs `just` first on a fresh machine.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Debian packages the lab, the services and the reference peers need (installed only when
# missing): heartbeat and keepalived are the peers had is measured against and must
# interoperate with; apache2, vsftpd and bind9 are the seed report's services; corosync,
# pacemaker, pacemaker-cli-utils (crm_verify), resource-agents and crmsh check and run what
# `hactl export pacemaker` writes (tests/pacemaker.rs); socat joins two pseudo-terminals into
# the null-modem cable of the serial tests (tests/ipv6_serial.rs); haproxy is seed 003's load
# balancer (the imported keepalived pair watches it, tests/keepalived.rs); prometheus scrapes the
# metrics test (tests/metrics.rs); nftables drops and thins heartbeat traffic inside a node for
# the soak (crates/soak, tests/soak.rs); stress-ng loads both nodes in the bench's stress window.
lab_pkgs := "iproute2 busybox tini procps util-linux tcpdump heartbeat net-tools keepalived apache2 vsftpd bind9 bind9-dnsutils ftp corosync pacemaker pacemaker-cli-utils resource-agents crmsh socat haproxy prometheus nftables stress-ng"

# What `just deb-test` needs besides: a clean Debian root, a package linter, dpkg-shlibdeps.
deb_pkgs := "mmdebstrap lintian dpkg-dev man-db"

default:
    @just --list

# Install the Debian packages the lab needs (root; a no-op when they are present).
setup: (apt lab_pkgs)

# Install Debian packages that are missing (root).
apt pkgs:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    for p in {{pkgs}}; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
      if [ "$(id -u)" != 0 ]; then echo "apt: need root to install: ${missing[*]}" >&2; exit 1; fi
      echo "apt: apt-get install ${missing[*]}" >&2
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

# Build every binary (had, hactl, ha-lab, ha-bench).
build:
    cargo build --workspace --bins

# The whole test suite: unit, property, and lab end-to-end tests (lab tests need root;
# with HA_REQUIRE_LAB=1 they fail instead of skipping when they cannot run).
test: setup build
    cargo test --workspace --no-fail-fast

# Formatting and lints, as CI checks them.
lint: core-deps
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The workspace's crate graph as Mermaid (docs/architecture.md shows it): normal dependencies
# solid, dev-dependencies dotted; a crate with tokio, socket2 or netlink in its own or a
# workspace dependency's direct dependencies is drawn [[boxed]].
crate-graph: (apt "python3")
    #!/usr/bin/env bash
    set -euo pipefail
    cargo metadata --format-version 1 --no-deps | python3 -c '
    import json, sys
    m = json.load(sys.stdin)
    pkgs = {p["name"]: p for p in m["packages"]}
    io_ext = {"tokio", "socket2", "rtnetlink", "netlink-packet-route", "mio"}
    def ws(p, kind):
        return sorted({d["name"] for d in p["dependencies"] if d["name"] in pkgs and d["kind"] == kind})
    memo = {}
    def io(n):
        if n not in memo:
            p = pkgs[n]
            memo[n] = any(d["name"] in io_ext and d["kind"] is None for d in p["dependencies"]) or any(io(d) for d in ws(p, None))
        return memo[n]
    def v(n):
        return n.replace("-", "_")
    print("```mermaid")
    print("flowchart BT")
    for n in sorted(pkgs):
        print(f"    {v(n)}[[\"{n}\"]]" if io(n) else f"    {v(n)}[\"{n}\"]")
    for n in sorted(pkgs):
        for d in ws(pkgs[n], None):
            print(f"    {v(n)} --> {v(d)}")
        for d in ws(pkgs[n], "dev"):
            print(f"    {v(n)} -.-> {v(d)}")
    print("```")
    '

# Checked for this machine's target only: on aarch64, sha1/sha2 reach libc through cpufeatures
# (which only reads CPU features).
# Fail if an async runtime, socket, netlink or libc crate enters ha-core's dependency tree.
core-deps:
    #!/usr/bin/env bash
    set -euo pipefail
    tree=$(cargo tree -p ha-core -e normal --prefix none)
    bad=$(grep -E '^(tokio|mio|socket2|nix|libc|rtnetlink|netlink-[a-z-]+|async-[a-z-]+|futures[a-z-]*) ' <<<"$tree" | sort -u || true)
    if [ -n "$bad" ]; then
      printf 'ha-core must stay sans-IO, but its dependency tree has:\n%s\n' "$bad" >&2
      exit 1
    fi
    echo "ha-core: $(sort -u <<<"$tree" | wc -l) crates, none of them IO"

# Two-node lab failover drill from seed 002's config (root).
demo: setup build
    ./target/debug/ha-lab demo

# Build a lab and leave it running (`just lab up`), list or remove labs (`just lab down`).
lab *args: setup build
    ./target/debug/ha-lab {{args}}

# had vs Heartbeat 3.0.6 vs Keepalived 2.2.7 vs Pacemaker 2.1 in the same lab run: failover,
# handover, service death, idle footprint, scale, monitors, ratios (root; ~50 min; `just bench --quick` < 3 min: 1 run of the cheap rows, no Pacemaker unless `--only` names it;
# one contender or drill: `--only pacemaker --drills crash --speed slow`; scale shapes
# `--drills scale --scale 10,50x2`). Release builds, so
# the numbers are fair; results go to docs/bench/latest.{md,json} (quick.{md,json} with --quick).
bench *args: setup
    cargo build --release -p ha-daemon -p hactl -p ha-bench
    ./target/release/ha-bench --out-dir docs/bench {{args}}

# Issue 14's run of record: all four contenders, the 10-minute stress windows, the flatness rows
# over three labs, had at its fastest safe setting (keepalive 10 ms / deadtime 50 ms; ≈ 2 h 15).
bench-record:
    just bench --long --had-fast-keepalive 10ms --had-fast-deadtime 50ms

# Regenerate crates/daemon/text-order/symbols.txt, the functions had runs from start-up through
# its drills and an idle minute, which the release link places together so that an idle had
# keeps a few blocks of its code resident, not most of it (root; ≈ 10 min, most of it the
# kernel removing the uprobes one by one). Commit the list after a change to the idle path; a
# stale list only costs memory (unknown names are skipped).
text-order: setup
    mkdir -p target/text-order
    HA_TEXT_MAP="$PWD/target/text-order/had.map" cargo build --release -p ha-daemon -p hactl -p ha-bench
    unshare -m --propagation private python3 crates/daemon/text-order/profile.py --binary target/release/had --map target/text-order/had.map --out crates/daemon/text-order/symbols.txt -- target/release/ha-bench --only had --drills crash,handover,service,footprint --speed slow --runs 1 --out-dir target/text-order/bench
    cargo build --release -p ha-daemon

# The lab chaos soak (root; issue 11): N seeded random faults against a two-node cluster with a
# web service behind the VIP, audited after each (`just soak 1000 --seed 7 --timers 100ms/500ms`,
# `just soak 200 --timers 1s/5s`, `--mixed` for had + Heartbeat 3.0.6). Release builds; the report
# goes to docs/soak/ (`--out DIR`). Exit 1 when a violation was found.
soak n *args: setup
    cargo build --release -p ha-daemon -p hactl -p ha-soak
    ./target/release/ha-soak {{n}} {{args}}

# Criterion micro-benchmarks (release profile): status sign/verify, a Liveness and a Cluster
# step, a netlink address add+del (root, in a private namespace). `just micro netlink` filters.
micro *filter:
    cargo bench -p ha-transport --bench micro -- {{filter}}
    cargo bench -p ha-daemon --bench micro -- {{filter}}
    cargo bench -p ha-agents --bench micro -- {{filter}}

# Fuzz one parser of untrusted bytes for SECONDS (needs a nightly toolchain; installs
# cargo-fuzz): `just fuzz ha_cf 60`. Without a target it fuzzes the packet decoder
# (`just fuzz`, `just fuzz 60`). Targets: `ls fuzz/fuzz_targets`. New inputs go to
# fuzz/work/TARGET, crashes to fuzz/artifacts/TARGET.
fuzz target="decode" seconds="600":
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    target="{{target}}"; seconds="{{seconds}}"
    # `just fuzz 60`: the decoder for 60 s, as this recipe always took the seconds first.
    if [[ "$target" =~ ^[0-9]+$ ]]; then seconds="$target"; target=decode; fi
    cd fuzz && mkdir -p "work/$target"
    cargo +nightly fuzz run "$target" "work/$target" "corpus/$target" -- -max_total_time="$seconds"

# Fuzz every target in turn, SECONDS each (one at a time: each libFuzzer run takes a core).
fuzz-all seconds="600":
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    for t in $(cd fuzz && cargo +nightly fuzz list); do
      echo "== fuzz $t for {{seconds}} s" >&2
      just fuzz "$t" "{{seconds}}"
    done

# The Debian package: target/debian/had_<version>_amd64.deb (release build, man pages and
# shell completions generated by `hactl gen-docs`, cargo-deb installed when missing).
deb: (apt deb_pkgs)
    command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
    cargo build --release -p ha-daemon -p hactl
    rm -rf pkg/deb/gen
    ./target/release/hactl gen-docs pkg/deb/gen --config-md docs/configuration.md
    gzip -9n pkg/deb/gen/man/*
    cargo deb -p ha-daemon --no-build --no-strip --output target/debian/
    @ls -l target/debian/*.deb

# Install the package in a clean Debian root, run it, purge it, lintian it (root; CI runs it).
deb-test: deb
    ./pkg/deb/test-install.sh
