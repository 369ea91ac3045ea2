#!/usr/bin/env bash
# Ensures the molecule images exist: Debian 12 and 13 imported from the project's one
# rootfs recipe (scripts/build-rootfs.sh), systemd as PID 1. Each image carries the
# tarball's name (which holds the recipe hash) as a label, so an image is re-imported
# exactly when the recipe changes. Molecule runs this as every scenario's dependency step.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
command -v podman >/dev/null || { echo "images.sh: podman is missing; run scripts/system-deps.sh" >&2; exit 1; }
for suite in bookworm trixie; do
  tarball=$("$here/scripts/build-rootfs.sh" "$suite")
  recipe=$(basename "$tarball" .tar)
  image=localhost/dbfleet-molecule:$suite
  have=$(podman image inspect --format '{{ index .Labels "dbfleet.recipe" }}' "$image" 2>/dev/null || true)
  if [[ $have != "$recipe" ]]; then
    echo "images.sh: importing $image from $tarball" >&2
    podman import --quiet --change CMD=/sbin/init --change "LABEL=dbfleet.recipe=$recipe" "$tarball" "$image" >/dev/null
  fi
done
