"""The changelog tells the truth about what each release holds."""

from __future__ import annotations

from pathlib import Path

import yaml

COLLECTION = Path(__file__).resolve().parents[3]


def releases():
    return yaml.safe_load((COLLECTION / "changelogs" / "changelog.yaml").read_text())["releases"]


def announced(kind):
    return {item["name"] for release in releases().values() for item in release.get(kind) or []}


def version(text):
    return tuple(int(part) for part in text.split("."))


def test_every_module_is_announced_in_the_release_that_added_it():
    """Listed in its release, or added after the last one: antsibull-changelog lists a module at the release
    its version_added names."""
    latest = max(map(version, releases()))
    modules = {path.stem: path for path in (COLLECTION / "plugins" / "modules").glob("*.py") if path.stem != "__init__"}
    unreleased = {name for name, path in modules.items()
                  if version(yaml.safe_load(path.read_text().split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])
                             ["version_added"]) > latest}
    assert announced("modules") == set(modules) - unreleased


def test_every_filter_role_and_playbook_is_announced():
    filters = {path.stem for path in (COLLECTION / "plugins" / "filter").glob("*.py") if path.stem != "__init__"}
    assert {item["name"] for r in releases().values() for item in (r.get("plugins") or {}).get("filter", [])} == filters
    objects = [r.get("objects") or {} for r in releases().values()]
    assert {item["name"] for o in objects for item in o.get("role", [])} == {p.name for p in (COLLECTION / "roles").iterdir()}
    assert {item["name"] for o in objects for item in o.get("playbook", [])} == {
        p.stem for p in (COLLECTION / "playbooks").glob("*.yml")}


def test_the_first_release_fixes_nothing_because_nothing_came_before_it():
    first = releases()[min(releases(), key=version)]
    assert "bugfixes" not in first["changes"]
    assert first["changes"]["release_summary"].startswith("First release.")
