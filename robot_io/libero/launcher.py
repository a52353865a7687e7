"""Starting the LIBERO lab from the planner's side: where `make libero` put things, and `launch_libero_lab`.

The lab runs in its own virtual environment (LIBERO pins robosuite, MuJoCo and numpy versions of its own), so
the planner never imports LIBERO: it starts that environment's python on `robot_io.libero.lab` and talks to it
with `SimRobot`, exactly as to the sim lab.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from robot_io.errors import RobotError
from robot_io.libero.spec import LiberoLabSpec
from robot_io.sim_robot import LabProcess, _die_with_parent, _read_port, _terminate

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

    The same contract as `robot_io.sim_robot.launch_lab`: yields a LabProcess to connect a SimRobot to.
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
        with open(log_file, "ab") as log_f:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_f,
                                    env=child_env, preexec_fn=_die_with_parent)
        try:
            lab_port = _read_port(proc, log_file, startup_timeout_s)
            log.info("LIBERO lab pid %d listening on %s:%d (%s task %d, initial state %d)", proc.pid, host,
                     lab_port, spec.suite, spec.task_id, seed)
            yield LabProcess(host, lab_port, proc, log_file)
        finally:
            _terminate(proc)


def launch_any_lab(spec, seed: int | None = None, **kw):
    """The launcher for a lab spec: the LIBERO lab for a LiberoLabSpec, the sim lab for a LabSpec."""
    from robot_io.sim_robot import launch_lab

    return (launch_libero_lab if isinstance(spec, LiberoLabSpec) else launch_lab)(spec, seed, **kw)
