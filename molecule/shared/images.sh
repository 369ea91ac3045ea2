#!/usr/bin/env bash
# Molecule's dependency step: the Debian 12 and 13 images the platforms use
# (scripts/podman-image.sh imports them from the project's rootfs recipe).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
for suite in bookworm trixie; do
  "$here/scripts/podman-image.sh" "$suite" >/dev/null
done
