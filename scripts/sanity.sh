#!/usr/bin/env bash
# Runs `ansible-test sanity` on a copy of the collection.
#
# ansible-test runs with its own pins (which conflict with our dev pins) from its own
# venv, and builds one venv per sanity test; it bootstraps pip in those with a get-pip.py
# from a host this machine cannot reach, so our stand-in is placed where it caches it.
# ansible-test must run from inside ansible_collections/NAMESPACE/NAME and resolves
# symlinks, so it gets a copy of the collection's tracked and new files.
# DBFLEET_CORE_VENV names another venv whose ansible-core (and Python) to test with
# (scripts/compat.sh uses it for the oldest ansible-core we claim); default: the dev venv.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}
dev_venv=${DBFLEET_CORE_VENV:-$("$here/scripts/venv.sh")}
core_version=$("$dev_venv/bin/python" -c 'import ansible.release; print(ansible.release.__version__)')
reqs=$("$dev_venv/bin/python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_data", "requirements"))')
python=$("$dev_venv/bin/python" -c 'import sys, os; print(os.path.realpath(sys._base_executable))')

key=$( (echo "$core_version"; "$python" -V; cat "$reqs"/sanity.*.txt) | sha256sum | cut -c1-12)
venv=$cache/venv-sanity-$key
if [[ ! -f $venv/.complete ]]; then
  echo "sanity.sh: building $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  req_args=()
  for file in "$reqs"/sanity.*.txt; do req_args+=(-r "$file"); done
  "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$core_version" "${req_args[@]}" >&2
  touch "$venv/.complete"
fi

pip_version=$(grep -oP "^\s+pip='\K[0-9.]+" "$venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py)
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$get_pip")"
# Atomically: `make compat` and `make sanity` may run at once and read this same file.
cp "$here/scripts/ansible-test-get-pip.py" "$get_pip.$$"
mv -f "$get_pip.$$" "$get_pip"

dest=$cache/sanity/$(printf '%s' "$here" | sha256sum | cut -c1-12)-$core_version/ansible_collections/dbfleet/memory
rm -rf "$dest"
mkdir -p "$dest"
# Only what ships in the collection (galaxy.yml build_ignore keeps the rest out): the
# lab, molecule scenarios, bench and scripts are our tooling, linted by ansible-lint.
git -C "$here" ls-files -co --exclude-standard -z \
  | grep -zvE '^(bench|molecule|scripts|tests/lab|tests/compat|docs/sphinx|\.ci)/' \
  | rsync -a --from0 --files-from=- "$here/" "$dest/"
cd "$dest"
version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PATH=$venv/bin:$PATH exec "$venv/bin/ansible-test" sanity --color=no --python "$version" "$@"
