#!/usr/bin/env bash
# Prints the path of a virtualenv with a requirements file installed, building it first if
# needed. The venv lives in a cache outside the repo, keyed by a hash of the requirements
# and the interpreter, so it is rebuilt exactly when the recipe changes.
# Usage: venv.sh [REQUIREMENTS [PYTHON_MINOR]]
#   REQUIREMENTS   default requirements-dev.txt (the project's tools, on the newest Python >= 3.12)
#   PYTHON_MINOR   e.g. 3.11: use exactly that Python (for testing an older ansible-core's controller)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DBFLEET_CACHE:-/var/cache/dbfleet}
req=$(realpath "${1:-$here/requirements-dev.txt}")
want_minor=${2:-}

find_python() {
  # pyenv's shims for unselected versions do not run; use the real binaries.
  local root candidate
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  if [[ -n $want_minor ]]; then
    for candidate in "$root"/versions/"$want_minor".*/bin/python3 /usr/bin/python"$want_minor"; do
      [[ -x $candidate ]] && { echo "$candidate"; return 0; }
    done
    echo "venv.sh: no Python $want_minor found (pyenv versions or /usr/bin)" >&2
    return 1
  fi
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
# The dev venv keeps its historical name so existing caches stay valid.
name=$(basename "$req" .txt)
name=${name#requirements-}
[[ $name == dev ]] && venv=$cache/venv-$key || venv=$cache/venv-$name-$key
if [[ ! -f $venv/.complete ]]; then
  echo "venv.sh: building $venv with $python" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  touch "$venv/.complete"
fi
echo "$venv"
