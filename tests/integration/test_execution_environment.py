"""execution-environment.yml becomes a build context (scripts/ee-context.sh, `make ee`) that would
build an AWX execution environment holding this collection. The image itself cannot be built here
(no registry for the base image), so the steps of the context that concern the collection are
replayed on this machine instead: the galaxy stage's install, and the builder stage's introspection.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONTEXT = REPO / "build" / "ee" / "context"


def run(cmd, **kwargs):
    completed = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False,
                               stdin=subprocess.DEVNULL, **kwargs)
    assert completed.returncode == 0, "%s failed:\n%s\n%s" % (cmd, completed.stdout[-3000:], completed.stderr[-3000:])
    return completed


@pytest.fixture(scope="module")
def context():
    run([REPO / "scripts" / "ee-context.sh"])
    return CONTEXT


def test_the_ee_definition_is_version_3_and_pins_the_tested_tools():
    definition = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    pins = dict(line.split("==") for line in (REPO / "requirements-dev.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert definition["dependencies"]["ansible_core"]["package_pip"] == "ansible-core==" + pins["ansible-core"]
    assert definition["dependencies"]["ansible_runner"]["package_pip"] == "ansible-runner==" + pins["ansible-runner"]


def test_the_context_holds_the_containerfile_the_tarball_and_its_requirements(context):
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    tarball = context / "_build" / "collection" / ("dbfleet-memory-%s.tar.gz" % version)
    assert tarball.is_file()
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements == {"collections": [{"name": "collection/" + tarball.name, "type": "file"}]}
    containerfile = (context / "Containerfile").read_text()
    assert 'ANSIBLE_INSTALL_REFS="ansible-core==2.21.5 ansible-runner==2.4.3"' in containerfile
    assert "COPY _build /build\nWORKDIR /build" in containerfile
    assert 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml' in containerfile


def test_the_galaxy_stage_installs_the_collection_and_introspection_finds_no_dependency(context, tmp_path):
    # What the galaxy stage runs in /build (the context's _build), into a path of our own.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "none"), PYTHONPATH="")
    run(["ansible-galaxy", "collection", "install", "-r", "requirements.yml", "--collections-path",
         tmp_path / "collections"], cwd=context / "_build", env=env)
    installed = tmp_path / "collections" / "ansible_collections" / "dbfleet" / "memory"
    assert (installed / "roles" / "overcommit" / "tasks" / "main.yml").is_file()
    assert (installed / "plugins" / "modules" / "overcommit.py").is_file()
    # What the builder stage runs next: the collection asks for no Python or system package.
    introspected = run([sys.executable, context / "_build" / "scripts" / "introspect.py", "introspect",
                        tmp_path / "collections"])
    data = yaml.safe_load(introspected.stdout)
    assert data["python"] == [] and data["system"] == []


def checkout_copy(tmp_path: Path) -> Path:
    """A copy of the checkout's tracked and new files, to break its execution-environment.yml in."""
    copy = tmp_path / "checkout"
    files = subprocess.run(["git", "-C", REPO, "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            (copy / name).write_bytes((REPO / name).read_bytes())
            (copy / name).chmod((REPO / name).stat().st_mode)
    return copy


@pytest.mark.parametrize("broken, message", [
    # The galaxy stage would install a tarball the context does not hold (ansible-builder says nothing).
    (("name: collection/dbfleet-memory-0.1.0.tar.gz", "name: collection/dbfleet-memory-9.9.9.tar.gz"),
     "requirements.yml installs a tarball the context does not hold: collection/dbfleet-memory-9.9.9.tar.gz"),
    # A file to copy into the context that is not there (ansible-builder only prints "No matches").
    (("    dest: collection\n", "    dest: collection\n  - src: build/ee/collection/missing.tar.gz\n    dest: collection\n"),
     "ansible-builder could not copy a file execution-environment.yml names"),
])
def test_make_ee_fails_naming_the_tarball_its_context_lacks(tmp_path, broken, message):
    copy = checkout_copy(tmp_path)
    definition = copy / "execution-environment.yml"
    old, new = broken
    assert old in definition.read_text()
    definition.write_text(definition.read_text().replace(old, new))
    proc = subprocess.run([copy / "scripts" / "ee-context.sh"], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr[-3000:]
    assert "build context in" not in proc.stdout
