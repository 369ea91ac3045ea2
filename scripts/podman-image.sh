#!/usr/bin/env bash
# Ensures the podman image of a Debian suite exists, imported from the project's one
# rootfs recipe (scripts/build-rootfs.sh) with systemd as its default command, and
# prints its name. The image carries the tarball's name (which holds the recipe hash)
# as a label, so it is re-imported exactly when the recipe changes. Used by molecule
# (systemd as PID 1) and the bench (which runs sshd in it instead).
# Usage: podman-image.sh SUITE   (bookworm | trixie)
set -euo pipefail
suite=${1:?usage: podman-image.sh SUITE}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v podman >/dev/null || { echo "podman-image.sh: podman is missing; run scripts/system-deps.sh" >&2; exit 1; }
tarball=$("$here/scripts/build-rootfs.sh" "$suite")
recipe=$(basename "$tarball" .tar)
image=localhost/dbfleet-debian:$suite
have=$(podman image inspect --format '{{ index .Labels "dbfleet.recipe" }}' "$image" 2>/dev/null || true)
if [[ $have != "$recipe" ]]; then
  echo "podman-image.sh: importing $image from $tarball" >&2
  podman import --quiet --change CMD=/sbin/init --change "LABEL=dbfleet.recipe=$recipe" "$tarball" "$image" >/dev/null
fi
echo "$image"
