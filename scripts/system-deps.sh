#!/usr/bin/env bash
# Installs the Debian packages the tests need (podman for molecule, debootstrap for
# images, user-mode-linux and ethtool for the lab, chromium for the report's browser
# test, promtool and node_exporter for the metrics, shellcheck for sanity) and configures
# podman for this kind of machine.
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
  prometheus                    # promtool: the alert rules' unit tests (promtool test rules)
  prometheus-node-exporter      # the textfile the role writes, read by Debian's own node_exporter in a container
  curl                          # scrapes that node_exporter as Prometheus would
  shellcheck                    # ansible-test sanity's shellcheck test (it is skipped, not failed, without it)
  rsync make
)
# Services these packages would start on this machine: the tests run their own, in containers.
SERVICES=(prometheus prometheus-node-exporter)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
  # Installed now by this script: stop and disable what the packages started (with systemd as init),
  # so no Prometheus or node_exporter of ours listens on this machine's ports 9090 and 9100.
  if [[ -d /run/systemd/system ]]; then
    for service in "${SERVICES[@]}"; do
      if [[ " ${missing[*]} " == *" $service "* ]]; then
        systemctl disable --now "$service" >/dev/null 2>&1 || true
      fi
    done
  fi
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
