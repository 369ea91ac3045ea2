#!/usr/bin/env bash
# Builds (or finds cached) the root filesystem of a lab flavour: the Debian rootfs of
# scripts/build-rootfs.sh plus Debian's own packages, installed the way a user installs them
# (`apt-get install`, recommends included), with nothing tuned:
#   db     postgresql mariadb-server: their postinst scripts create the cluster 15/main and the
#          MariaDB system tables and enable both units (the one UML adjustment is overlay-db/,
#          applied by build-image.sh);
#   tuned  tuned (2.20 on bookworm): its postinst enables tuned.service; active_profile and
#          profile_mode stay empty as shipped (auto mode); the tests plant their profiles.
# Usage: build-flavour-rootfs.sh SUITE FLAVOUR; prints the tarball's path.
# The cache key hashes this script, the flavour and the base tarball's name (which carries the
# suite and the base recipe's hash), so changing either rebuilds it; the base recipe stays
# untouched (the molecule images and the plain lab images keep their cache).
set -euo pipefail
suite=${1:?usage: build-flavour-rootfs.sh SUITE FLAVOUR}
flavour=${2:?usage: build-flavour-rootfs.sh SUITE FLAVOUR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}/rootfs
case $flavour in
  db) PACKAGES=(postgresql mariadb-server) ;;
  tuned) PACKAGES=(tuned) ;;
  *) echo "build-flavour-rootfs: flavour $flavour: use db or tuned" >&2; exit 2 ;;
esac

base=$("$repo/scripts/build-rootfs.sh" "$suite")
key=$( (cat "$0"; echo "$flavour"; basename "$base") | sha256sum | cut -c1-12)
stem=$suite+$flavour   # not "$suite-*": build-rootfs.sh drops stale "$suite-*.tar" files
tarball=$cache/$stem-$key.tar
if [[ -f $tarball ]]; then echo "$tarball"; exit 0; fi

exec 9>"$cache/.$stem.lock"
flock 9
if [[ -f $tarball ]]; then echo "$tarball"; exit 0; fi
work=$(mktemp -d "$cache/build-$stem.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-flavour-rootfs: apt-get install ${PACKAGES[*]} on $suite (a minute or two)" >&2
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
