#!/usr/bin/env bash
# Prints a directory that holds ansible_collections/dbfleet/memory as a symlink to this
# checkout, for ANSIBLE_COLLECTIONS_PATH and for importing the plugins in tests. It lives
# outside the repo (a link inside it would make linters and pytest recurse into itself)
# and is keyed by the checkout's path so several clones do not collide.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}
root=$cache/collections/$(printf '%s' "$here" | sha256sum | cut -c1-12)
mkdir -p "$root/ansible_collections/dbfleet"
ln -sfn "$here" "$root/ansible_collections/dbfleet/memory"
echo "$root"
