#!/usr/bin/env bash
# Prints the path of a Python >= 3.12 virtualenv with requirements-dev.txt installed,
# building it first if needed. The venv lives in a cache outside the repo, keyed by a
# hash of the requirements, so it is rebuilt exactly when the recipe changes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}
req=$here/requirements-dev.txt

find_python() {
  # pyenv's shims for unselected versions do not run; use the real binaries.
  local root candidate
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for candidate in "$root"/versions/3.13.*/bin/python3 "$root"/versions/3.12.*/bin/python3 \
                   /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3; do
    [[ -x $candidate ]] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "venv.sh: no Python >= 3.12 found (ansible-core 2.21 needs it)" >&2
  return 1
}

python=$(find_python)
key=$( (cat "$req"; "$python" -V) | sha256sum | cut -c1-12)
venv=$cache/venv-$key
if [[ ! -x $venv/bin/ansible-playbook || ! -f $venv/.complete ]]; then
  echo "venv.sh: building $venv with $python" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  touch "$venv/.complete"
fi
echo "$venv"
