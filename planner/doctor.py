"""`antigrounding doctor`: what a user runs when something is off.

Each check returns a `Check` (name, ok, detail, fix); nothing here raises for a broken machine, and no secret is
ever printed (a key is reported present or absent, never shown).
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import os
import platform
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import configs

# (shared object, Debian package) the core wheels link at import or render time.
SYSTEM_LIBS = (("libusb-1.0.so.0", "libusb-1.0-0"), ("libEGL.so.1", "libegl1"), ("libGL.so.1", "libgl1"),
               ("libgomp.so.1", "libgomp1"))
DIST = "antigrounding"
# Extras that are not about running the system (the test tools): not reported.
UNREPORTED_EXTRAS = frozenset({"test"})
_REQ_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_REQ_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
# The environment variables each API scorer's client library reads (names only; values are never shown).
SCORER_ENV = {"anthropic": ("ANTHROPIC_API_KEY",), "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL")}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True     # a failed optional check is reported but does not fail the verdict


def package_version() -> str:
    try:
        return importlib.metadata.version("antigrounding")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown (not installed; running from a checkout)"


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info[:2] == (3, 11)
    return Check("python", ok, f"{platform.python_version()} at {sys.executable}",
                 "" if ok else "use Python 3.11 (PyBullet ships wheels up to 3.11)")


def check_system_libs() -> list[Check]:
    out = []
    for soname, package in SYSTEM_LIBS:
        try:
            ctypes.CDLL(soname)
            out.append(Check(f"lib {soname}", True, "loads"))
        except OSError:
            out.append(Check(f"lib {soname}", False, "cannot be loaded",
                             f"sudo apt-get install -y {package}"))
    return out


@dataclass(frozen=True)
class Requirement:
    """One declared dependency: its name, the version it needs ('' when any), and its extra (None: the core)."""

    name: str
    specifier: str
    extra: str | None


def parse_requirement(text: str) -> Requirement | None:
    """'numpy<3,>=1.26' or 'torch==2.13.0; extra == "local-vlm"' (the metadata's form); None if unreadable."""
    spec, _, marker = text.partition(";")
    match = _REQ_NAME.match(spec)
    if match is None:
        return None
    rest = spec[match.end():].strip()
    if rest.startswith("["):   # the dependency's own extras: not part of the version
        rest = rest[rest.find("]") + 1:].strip()
    extra = _REQ_EXTRA.search(marker)
    return Requirement(match.group(1), rest.strip("() "), extra.group(1) if extra else None)


def declared_requirements() -> list[Requirement]:
    """The installed package's requirements (its metadata), or a checkout's pyproject.toml when not installed."""
    try:
        lines = importlib.metadata.requires(DIST) or []
    except importlib.metadata.PackageNotFoundError:
        lines = _pyproject_requirements()
    return [r for r in map(parse_requirement, lines) if r is not None]


def _pyproject_requirements() -> list[str]:
    import tomllib

    path = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return []
    lines = list(project.get("dependencies", []))
    for extra, reqs in project.get("optional-dependencies", {}).items():
        lines += [f'{r}; extra == "{extra}"' for r in reqs]
    return lines


def _satisfies(version: str, specifier: str) -> bool | None:
    """Whether the installed version meets the declared range (None: cannot tell without `packaging`)."""
    if not specifier:
        return True
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion
    except ImportError:
        return None
    try:
        return SpecifierSet(specifier).contains(version, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return None


def check_packages(requirements: list[Requirement] | None = None) -> list[Check]:
    """A line per core dependency (required), and one per extra (optional: installed or not, as a whole)."""
    requirements = declared_requirements() if requirements is None else requirements
    if not requirements:
        return [Check("packages", False, f"cannot read the requirements of {DIST!r} (not installed, no pyproject.toml)",
                      "pip install antigrounding")]
    out = []
    extras: dict[str, list[str]] = {}   # extra -> problems ("torch missing")
    for req in requirements:
        if req.extra in UNREPORTED_EXTRAS:
            continue
        v = _dist_version(req.name)
        fits = None if v is None else _satisfies(v, req.specifier)
        problem = "" if v is not None and fits is not False else \
            f"{req.name} missing" if v is None else f"{req.name} {v}, but {DIST} needs {req.specifier}"
        if req.extra is not None:
            extras.setdefault(req.extra, [])
            if problem:
                extras[req.extra].append(problem)
            continue
        out.append(Check(f"package {req.name}", not problem, problem or v or "",
                         "pip install antigrounding (the core install declares it)" if problem else ""))
    for extra, problems in extras.items():
        out.append(Check(f"extra {extra}", not problems, "; ".join(problems) if problems else "installed",
                         f"pip install 'antigrounding[{extra}]'" if problems else "", required=False))
    return out


def check_imports() -> list[Check]:
    """Import what the demo imports; a missing shared library or module shows up here, with its message."""
    out = []
    for module in ("open3d", "pybullet", "trimesh", "ray", "planner.episode"):
        try:
            importlib.import_module(module)
            out.append(Check(f"import {module}", True, "ok"))
        except Exception as exc:  # noqa: BLE001 - any import failure is the finding
            out.append(Check(f"import {module}", False, f"{type(exc).__name__}: {str(exc)[:200]}",
                             "see the system library and package lines above"))
    return out


def check_rendering() -> Check:
    """Render one small frame with the EGL plugin in a fresh PyBullet client."""
    try:
        import numpy as np
        import pybullet as p

        from sim.camera import CameraSpec, load_fast_renderer
    except Exception as exc:  # noqa: BLE001
        return Check("EGL rendering", False, f"cannot import the renderer: {exc}", required=False)
    client = p.connect(p.DIRECT)
    try:
        renderer = load_fast_renderer(client)
        egl = renderer == p.ER_BULLET_HARDWARE_OPENGL
        cam = CameraSpec.look_at("doctor", 64, 48, 60.0, eye=(1, 0, 1), target=(0, 0, 0))
        _, _, rgb, _, _ = p.getCameraImage(64, 48, cam.view_matrix_gl(), cam.projection_matrix_gl(),
                                           renderer=renderer, physicsClientId=client)
        ok = np.asarray(rgb).size == 64 * 48 * 4
        detail = "EGL (Mesa or GPU)" if egl else "TinyRenderer fallback (EGL unavailable: slower, a few mm depth bias)"
        return Check("EGL rendering", ok and egl, detail if ok else "rendering returned no image",
                     "" if egl else "sudo apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri", required=False)
    except Exception as exc:  # noqa: BLE001
        return Check("EGL rendering", False, f"{type(exc).__name__}: {exc}", required=False)
    finally:
        p.disconnect(client)


def check_configs() -> Check:
    dirs = [str(d) for d in configs.search_dirs()]
    tasks = configs.names("tasks")
    ok = "stack_blocks" in tasks
    listed = ", ".join(tasks[:6]) + (", ..." if len(tasks) > 6 else "")
    return Check("configs", ok, f"searched {dirs}; {len(tasks)} tasks ({listed})",
                 "" if ok else "reinstall the package: shipped configs missing")


def check_scorers() -> list[Check]:
    out = [Check("scorer simjudge", True, "usable (embedded, no key)")]
    for scorer, names in SCORER_ENV.items():
        present = [n for n in names if os.environ.get(n)]
        out.append(Check(f"scorer {scorer}", bool(present),
                         f"{', '.join(present)} set" if present else f"no {' or '.join(names)} in the environment",
                         "" if present else f"export {names[0]}=...", required=False))
    has_torch = _dist_version("torch") is not None and _dist_version("transformers") is not None
    out.append(Check("scorer transformers", has_torch, "torch + transformers installed (needs a local model folder)"
                     if has_torch else "torch/transformers not installed", "" if has_torch else
                     "pip install 'antigrounding[local-vlm]'", required=False))
    return out


def run_checks() -> list[Check]:
    return [check_python(), *check_system_libs(), *check_packages(), *check_imports(), check_rendering(),
            check_configs(), *check_scorers()]


def verdict(checks: list[Check]) -> tuple[bool, str]:
    broken = [c.name for c in checks if c.required and not c.ok]
    if broken:
        return False, f"NOT READY: {', '.join(broken)} (fixes above)"
    warnings = [c.name for c in checks if not c.required and not c.ok]
    extra = f" ({len(warnings)} optional item(s) unavailable: {', '.join(warnings)})" if warnings else ""
    return True, f"READY: the demo can run (antigrounding run --task stack_blocks){extra}"


def as_dict(checks: list[Check]) -> dict:
    ok, line = verdict(checks)
    return {"version": package_version(), "ok": ok, "verdict": line, "checks": [asdict(c) for c in checks]}
