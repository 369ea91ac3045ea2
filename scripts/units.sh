#!/usr/bin/env bash
# Runs `ansible-test units` on the collection as a user gets it: builds the tarball, installs it
# into a fresh collections tree, and runs the unit tests inside the installed copy, in a venv that
# ansible-test builds with tests/unit/requirements.txt. So the tests can only import what the
# tarball holds, by the names it is installed under (no checkout, no PYTHONPATH). `make unit`
# runs the same tests on the checkout, faster.
# ansible-test keeps its venvs under $HOME/.ansible/test: each checkout and ansible-core version
# gets a HOME of its own under the cache, kept between runs, and a lock so runs of one checkout queue.
# Usage: scripts/units.sh [ANSIBLE-TEST UNITS ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}
venv=$("$here/scripts/venv.sh")
core_version=$("$venv/bin/python" -c 'import ansible.release; print(ansible.release.__version__)')
python_version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

checkout_key=$(printf '%s' "$here" | sha256sum | cut -c1-12)
export HOME=$cache/ansible-test-home/$checkout_key-$core_version-units
mkdir -p "$HOME"
exec 9>"$HOME/.lock"
flock 9
# ansible-test bootstraps pip in its venvs with a get-pip.py from a host this machine cannot reach;
# our stand-in goes where it caches that file (as scripts/sanity.sh does).
pip_version=$(grep -oP "^\s+pip='\K[0-9.]+" "$venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py)
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$get_pip")"
cp "$here/scripts/ansible-test-get-pip.py" "$get_pip.$$"
mv -f "$get_pip.$$" "$get_pip"

work=$(mktemp -d /tmp/dbfleet-units.XXXXXX)
trap 'rm -rf "$work"' EXIT
started=$SECONDS
export PATH=$venv/bin:$PATH
unset ANSIBLE_COLLECTIONS_PATH PYTHONPATH
ansible-galaxy collection build --output-path "$work" "$here" >/dev/null
tarballs=("$work"/dbfleet-memory-*.tar.gz)
ANSIBLE_COLLECTIONS_PATH=$work/none ansible-galaxy collection install -p "$work/collections" "${tarballs[0]}" >/dev/null
installed=$work/collections/ansible_collections/dbfleet/memory
[[ -f $installed/tests/unit/requirements.txt ]] \
  || { echo "units.sh: the tarball has no tests/unit/requirements.txt" >&2; exit 1; }
cd "$installed"
ansible-test units --color=no --venv --python "$python_version" "$@"
echo "units.sh: ansible-test units on the installed $(basename "${tarballs[0]}") passed in $((SECONDS - started)) s"
