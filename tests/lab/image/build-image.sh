#!/usr/bin/env bash
# Builds (or finds cached) the lab's guest disk: an ext4 image of a Debian root
# filesystem from scripts/build-rootfs.sh, customised to boot fast under User-mode
# Linux. Prints the image's path. Guests never write to it: each gets its own
# copy-on-write file over it, so the image is made read-only.
# Usage: build-image.sh [SUITE [FLAVOUR]]   SUITE: bookworm (the default) or trixie.
#   FLAVOUR db: PostgreSQL and MariaDB from Debian's packages (build-flavour-rootfs.sh) plus
#   overlay-db/ (the one UML adjustment MariaDB needs); FLAVOUR tuned: Debian's tuned package
#   (build-flavour-rootfs.sh), as installed. One image per suite and flavour.
# The cache key hashes this script, the overlay trees, the rootfs tarball's name (it
# carries the suite, the flavour and that recipe's hash) and the UML kernel version:
# changing any rebuilds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}/lab
image_size_mb=${LAB_IMAGE_SIZE_MB:-2048}   # sparse: only the used blocks take space
suite=${1:-bookworm}
flavour=${2:-}
case $suite in
  bookworm|trixie) ;;
  *) echo "build-image: suite $suite: use bookworm or trixie" >&2; exit 2 ;;
esac
overlays=("$here/overlay")
case $flavour in
  "") stem=$suite
      rootfs=$("$repo/scripts/build-rootfs.sh" "$suite") ;;
  # "+", not "-": the plain images' stale-image glob ("$suite-*.img") must not match it.
  db) stem=$suite+db
      rootfs=$("$here/build-flavour-rootfs.sh" "$suite" db)
      overlays+=("$here/overlay-db") ;;
  tuned) stem=$suite+tuned
      rootfs=$("$here/build-flavour-rootfs.sh" "$suite" tuned) ;;
  *) echo "build-image: flavour $flavour: use db, tuned or nothing" >&2; exit 2 ;;
esac
kernel=$(linux.uml --version 2>/dev/null | tail -1)
key=$( (cat "$0"; for overlay in "${overlays[@]}"; do
          (cd "$overlay" && find . -type f | LC_ALL=C sort | xargs -d '\n' sha256sum); done
        basename "$rootfs"; echo "$kernel $image_size_mb") | sha256sum | cut -c1-12)
image=$cache/$stem-$key.img

mkdir -p "$cache"
exec 9>"$cache/.build.lock"          # parallel lab runs build each image once
flock 9

drop_stale_images() {
  # Images of older recipes go, except those a running lab still boots from (its COW
  # files name their backing file; a power-cycle would fail without it).
  local old
  for old in "$cache/$stem"-*.img; do
    [[ -e $old && $old != "$image" ]] || continue
    grep -qsF "\"$old\"" "${DBFLEET_LAB_RUN:-/run/dbfleet-lab}"/*/lab.json || rm -f "$old"
  done
}
if [[ -f $image ]]; then drop_stale_images; echo "$image"; exit 0; fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-image: building $image" >&2
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$rootfs"
for overlay in "${overlays[@]}"; do cp -a "$overlay/." "$root/"; done

# Units that fail or only cost time in a throwaway UML guest: consoles (the lab
# talks SSH only), periodic maintenance timers, udev (devtmpfs already provides
# /dev/ubd* and nothing in the guest waits for device units), and the "after an
# update of /usr" jobs that trixie runs on every fresh copy-on-write disk (~1 s).
mask=(getty@.service serial-getty@.service console-getty.service autovt@.service
      apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer
      e2scrub_reap.service fstrim.timer systemd-tmpfiles-clean.timer
      systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service
      systemd-udevd-control.socket systemd-udevd-kernel.socket
      systemd-pstore.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
      systemd-hwdb-update.service systemd-firstboot.service systemd-random-seed.service
      modprobe@.service kmod-static-nodes.service systemd-modules-load.service
      systemd-journal-flush.service systemd-sysusers.service systemd-tmpfiles-setup-dev.service
      systemd-update-utmp.service systemd-update-utmp-runlevel.service systemd-remount-fs.service
      systemd-logind.service systemd-user-sessions.service
      ldconfig.service systemd-journal-catalog-update.service systemd-update-done.service
      sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount
      sys-kernel-config.mount dev-hugepages.mount)
for unit in "${mask[@]}"; do ln -sfn /dev/null "$root/etc/systemd/system/$unit"; done
rm -f "$root"/etc/systemd/system/{getty,timers}.target.wants/*
# Generators run before any unit starts, one exec each; the lab needs none of them
# (the kernel mounts the root rw from the command line; swap is lab-setup's job).
mkdir -p "$root/etc/systemd/system-generators"
# Except postgresql-common's: it is what starts each cluster (postgresql@VER-NAME) at boot.
for gen in "$root"/lib/systemd/system-generators/*; do
  [[ ${gen##*/} == postgresql-generator ]] && continue
  ln -sfn /dev/null "$root/etc/systemd/system-generators/${gen##*/}"
done
ln -sfn /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
mkdir -p "$root/etc/systemd/system/sysinit.target.wants"
ln -sfn ../lab-setup.service "$root/etc/systemd/system/sysinit.target.wants/lab-setup.service"

# One host key for every guest (a throwaway lab; clients do not check it). Made
# here because generating keys at every boot costs seconds in a UML guest.
ssh-keygen -q -t ed25519 -N '' -C lab-guest -f "$root/etc/ssh/ssh_host_ed25519_key"
echo lab-guest >"$root/etc/hostname"   # replaced per boot by systemd.hostname=

mkfs.ext4 -q -L labroot -d "$root" "$work/image" "${image_size_mb}M" >&2
chmod 444 "$work/image"   # COW files record the backing file's mtime: never touch it
mv "$work/image" "$image"
drop_stale_images
echo "$image"
