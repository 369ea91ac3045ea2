#!/usr/bin/env bash
# Runs galaxy-importer, what Galaxy and Automation Hub run on an uploaded collection, on the tarball
# `ansible-galaxy collection build` makes of this checkout: ansible-doc on every plugin, the metadata
# and changelog checks, ansible-lint (production profile) and flake8 on every plugin. Its
# `ansible-test sanity` step runs in a container image pulled from a registry, which this machine
# cannot reach, so it is off here (make sanity runs ansible-test sanity on the whole checkout).
# galaxy-importer reports findings as warnings and still "completes successfully"; this script fails
# on any warning or error that tests/importer/known-warnings.txt does not list with its reason, and
# on an entry there that no warning matches any more.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$here/scripts/venv.sh" "$here/requirements-importer.txt")
known=$here/tests/importer/known-warnings.txt
work=$(mktemp -d /tmp/dbfleet-importer.XXXXXX)
trap 'rm -rf "$work"' EXIT
started=$SECONDS
export PATH=$venv/bin:$PATH HOME=$work/home ANSIBLE_LOCAL_TEMP=$work/ansible-tmp
unset ANSIBLE_COLLECTIONS_PATH PYTHONPATH
mkdir -p "$HOME"
ansible-galaxy collection build --output-path "$work" "$here" >/dev/null
tarballs=("$work"/dbfleet-memory-*.tar.gz)
# The settings Galaxy's own import uses, flake8 included; the container-bound ansible-test step off.
export GALAXY_IMPORTER_RUN_FLAKE8=true GALAXY_IMPORTER_RUN_ANSIBLE_LINT=true GALAXY_IMPORTER_RUN_ANSIBLE_DOC=true \
  GALAXY_IMPORTER_CHECK_CHANGELOG=true GALAXY_IMPORTER_RUN_ANSIBLE_TEST=false \
  GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP=$work/ansible-tmp GALAXY_IMPORTER_TMP_ROOT_DIR=$work
# It writes importer_result.json into the working directory.
cd "$work"
if ! python -m galaxy_importer.main "${tarballs[0]}" >"$work/import.log" 2>&1; then
  cat "$work/import.log" >&2
  echo "galaxy-importer.sh: galaxy-importer failed on $(basename "${tarballs[0]}")" >&2
  exit 1
fi
grep -q "^Importer processing completed successfully" "$work/import.log" \
  || { cat "$work/import.log" >&2; echo "galaxy-importer.sh: the import did not complete" >&2; exit 1; }

python - "$work/import.log" "$known" <<'PY'
import re
import sys

log_path, known_path = sys.argv[1:]
known = []
for line in open(known_path):
    line = line.rstrip("\n")
    if line and not line.startswith("#"):
        pattern, _, reason = line.partition(" # ")
        assert reason.strip(), "%s: every entry needs a reason: %r" % (known_path, line)
        known.append((re.compile(pattern), line))
findings = [line.rstrip("\n") for line in open(log_path) if line.startswith(("WARNING", "ERROR", "CRITICAL"))]
used, unexpected = set(), []
for finding in findings:
    level, _, text = finding.partition(": ")
    matches = [entry for pattern, entry in known if level == "WARNING" and pattern.search(text)]
    used.update(matches)
    if not matches:
        unexpected.append(finding)
stale = [entry for _pattern, entry in known if entry not in used]
for finding in unexpected:
    print("galaxy-importer.sh: unexpected %s" % finding, file=sys.stderr)
for entry in stale:
    print("galaxy-importer.sh: no warning matches this entry of %s any more: %s" % (known_path, entry), file=sys.stderr)
print("galaxy-importer.sh: %d warning(s), %d of them listed with a reason in %s"
      % (len(findings), len(findings) - len(unexpected), known_path))
sys.exit(1 if unexpected or stale else 0)
PY
echo "galaxy-importer.sh: $(basename "${tarballs[0]}") imported in $((SECONDS - started)) s"
