#!/usr/bin/env bash
# Builds the docs site (every module, filter and role from their own docs, plus the guides
# of docs/docsite/) into build/docs/, which is not committed. Offline: the tools come from
# a cached venv (requirements-docs.txt); the build itself runs without a network when the
# machine allows a network namespace, so a step that would download something fails here.
# Usage: scripts/docs.sh [--lint]
#   --lint   first lint the plugin and role docs and the guides (antsibull-docs
#            lint-collection-docs); any finding, and any Sphinx warning, fails.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}
venv=$("$here/scripts/venv.sh" "$here/requirements-docs.txt")
collections=$("$here/scripts/collection-path.sh")
export PATH=$venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$collections PYTHONDONTWRITEBYTECODE=1
export ANSIBLE_LOCAL_TEMP=${ANSIBLE_LOCAL_TEMP:-/tmp/dbfleet-ansible-local}

offline=()
if unshare --net true 2>/dev/null; then
  offline=(unshare --net)
else
  echo "docs.sh: no network namespace here; building without one" >&2
fi

started=$SECONDS
if [[ ${1:-} == --lint ]]; then
  # --plugin-docs: render and validate every plugin's and role's docs, and every reference
  # in them; --check-extra-docs-refs: the same for the references in the guides.
  "${offline[@]}" antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs \
    --validate-collection-refs all --disallow-unknown-collection-refs "$collections/ansible_collections/dbfleet/memory"
fi

# antsibull-docs insists on a directory only its owner may write.
work=$cache/docs/$(printf '%s' "$here" | sha256sum | cut -c1-12)
rm -rf "$work/rst"
mkdir -p "$work/rst"
chmod 700 "$work" "$work/rst"
"${offline[@]}" antsibull-docs collection --use-current --fail-on-error --cleanup everything \
  --dest-dir "$work/rst" dbfleet.memory
cp "$here/docs/sphinx/index.rst" "$here/docs/sphinx/action_plugins.rst" "$work/rst/"
rm -rf "$here/build/docs"
# -W --keep-going: every warning is reported, and any warning fails the build.
"${offline[@]}" sphinx-build -q -b html -c "$here/docs/sphinx" -d "$work/doctrees" -W --keep-going -n \
  "$work/rst" "$here/build/docs"
echo "docs.sh: built $here/build/docs/index.html in $((SECONDS - started)) s"
