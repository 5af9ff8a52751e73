#!/usr/bin/env bash
# Installs the package built by `just deb` in a clean Debian root (mmdebstrap, minbase, from
# this machine's own Debian apt sources), runs it, checks what it ships, purges it, and runs
# lintian. `just deb-test`; CI runs it. Needs root (chroot). Prints each step and its time.
set -euo pipefail
cd "$(dirname "$0")/../.."

deb=$(ls -t target/debian/had_*_amd64.deb 2>/dev/null | head -n 1 || true)
[ -n "$deb" ] || { echo "deb-test: no target/debian/had_*_amd64.deb; run \`just deb\`" >&2; exit 1; }
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")

work=$(mktemp -d /tmp/had-debtest.XXXXXX)
root="$work/root"
cleanup() {
  # mmdebstrap unmounts what it mounted; nothing else is mounted here.
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
cp "$deb" "$work/had.deb"

start=$SECONDS
step() { printf '\n$ %s    # t=%ds\n' "$*" $((SECONDS - start)); }
in_root() { step "$*"; chroot "$root" "$@"; }

# man-db for `man -w`; systemd for `systemd-analyze verify` against the installed binaries and
# man pages, and `systemctl enable` (offline in a chroot; nothing is booted).
step mmdebstrap --variant=minbase --include=man-db,systemd "$suite" ROOT "$sources"
mmdebstrap --quiet --variant=minbase --include=man-db,systemd --mode=root "$suite" "$root" "$sources"
echo "root built in $((SECONDS - start)) s"

cp "$work/had.deb" "$root/tmp/had.deb"
in_root dpkg -i /tmp/had.deb
in_root had --version
in_root hactl --help
for page in had hactl ha.cf haresources authkeys had.toml; do
  in_root man -w "$page"
done
in_root readlink /usr/sbin/cl_status
step "ls completions"
ls "$root/usr/share/bash-completion/completions/hactl" \
   "$root/usr/share/zsh/vendor-completions/_hactl" \
   "$root/usr/share/fish/vendor_completions.d/hactl.fish"

step "conffiles, and no key anywhere in /etc"
cat "$root/var/lib/dpkg/info/had.conffiles"
grep -qx /etc/ha.d/had.toml "$root/var/lib/dpkg/info/had.conffiles"
if [ -e "$root/etc/ha.d/authkeys" ]; then echo "the package wrote a key" >&2; exit 1; fi

# The examples as the admin installs them (docs/install.md): authkeys at 0600.
# seed-000 last: its had.toml replaces the package's (a conffile the purge still removes).
for ex in seed-002 seed-000; do
  step "install $ex into /etc/ha.d as docs/install.md says"
  chroot "$root" sh -euc "
    rm -f /etc/ha.d/ha.cf /etc/ha.d/haresources /etc/ha.d/authkeys
    cd /usr/share/doc/had/examples/$ex
    install -m 644 ha.cf haresources /etc/ha.d/
    install -m 600 authkeys /etc/ha.d/authkeys
    [ ! -f had.toml ] || install -m 644 had.toml /etc/ha.d/"
  # A chroot has no /proc (no `uname -n`) and is not a cluster node: check as the example's
  # first node, as an admin checks a configuration made for another machine.
  node=$(awk '$1 == "node" { print $2; exit }' "$root/etc/ha.d/ha.cf")
  in_root hactl check --config-dir /etc/ha.d --node-name "$node"
  # As installed (0644 in /usr/share/doc): the EXAMPLE file makes mode and machine problems
  # warnings.
  in_root hactl check --config-dir "/usr/share/doc/had/examples/$ex" --node-name "$node"
done

in_root systemd-analyze verify /lib/systemd/system/had.service
echo "systemd-analyze verify: clean"
# Enabled by the admin; the purge must forget it.
in_root systemctl enable had.service
ls "$root/etc/systemd/system/multi-user.target.wants/had.service"

in_root dpkg --purge had
step "nothing of the package is left"
left=$(cd "$root" && ls -d usr/sbin/had usr/sbin/hactl usr/sbin/cl_status etc/ha.d/had.toml \
  lib/systemd/system/had.service usr/share/doc/had \
  etc/systemd/system/multi-user.target.wants/had.service 2>/dev/null || true)
[ -z "$left" ] || { echo "left after purge: $left" >&2; exit 1; }
echo "purged clean"

step lintian "$(basename "$deb")"
lintian --fail-on error,warning --info "$deb"
echo "lintian: clean"
echo
echo "deb-test passed in $((SECONDS - start)) s"
