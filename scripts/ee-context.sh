#!/usr/bin/env bash
# Turns execution-environment.yml into an image build context with `ansible-builder create`:
# builds the collection tarball into build/ee/collection/ (the EE file installs it from there),
# then writes the context into build/ee/context/ (build/ is not committed). It stops there:
# building the image needs the base image from a registry, and this machine has none.
# ansible-builder itself exits 0 when a file the definition names is missing (it only prints
# "No matches for ..."), so this script then checks the context: every collection tarball its
# requirements.yml installs must be in it, or it fails naming the tarball.
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
[[ -f $out/collection/$tarball ]] \
  || { echo "ee-context.sh: ansible-galaxy collection build did not write $out/collection/$tarball" >&2; exit 1; }
log=$(ansible-builder create --file "$here/execution-environment.yml" --context "$out/context" \
  --output-filename Containerfile 2>&1) || { echo "$log" >&2; exit 1; }
if grep -q "No matches for" <<<"$log"; then
  echo "ee-context.sh: ansible-builder could not copy a file execution-environment.yml names:" >&2
  grep "No matches for" <<<"$log" >&2
  exit 1
fi
# The galaxy stage runs `ansible-galaxy collection install -r requirements.yml` in _build/.
missing=$(python3 - "$out/context/_build" <<'PY'
import os, sys, yaml
build = sys.argv[1]
with open(os.path.join(build, "requirements.yml")) as handle:
    wanted = (yaml.safe_load(handle) or {}).get("collections") or []
for item in wanted:
    if isinstance(item, dict) and item.get("type") == "file" and not os.path.isfile(os.path.join(build, item["name"])):
        print(item["name"])
PY
)
if [[ -n $missing ]]; then
  echo "ee-context.sh: the build context's requirements.yml installs a tarball the context does not hold:" \
       "$missing (in $out/context/_build); execution-environment.yml and galaxy.yml's version disagree" >&2
  exit 1
fi
echo "ee-context.sh: build context in $out/context (podman build -t dbfleet-memory-ee $out/context)"
