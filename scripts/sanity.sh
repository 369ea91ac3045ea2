#!/usr/bin/env bash
# Runs `ansible-test sanity` on a copy of the collection.
#
# ansible-test runs with its own pins (which conflict with our dev pins) from its own
# venv, and builds one venv per sanity test; it bootstraps pip in those with a get-pip.py
# from a host this machine cannot reach, so our stand-in is placed where it caches it.
# ansible-test must run from inside ansible_collections/NAMESPACE/NAME and resolves
# symlinks, so it gets a copy of the whole checkout's tracked and new files: the shipped
# collection and the development folders (bench, molecule, scripts, tests/lab) alike, as
# ansible-test sees a collection checkout. tests/sanity/ignore-X.Y.txt lists, with a reason
# each, what cannot be fixed.
# ansible-test keeps its venvs under $HOME/.ansible/test, and two runs sharing one collide
# ("Directory not empty"): each checkout and ansible-core version gets a HOME of its own under
# the cache, kept between runs (the venvs are reused), and a lock so runs of one checkout queue.
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

# ansible-test skips (and passes) its shellcheck test when shellcheck is missing: never here.
command -v shellcheck >/dev/null \
  || { echo "sanity.sh: shellcheck is missing (run scripts/system-deps.sh as root); ansible-test would skip its test" >&2; exit 1; }

checkout_key=$(printf '%s' "$here" | sha256sum | cut -c1-12)
export HOME=$cache/ansible-test-home/$checkout_key-$core_version
mkdir -p "$HOME"
exec 9>"$HOME/.lock"
flock 9

pip_version=$(grep -oP "^\s+pip='\K[0-9.]+" "$venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py)
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$get_pip")"
# Atomically: `make compat` and `make sanity` may run at once and read this same file.
cp "$here/scripts/ansible-test-get-pip.py" "$get_pip.$$"
mv -f "$get_pip.$$" "$get_pip"

dest=$cache/sanity/$checkout_key-$core_version/ansible_collections/dbfleet/memory
rm -rf "$dest"
mkdir -p "$dest"
git -C "$here" ls-files -co --exclude-standard -z \
  | rsync -a --from0 --files-from=- "$here/" "$dest/"
cd "$dest"
version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PATH=$venv/bin:$PATH exec "$venv/bin/ansible-test" sanity --color=no --python "$version" "$@"
