#!/usr/bin/env bash
# Backs the claim in meta/runtime.yml (requires_ansible: ">=X.Y.0") with a test: runs the
# unit tests and ansible-test sanity against ansible-core X.Y, in a venv of its own on the
# controller Python its pin file names. The newest ansible-core (the dev venv) is what
# `make unit` and `make sanity` run. Fails when the claim names a version no pin file
# covers, so the claim cannot drift from what is tested.
# Usage: scripts/compat.sh [unit|sanity]   (default: both)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
oldest=$(grep -oP '^requires_ansible:\s*"?>=\s*\K[0-9]+\.[0-9]+' "$here/meta/runtime.yml") \
  || { echo "compat.sh: meta/runtime.yml has no requires_ansible: \">=X.Y.Z\"" >&2; exit 1; }
pins=$here/tests/compat/ansible-core-$oldest.txt
[[ -f $pins ]] || { echo "compat.sh: requires_ansible says >=$oldest but $pins does not exist" >&2; exit 1; }
role_min=$(grep -oP '^\s*min_ansible_version:\s*"?\K[0-9.]+' "$here/roles/overcommit/meta/main.yml")
[[ $role_min == "$oldest" ]] \
  || { echo "compat.sh: roles/overcommit/meta/main.yml says $role_min, meta/runtime.yml says $oldest" >&2; exit 1; }
# The pin file names the controller Python to test on ("# controller-python: 3.N").
python_minor=$(grep -oP '^# controller-python: \K3\.[0-9]+' "$pins") \
  || { echo "compat.sh: $pins names no '# controller-python: 3.N'" >&2; exit 1; }
venv=$("$here/scripts/venv.sh" "$pins" "$python_minor")
core=$("$venv/bin/python" -c 'import ansible.release; print(ansible.release.__version__)')

started=$SECONDS
what=${1:-all}
if [[ $what == all || $what == unit ]]; then
  collections=$("$here/scripts/collection-path.sh")
  echo "compat.sh: unit tests with ansible-core $core on $("$venv/bin/python" -V)" >&2
  (cd "$here" && PYTHONDONTWRITEBYTECODE=1 ANSIBLE_COLLECTIONS_PATH=$collections \
     PYTHONPATH=$collections${PYTHONPATH:+:$PYTHONPATH} "$venv/bin/pytest" -p no:cacheprovider -q tests/unit)
fi
if [[ $what == all || $what == sanity ]]; then
  echo "compat.sh: ansible-test sanity with ansible-core $core" >&2
  DBFLEET_CORE_VENV=$venv "$here/scripts/sanity.sh"
fi
echo "compat.sh: ansible-core $core (requires_ansible >=$oldest) passed in $((SECONDS - started)) s"
