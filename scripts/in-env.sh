#!/usr/bin/env bash
# Runs a command with the project's venv first on PATH and this checkout importable and
# usable as the collection dbfleet.memory. Usage: scripts/in-env.sh CMD [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$here/scripts/venv.sh")
collections=$("$here/scripts/collection-path.sh")
export PATH=$venv/bin:$PATH
export VIRTUAL_ENV=$venv
export ANSIBLE_COLLECTIONS_PATH=$collections
export PYTHONPATH=$collections${PYTHONPATH:+:$PYTHONPATH}
# Keep tool caches out of the checkout.
export PYTHONDONTWRITEBYTECODE=1
export ANSIBLE_LOCAL_TEMP=${ANSIBLE_LOCAL_TEMP:-/tmp/dbfleet-ansible-local}
# localhost plays must not use interpreter discovery: it finds a broken pyenv shim here.
export DBFLEET_CONTROLLER_PYTHON=$venv/bin/python
exec "$@"
