"""Starting the LIBERO lab from the planner's side: where `make libero` put things, and `launch_libero_lab`.

The lab runs in its own virtual environment (LIBERO pins robosuite, MuJoCo and numpy versions of its own), so
the planner never imports LIBERO: it starts that environment's python on `robot_io.libero.lab` and talks to it
with `SimRobot`, exactly as to the sim lab.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from robot_io.errors import RobotError
from robot_io.libero.spec import LiberoLabSpec
from robot_io.sim_robot import LabProcess, launch_lab, spawn_lab

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_ENV = "ANTIGROUNDING_LIBERO_PYTHON"      # override: the LIBERO venv's python
ASSETS_ENV = "ANTIGROUNDING_LIBERO_ASSETS"      # override: the folder `make libero` generated
INSTALL_HINT = "run `make libero` (creates .venv-libero and converts LIBERO's object models, 5-7 min)"


class LiberoMissingError(RobotError):
    """LIBERO's virtual environment or its converted assets are not there."""


def libero_python() -> Path:
    path = Path(os.environ.get(PYTHON_ENV, REPO_ROOT / ".venv-libero" / "bin" / "python"))
    if not path.is_file():
        raise LiberoMissingError(f"LIBERO is not installed ({path} not found): {INSTALL_HINT}")
    return path


def assets_dir() -> Path:
    return Path(os.environ.get(ASSETS_ENV, REPO_ROOT / ".libero-assets"))


def load_manifest() -> dict:
    """The manifest `make libero` wrote (suites, tasks, cameras, converted object models)."""
    path = assets_dir() / "manifest.json"
    if not path.is_file():
        raise LiberoMissingError(f"LIBERO's converted assets are missing ({path} not found): {INSTALL_HINT}")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise LiberoMissingError(f"{path}: not valid JSON ({e}); {INSTALL_HINT}") from e


def libero_available() -> str | None:
    """None when the LIBERO lab can run here, else the reason it cannot (for skips and `doctor`)."""
    try:
        libero_python()
        load_manifest()
    except LiberoMissingError as e:
        return str(e)
    return None


@contextlib.contextmanager
def launch_libero_lab(
    spec: LiberoLabSpec,
    seed: int | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout_s: float = 180.0,
    log_path: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[LabProcess]:
    """Start the LIBERO lab for `spec` (seed = official initial state, default spec.seed); terminate it on exit.

    The same contract as `robot_io.sim_robot.launch_lab`: yields a LabProcess (with the session secrets, drawn
    and piped to the lab by `spawn_lab`) to connect a SimRobot and a LabEvaluator to.
    """
    python = libero_python()
    seed = spec.seed if seed is None else int(seed)
    with tempfile.TemporaryDirectory(prefix="liberolab-") as tmp:
        spec_path = Path(tmp) / "libero_lab_spec.json"
        spec_path.write_text(spec.to_json())
        log_file = Path(log_path) if log_path is not None else Path(tmp) / "liberolab.log"
        child_env = {**os.environ, **(env or {})}
        child_env.setdefault("MUJOCO_GL", "egl")
        child_env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [child_env.get("PYTHONPATH")])])
        cmd = [str(python), "-m", "robot_io.libero.lab", "--spec", str(spec_path), "--seed", str(seed),
               "--port", str(port), "--host", host]
        with spawn_lab(cmd, host=host, log_file=log_file, env=child_env, startup_timeout_s=startup_timeout_s) as lab:
            log.info("LIBERO lab pid %d listening on %s:%d (%s task %d, initial state %d)", lab.popen.pid, host,
                     lab.port, spec.suite, spec.task_id, seed)
            yield lab


def launch_any_lab(spec, seed: int | None = None, *, fast_render: bool = True, **kw):
    """The launcher for a lab spec: the LIBERO lab for a LiberoLabSpec, the sim lab for a LabSpec.

    fast_render: the sim lab's EGL renderer (LabSpec.fast_render); MuJoCo renders the LIBERO lab either way."""
    if isinstance(spec, LiberoLabSpec):
        return launch_libero_lab(spec, seed, **kw)
    return launch_lab(dataclasses.replace(spec, fast_render=fast_render), seed, **kw)
