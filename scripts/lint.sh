#!/usr/bin/env bash
# Runs ansible-lint (production profile) the way editors, pre-commit and CI run it on a plain checkout:
# from the project's venv, but with no collections path or PYTHONPATH set beforehand, so it must find
# dbfleet.memory itself (.ansible-lint: it installs the checkout into .ansible/). Usage: scripts/lint.sh [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$here/scripts/venv.sh")
cd "$here"
exec env -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_COLLECTIONS_PATHS -u PYTHONPATH PATH="$venv/bin:$PATH" \
  ansible-lint --profile production "$@"
