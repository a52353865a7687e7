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
import sys
from dataclasses import asdict, dataclass

import configs

# (shared object, Debian package) the core wheels link at import or render time.
SYSTEM_LIBS = (("libusb-1.0.so.0", "libusb-1.0-0"), ("libEGL.so.1", "libegl1"), ("libGL.so.1", "libgl1"),
               ("libgomp.so.1", "libgomp1"))
CORE_PACKAGES = ("numpy", "scipy", "pybullet", "open3d", "trimesh", "networkx", "pyyaml", "msgpack", "pillow",
                 "anthropic", "openai", "ray", "coacd")
OPTIONAL_PACKAGES = ("torch", "transformers")
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


def check_packages() -> list[Check]:
    out = []
    for name in CORE_PACKAGES:
        v = _dist_version(name)
        out.append(Check(f"package {name}", v is not None, v or "missing",
                         "" if v else "pip install antigrounding (the core install declares it)"))
    for name in OPTIONAL_PACKAGES:
        v = _dist_version(name)
        out.append(Check(f"package {name}", v is not None, v or "not installed (only the transformers scorer needs "
                         "it)", "" if v else "pip install 'antigrounding[local-vlm]'", required=False))
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
