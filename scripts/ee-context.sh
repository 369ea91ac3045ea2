#!/usr/bin/env bash
# Turns execution-environment.yml into an image build context with `ansible-builder create`:
# builds the collection tarball into build/ee/collection/ (the EE file installs it from there),
# then writes the context into build/ee/context/ (build/ is not committed). It stops there:
# building the image needs the base image from a registry, and this machine has none.
# Run inside the venv: scripts/in-env.sh scripts/ee-context.sh   (make ee)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$here/build/ee
version=$(sed -n 's/^version: *//p' "$here/galaxy.yml")
tarball=dbfleet-memory-$version.tar.gz
grep -q "build/ee/collection/$tarball\$" "$here/execution-environment.yml" \
  || { echo "ee-context.sh: execution-environment.yml does not install $tarball (galaxy.yml's version)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/collection"
ansible-galaxy collection build --output-path "$out/collection" "$here" >/dev/null
ansible-builder create --file "$here/execution-environment.yml" --context "$out/context" \
  --output-filename Containerfile >/dev/null
echo "ee-context.sh: build context in $out/context (podman build -t dbfleet-memory-ee $out/context)"
