#!/usr/bin/env bash
# Builds (or finds cached) a Debian root filesystem tarball with systemd, sshd and
# python3: the one recipe behind the molecule images and the lab's guest disk.
# Usage: build-rootfs.sh SUITE   (bookworm | trixie); prints the tarball's path.
# The cache key hashes this script, so changing the recipe rebuilds the image.
set -euo pipefail
suite=${1:?usage: build-rootfs.sh SUITE}
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}/rootfs

# systemd as PID 1 so systemd-sysctl applies drop-ins at boot; sshd and python3 so
# Ansible can reach the host; procps for sysctl(8) in tests; iproute2 for the lab.
INCLUDE=systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,procps,iproute2,sudo,ca-certificates

key=$( (cat "$0"; echo "$suite") | sha256sum | cut -c1-12)
tarball=$cache/$suite-$key.tar
if [[ -f $tarball ]]; then echo "$tarball"; exit 0; fi

mkdir -p "$cache"
# Molecule, the lab and a developer may ask for the same image at once: build it once.
exec 9>"$cache/.$suite.lock"
flock 9
if [[ -f $tarball ]]; then echo "$tarball"; exit 0; fi
mirror=$("$(dirname "$0")/debian-mirror.sh")
work=$(mktemp -d "$cache/build-$suite.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-rootfs: debootstrap $suite from $mirror (about a minute)" >&2
debootstrap --variant=minbase --include="$INCLUDE" "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; exit 1; }

# Trim what no test needs, and make the image boot quietly and quickly.
chroot "$work/root" apt-get clean
rm -rf "$work/root"/var/lib/apt/lists/* "$work/root"/usr/share/doc/* "$work/root"/usr/share/man/*
echo "dbfleet-$suite" >"$work/root/etc/hostname"
: >"$work/root/etc/machine-id"   # empty: systemd generates a fresh id per boot/container
rm -f "$work/root"/etc/ssh/ssh_host_*   # generated per guest/container, never shared

tar -C "$work/root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
# Tarballs of older recipes go. A loop, not `ls | grep -v`: with no stale file grep selects
# nothing and exits 1, which under pipefail failed every first build on a new machine.
for old in "$cache/$suite"-*.tar; do
  if [[ -e $old && $old != "$tarball" ]]; then rm -f "$old"; fi
done
echo "$tarball"
