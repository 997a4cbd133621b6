"""The locks (requirements/serve.lock for the Docker image, requirements/dev.lock for make): every package pinned to one
version and hashed, agreeing with pyproject.toml and with each other, and used by the Makefile and the Dockerfile
(whose base image is pinned by digest)."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from tests.support.paths import ROOT

# name==version [; marker] then --hash lines (uv pip compile --generate-hashes --universal)
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)(?: ; (.+?))? \\$")
LEFT_OUT = {"opencv-python-headless"}  # the contrib build provides cv2 (see the Makefile)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(name: str) -> dict[tuple[str, str | None], tuple[str, list[str]]]:
    """{(package, marker): (version, hashes)}"""
    entries, key = {}, None
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if m := PIN.match(line):
            key = (_canonical(m[1]), m[3])
            assert key not in entries, f"{name}: {key} twice"
            entries[key] = (m[2], [])
        elif line.strip().startswith("--hash=sha256:"):
            assert key is not None, f"{name}: a hash before any package"
            digest = line.strip().removeprefix("--hash=sha256:").rstrip(" \\")
            assert re.fullmatch(r"[0-9a-f]{64}", digest), line
            entries[key][1].append(digest)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{name}: unexpected line {line!r}")
    return entries


SERVE, DEV = read_lock("serve.lock"), read_lock("dev.lock")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("lock", [SERVE, DEV], ids=["serve", "dev"])
def test_every_locked_package_has_one_version_and_its_hashes(lock):
    assert len(lock) > 30
    for key, (version, hashes) in lock.items():
        assert hashes, f"{key}=={version} has no hash: pip --require-hashes would refuse the lock"
    assert not LEFT_OUT & {name for name, _ in lock}


def _satisfied(lock, requirement: str) -> None:
    req = Requirement(requirement)
    name = _canonical(req.name)
    if name in LEFT_OUT:
        return
    # This machine's Python (3.11 here) picks the entries whose marker holds.
    versions = [
        v for (n, marker), (v, _) in lock.items() if n == name and (marker is None or Marker(marker).evaluate())
    ]
    assert len(versions) == 1, f"{req.name}: {versions}"
    assert req.specifier.contains(versions[0], prereleases=True), f"{req.name} {versions[0]} outside {req.specifier}"


@pytest.mark.parametrize("requirement", PROJECT["dependencies"])
def test_the_service_lock_satisfies_every_dependency(requirement):
    _satisfied(SERVE, requirement)


@pytest.mark.parametrize("requirement", PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"])
def test_the_dev_lock_satisfies_every_dependency_and_dev_tool(requirement):
    _satisfied(DEV, requirement)


def test_both_locks_pin_the_pair_that_imports_and_agree_on_everything_they_share():
    for lock in (SERVE, DEV):
        assert lock[("torch", None)][0] == "2.14.1" and lock[("torchvision", None)][0] == "0.29.1"
    for key, entry in SERVE.items():
        assert DEV.get(key) == entry, f"{key}: serve.lock {entry[0]}, dev.lock {DEV.get(key, ('none',))[0]}"


def test_make_and_the_dockerfile_install_from_the_locks_and_the_base_image_is_pinned_by_digest():
    makefile, dockerfile = (ROOT / "Makefile").read_text(), (ROOT / "Dockerfile").read_text()
    assert "--no-deps --require-hashes -r requirements/dev.lock" in makefile
    assert "--no-deps --require-hashes -r requirements/serve.lock" in dockerfile
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)[1]
    assert re.fullmatch(r"nvidia/cuda:[\w.-]+@sha256:[0-9a-f]{64}", base), base
    # Nothing installed outside the locks: every pip install names a lock or installs the project alone.
    for text in (makefile, dockerfile):
        for command in re.findall(r"pip install ([^\n&]*)", text):
            assert (
                "--require-hashes" in command
                or ("--no-deps" in command and command.rstrip(" \\").endswith((".", "-e .")))
                or '"uv' in command
            ), command
