#!/usr/bin/env bash
# Installs the Debian packages the tests need (podman for molecule, debootstrap for
# images, user-mode-linux and ethtool for the lab, chromium for the report's browser
# test) and configures podman for this kind of machine.
# Idempotent and non-interactive: CI runs it as root with no standard input.
set -euo pipefail

PACKAGES=(
  podman runc uidmap            # molecule's container driver; runc because crun fails here
  debootstrap e2fsprogs         # building root filesystems and the lab's ext4 disk image
  user-mode-linux               # the lab's real, separate kernels
  iproute2 openssh-client       # the lab's network namespace and SSH to guests
  ethtool                       # the lab turns offloads off on its taps (else TCP stalls)
  strace                        # the boot-replay test records the real sysctl tools' writes
  chromium                      # the audit's report.html is checked in a real browser, headless and offline
  rsync make
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# crun fails on this machine's hybrid cgroups and on rlimits; runc with no default
# ulimits works. Written only when different so repeated runs touch nothing.
conf=/etc/containers/containers.conf
want='[engine]
runtime = "runc"

[containers]
default_ulimits = []
'
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$(printf '%s' "$want")" ]]; then
  mkdir -p /etc/containers
  printf '%s' "$want" >"$conf"
  echo "system-deps: wrote $conf"
fi
