"""`antigrounding doctor`'s package lines come from the package's declared requirements, not a copied list."""

import importlib.metadata
import tomllib
from pathlib import Path

from planner import doctor
from planner.doctor import Requirement, check_packages, declared_requirements, parse_requirement

REPO = Path(__file__).resolve().parents[2]


def test_requirements_parse_in_the_metadata_form():
    assert parse_requirement("numpy<3,>=1.26") == Requirement("numpy", "<3,>=1.26", None)
    assert parse_requirement('torch==2.13.0; extra == "local-vlm"') == Requirement("torch", "==2.13.0", "local-vlm")
    assert parse_requirement("ray[default] (>=2.30)") == Requirement("ray", ">=2.30", None)
    assert parse_requirement("") is None


def test_the_core_lines_are_exactly_pyprojects_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {parse_requirement(r).name for r in project["dependencies"]}
    checks = check_packages()
    core = {c.name.removeprefix("package ") for c in checks if c.required}
    assert core == declared
    extras = {c.name.removeprefix("extra ") for c in checks if not c.required}
    assert extras == set(project["optional-dependencies"]) - doctor.UNREPORTED_EXTRAS


def test_a_missing_or_too_old_core_package_fails_and_an_extra_is_optional(monkeypatch):
    versions = {"numpy": "1.20.0", "ray": None, "torch": None}
    monkeypatch.setattr(doctor, "_dist_version", lambda name: versions.get(name, "1.0"))
    checks = {c.name: c for c in check_packages([
        Requirement("numpy", ">=1.26,<3", None), Requirement("ray", ">=2.30", None),
        Requirement("torch", "==2.13.0", "local-vlm"), Requirement("pytest", ">=8", "test")])}
    assert not checks["package numpy"].ok and "needs >=1.26,<3" in checks["package numpy"].detail
    assert not checks["package ray"].ok and checks["package ray"].detail == "ray missing"
    assert checks["package ray"].required
    assert not checks["extra local-vlm"].ok and not checks["extra local-vlm"].required
    assert "pip install 'antigrounding[local-vlm]'" == checks["extra local-vlm"].fix
    assert "extra test" not in checks   # the test tools are not part of running the system
    ok, line = doctor.verdict(list(checks.values()))
    assert not ok and "package numpy" in line and "extra local-vlm" not in line


def test_a_checkout_without_an_install_reads_pyproject(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "requires", not_installed)
    names = {r.name for r in declared_requirements() if r.extra is None}
    assert {"numpy", "pybullet", "ray"} <= names
