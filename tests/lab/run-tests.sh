#!/usr/bin/env bash
# The lab suite (`make lab-test`): real kernels in User-mode Linux guests.
# Builds whatever is missing (Debian packages, rootfs, guest image, venv; all cached
# outside the repo) and runs pytest on tests/lab. Extra arguments go to pytest, e.g.
#   tests/lab/run-tests.sh -k commit_limit
# Fails loudly when it cannot run (not root, no UML): the lab is never skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

if [[ $(id -u) -ne 0 ]]; then
  echo "run-tests.sh: the lab needs root (network namespaces, taps, UML guests)" >&2
  exit 2
fi
scripts/system-deps.sh
if [[ ! -x /usr/bin/linux.uml ]]; then
  echo "run-tests.sh: /usr/bin/linux.uml missing after scripts/system-deps.sh" >&2
  exit 2
fi
scripts/build-rootfs.sh bookworm >/dev/null
image=$("$here/image/build-image.sh")
echo "run-tests.sh: guest image $image"
venv=$(scripts/venv.sh)

# Console logs of every guest are kept for post-mortems (the run dirs are removed).
export DBFLEET_LAB_LOGS=${DBFLEET_LAB_LOGS:-$repo/reports/lab}
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the repo
start=$(date +%s)
status=0
# Test paths given: run those; otherwise the whole lab suite (with any pytest options) but the
# calibration of the database sizing formulas, which takes about 9 minutes and would carry `make
# test` past its time budget: `make lab-sizing` runs it (test_db_calibration.py).
targets=("$here" "--ignore=$here/test_db_calibration.py")
for arg in "$@"; do [[ $arg == tests/* || $arg == /* ]] && targets=(); done
# in-env.sh makes this checkout importable as the collection dbfleet.memory (the
# role-driven lab tests import its module_utils); pytest is the venv's.
scripts/in-env.sh "$venv/bin/pytest" -p no:cacheprovider -rA --durations=15 "${targets[@]}" "$@" </dev/null || status=$?
echo "run-tests.sh: lab suite finished in $(( $(date +%s) - start )) s with status $status"
exit $status
