# The two commands a newcomer needs: `make demo` and `make test`. Every target installs
# what it needs itself (Debian packages, the venv, images), cached outside the repo.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
IN_ENV := scripts/in-env.sh

.PHONY: test demo deps unit units build-check ee sanity compat lint importer docs docs-check changelog-lint metrics molecule lab-test lab-sizing bench audit-demo clean-cache

test: deps unit units build-check ee sanity compat lint importer docs-check changelog-lint metrics molecule lab-test
	@echo "make test: all suites passed"

deps:
	scripts/system-deps.sh
	$(IN_ENV) true

unit: deps
	$(IN_ENV) pytest -p no:cacheprovider tests/unit

# The same unit tests with ansible-test units, on the built tarball installed as a user would have it
# (tests/unit/requirements.txt; no checkout on any path).
units: deps
	scripts/units.sh

# The built tarball installs and its module answers, as a user would run it; the role and the
# audit under ansible-runner against sshd containers (needs podman); the EE build context.
build-check: deps
	$(IN_ENV) pytest -p no:cacheprovider tests/integration

# execution-environment.yml -> an image build context in build/ee/context/ (ansible-builder create).
# The image is not built: no registry here to pull its base image from.
ee: deps
	$(IN_ENV) scripts/ee-context.sh

# ansible-test sanity on the whole checkout as a collection: plugins and roles, and the bench,
# molecule and scripts alike (scripts/sanity.sh).
sanity: deps
	scripts/sanity.sh

# requires_ansible in meta/runtime.yml, backed by a test: unit tests and sanity against the
# oldest ansible-core it claims, in a venv of its own (`unit` and `sanity` run the newest).
compat: deps
	scripts/compat.sh

# Plain ansible-lint, production profile, with no collections path set beforehand (.ansible-lint).
lint: deps
	scripts/lint.sh

# galaxy-importer (what Galaxy and Automation Hub run on upload) on the built tarball, flake8 on;
# its ansible-test step needs a container registry and is off (scripts/galaxy-importer.sh).
importer: deps
	scripts/galaxy-importer.sh

# The docs site (modules, filters, role, guides) into build/docs/, offline.
docs: deps
	scripts/docs.sh

# What `make test` checks of the docs: antsibull-docs' linter on every plugin, role and guide,
# then the site build; any finding or Sphinx warning fails.
docs-check: deps
	scripts/docs.sh --lint

changelog-lint: deps
	$(IN_ENV) antsibull-changelog lint

# The alert rules under promtool (check and unit tests), and the textfile the role and the audit
# write, read by Debian's node_exporter in a container and scraped with curl (needs podman).
metrics: deps
	$(IN_ENV) pytest -p no:cacheprovider tests/metrics

molecule: deps
	scripts/molecule.sh

lab-test: deps
	tests/lab/run-tests.sh

# The calibration of sizing from the database on real PostgreSQL 15 and MariaDB 10.11 (the lab's
# db flavour): the table of estimate against measured Committed_AS in the sizing guide. About 9
# minutes; not in `make test`, which runs the mode-2 proofs built on it (tests/lab/test_db_sizing.py).
lab-sizing: deps
	tests/lab/run-tests.sh tests/lab/test_db_calibration.py

# Boots a real kernel (UML) with Debian's PostgreSQL and MariaDB, runs a runaway query before and
# after the overcommit and oom_priority roles (applied over SSH), prints before/after, tears down.
demo: deps
	$(IN_ENV) python tests/lab/demo.py

clean-cache:
	rm -rf $${DBFLEET_CACHE:-/var/cache/dbfleet}

# Fleet benchmark over real SSH to sshd containers: ping floor, our role (first and no-op),
# the one-task-per-key baseline with and without facts, and the audit, shuffled in every
# round, 5 rounds at each of 4, 32, 8 and 16 hosts (SIZES=...). Not part of `make test`
# (about 40 minutes on 2 cores); writes bench/results/latest.json.
SIZES ?= 4,32,8,16
bench: deps
	$(IN_ENV) python bench/fleet_bench.py bench --sizes $(SIZES)

# The audit playbook on a demo fleet: sshd containers, each reading one memory shape of
# bench/audit_demo/meminfo/, plus a host that cannot be reached. Writes bench/results/audit-demo/.
audit-demo: deps
	$(IN_ENV) python bench/audit_demo.py
