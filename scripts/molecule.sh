#!/usr/bin/env bash
# Runs every molecule scenario (called by `make molecule`). Ensures what they need first:
# podman and debootstrap (system-deps.sh), the venv, the images (each scenario's
# dependency step imports them, cached by recipe hash). Usage: scripts/molecule.sh [SCENARIO...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ $(id -u) == 0 ]]; then
  "$here/scripts/system-deps.sh"
fi
command -v podman >/dev/null || { echo "molecule.sh: podman is missing (run scripts/system-deps.sh as root)" >&2; exit 1; }
podman info >/dev/null || { echo "molecule.sh: podman does not work here" >&2; exit 1; }
cd "$here"
started=$SECONDS
if (($#)); then
  for scenario in "$@"; do
    "$here/scripts/in-env.sh" molecule test -s "$scenario"
  done
else
  "$here/scripts/in-env.sh" molecule test --all
fi
echo "molecule.sh: all scenarios passed in $((SECONDS - started)) s"
