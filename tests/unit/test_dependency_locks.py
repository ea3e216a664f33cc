"""The shared layer is built from a lock: every package it installs, indirect ones included, pinned
with its hashes (sam build installs layers/shared/requirements.txt in pip's hash-checking mode).
The direct dependencies are listed once, in requirements.in, which pyproject reads."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared"
# The Lambda runtime the layer is built for (template.yaml: python3.13 on arm64).
LAMBDA_ENV = {**default_environment(), "python_version": "3.13", "python_full_version": "3.13.0",
              "platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux",
              "implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix"}


def requirement_lines(path: Path) -> list[str]:
    """Logical lines (continuations joined), comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def layer_lock() -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes) of layers/shared/requirements.txt; fails on anything not pinned."""
    out = {}
    for line in requirement_lines(LAYER / "requirements.txt"):
        spec, *options = (part.strip() for part in line.split(" --"))
        requirement = Requirement(spec)
        (pin,) = requirement.specifier
        assert pin.operator == "==", line
        hashes = [o.removeprefix("hash=") for o in options if o.startswith("hash=sha256:")]
        assert len(hashes) == len(options), f"only hashes may follow a pin: {line}"
        out[canonicalize_name(requirement.name)] = (pin.version, hashes)
    return out


def test_the_layer_lock_pins_every_package_with_its_hashes():
    lock = layer_lock()
    assert lock
    for name, (_version, hashes) in lock.items():
        assert hashes, f"{name} has no hash: pip would not run in hash-checking mode"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name


def test_the_layer_lock_holds_the_whole_dependency_tree_for_the_lambda_runtime():
    """Walk requirements.in's dependencies (their metadata, as installed in .venv at the dev lock's
    versions) with the Lambda runtime's markers: every package reached is in the layer lock, at
    the version .venv runs, and the lock holds nothing else."""
    lock = layer_lock()
    direct = [Requirement(line) for line in requirement_lines(LAYER / "requirements.in")]
    reached: dict[str, str] = {}
    todo = list(direct)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in reached:
            continue
        version = metadata.version(name)
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
        reached[name] = version
        todo.extend(dependency for dependency in map(Requirement, metadata.requires(name) or [])
                    if dependency.marker is None or dependency.marker.evaluate({**LAMBDA_ENV, "extra": ""}))
    assert {name: version for name, (version, _) in lock.items()} == reached
    assert {canonicalize_name(r.name) for r in direct} < set(reached), "indirect dependencies are locked too"


def test_the_direct_dependencies_are_listed_once_for_the_venv_and_the_layer():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["layers/shared/requirements.in"]}
    direct = requirement_lines(LAYER / "requirements.in")
    assert direct and all(not line.startswith("-") for line in direct)   # setuptools reads it: no pip options
    lock = layer_lock()
    for requirement in map(Requirement, direct):
        assert requirement.specifier.contains(lock[canonicalize_name(requirement.name)][0])
    # make lock regenerates both locks.
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert "requirements.in" in recipe and "--generate-hashes" in recipe and "requirements-lock.txt" in recipe
