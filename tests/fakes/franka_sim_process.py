"""franka-sim (Franka's FCI simulator, which enforces the FCI's motion limits) as a separate process, offline.

franka-sim 1.1.7 pins numpy 1.26 and mujoco < 3.3 (this project's franky-sim pulls mujoco 4), and pylibfranka, which
it is usually driven with, cannot share a process with franky: it lives in its own virtual environment, named by
$FRANKA_SIM_PYTHON (that venv's python, with `pip install franka-sim==1.1.7`). It downloads its FR3 model at run
time through robot_descriptions; `FR3_MJCF` points it instead at franky-sim's bundled `fr3.xml`, copied with its
meshes into the layout the file expects (`meshdir="assets"` next to it), so nothing is fetched.

It listens on 0.0.0.0:1337 (no host option for a single arm): one at a time on a machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ENV = "FRANKA_SIM_PYTHON"


def fr3_model_dir(dest: str | Path) -> Path:
    """franky-sim's fr3.xml with its meshes, laid out for MuJoCo to load it: returns the xml's path."""
    import franky_sim

    src = Path(franky_sim.__file__).parent / "assets"
    dest = Path(dest)
    (dest / "assets").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "fr3.xml", dest / "fr3.xml")
    for mesh in (src / "meshes").iterdir():
        shutil.copy(mesh, dest / "assets" / mesh.name)
    return dest / "fr3.xml"


class FrankaSimProcess:
    """`run-franka-sim-server --enforce-motion-limits --no-gripper` from $FRANKA_SIM_PYTHON's venv, model offline."""

    def __init__(self, python: str | None = None, startup_s: float = 90.0) -> None:
        python = python or os.environ.get(ENV)
        if not python:
            raise RuntimeError(f"set ${ENV} to the python of a venv with franka-sim installed")
        self._tmp = tempfile.TemporaryDirectory(prefix="fr3_mjcf_")
        self.log_path = Path(self._tmp.name) / "server.log"
        env = {**os.environ, "FR3_MJCF": str(fr3_model_dir(self._tmp.name))}
        server = Path(python).parent / "run-franka-sim-server"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(server), "--no-gripper", "--enforce-motion-limits"], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.host = "127.0.0.1"
        deadline = time.monotonic() + startup_s
        while b"ready for new client" not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_bytes()[-2000:].decode(errors="replace")
                self.close()
                raise RuntimeError(f"franka-sim did not start: {tail}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        self._tmp.cleanup()
