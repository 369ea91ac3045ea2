#!/usr/bin/env bash
# Builds (or finds cached) the root filesystem of the lab's "tuned" guests: the Debian rootfs of
# scripts/build-rootfs.sh plus Debian's own tuned package (2.20 on bookworm), installed the way a
# user installs it (`apt-get install tuned`, recommends included): its postinst enables
# tuned.service, and active_profile and profile_mode stay empty as shipped (auto mode). Nothing
# is tuned here; tests/lab/test_tuned_differential.py plants its profiles and sysctl files.
# Usage: build-tuned-rootfs.sh SUITE; prints the tarball's path.
# The cache key hashes this script and the base tarball's name (which carries the suite and the
# base recipe's hash), so changing either rebuilds it; the base recipe stays untouched.
# Same steps as build-db-rootfs.sh, kept apart so that neither flavour's cache key moves when the
# other changes.
set -euo pipefail
suite=${1:?usage: build-tuned-rootfs.sh SUITE}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}/rootfs
PACKAGES=(tuned)

base=$("$repo/scripts/build-rootfs.sh" "$suite")
key=$( (cat "$0"; basename "$base") | sha256sum | cut -c1-12)
stem=$suite+tuned   # not "$suite-*": build-rootfs.sh drops stale "$suite-*.tar" files
tarball=$cache/$stem-$key.tar
if [[ -f $tarball ]]; then echo "$tarball"; exit 0; fi

exec 9>"$cache/.$stem.lock"
flock 9
if [[ -f $tarball ]]; then echo "$tarball"; exit 0; fi
work=$(mktemp -d "$cache/build-$stem.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-tuned-rootfs: apt-get install ${PACKAGES[*]} on $suite (a minute or so)" >&2
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$base"
cp "$root/etc/resolv.conf" "$work/resolv.conf"
cp /etc/resolv.conf "$root/etc/resolv.conf"   # apt needs DNS; the base's file comes back after
# As in any image build: no daemon may start inside the chroot (postinst would try).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
# A private mount namespace gives the chroot a /proc that vanishes with it.
# The script is single-quoted on purpose: the inner sh expands its own $1 and $@, not this shell.
# shellcheck disable=SC2016
unshare --mount --propagation private -- sh -c '
  set -e
  root=$1; shift
  mount -t proc proc "$root/proc"
  chroot "$root" apt-get -q update
  DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -q -y install "$@"
  chroot "$root" apt-get clean
' sh "$root" "${PACKAGES[@]}" >"$work/apt.log" 2>&1 || { tail -40 "$work/apt.log" >&2; exit 1; }
rm -f "$root/usr/sbin/policy-rc.d"
cp "$work/resolv.conf" "$root/etc/resolv.conf"
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
rm -f "$root"/etc/ssh/ssh_host_*

tar -C "$root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
# Tarballs of older recipes go (a loop: `ls | grep -v` fails under pipefail when none is stale).
for old in "$cache/$stem"-*.tar; do
  if [[ -e $old && $old != "$tarball" ]]; then rm -f "$old"; fi
done
echo "$tarball"
