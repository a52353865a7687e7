"""franka-sim (Franka's FCI simulator, which enforces the FCI's motion limits) as a separate process, offline.

franka-sim 1.1.7 pins numpy 1.26 and mujoco < 3.3 (this project's franky-sim pulls mujoco 4), and pylibfranka, which
it is usually driven with, cannot share a process with franky: it lives in its own virtual environment, named by
$FRANKA_SIM_PYTHON (`make franka-sim` builds `.venv-franka-sim` from tests/fakes/franka_sim_requirements.txt). It
downloads its FR3 model at run time through robot_descriptions; `FR3_MJCF` points it instead at franky-sim's bundled
`fr3.xml`, copied with its meshes into the layout the file expects (`meshdir="assets"` next to it): the one `make
franka-sim` prepared when $FR3_MJCF is set, else a fresh copy in a temporary folder. Nothing is fetched.

Its command-line server (`run-franka-sim-server`) binds 0.0.0.0:1337 for a single arm (its `--bind` is for the
mobile duo only), but the server class takes a `host`: `_SERVER` below starts it on a random 127.x.y.z loopback
address, so it is unreachable from the network and several can run on one machine. (Its state stream needs no
bind: the UDP socket is unbound until the first sendto, to the client's address.)
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = "FRANKA_SIM_PYTHON"

# Run by $FRANKA_SIM_PYTHON: franka-sim's own single-arm server on argv[1], the FCI's motion limits enforced, no
# gripper; SIGTERM ends it through the server's stop().
_SERVER = """
import logging, signal, sys
from franka_sim import FrankaSimServer
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
server = FrankaSimServer(host=sys.argv[1], enable_gripper=False, enforce_motion_limits=True)
signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
try:
    server.start()
except KeyboardInterrupt:
    pass
finally:
    server.stop()
"""


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
    """franka-sim's server from $FRANKA_SIM_PYTHON's venv on a random loopback address, model offline."""

    def __init__(self, python: str | None = None, startup_s: float = 90.0) -> None:
        python = python or os.environ.get(ENV)
        if not python:
            raise RuntimeError(f"set ${ENV} to the python of a venv with franka-sim installed (make franka-sim)")
        self._tmp = tempfile.TemporaryDirectory(prefix="fr3_mjcf_")
        self.log_path = Path(self._tmp.name) / "server.log"
        mjcf = os.environ.get("FR3_MJCF") or str(fr3_model_dir(self._tmp.name))
        self.host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([python, "-c", _SERVER, self.host], env={**os.environ, "FR3_MJCF": mjcf},
                                     stdout=self._log, stderr=subprocess.STDOUT)
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
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        self._tmp.cleanup()


if __name__ == "__main__":   # `python tests/fakes/franka_sim_process.py DIR`: lay out the model (make franka-sim)
    print(fr3_model_dir(sys.argv[1]))
