"""Start tests/fakes/franky_sim_process.py (franky-sim, MuJoCo) as a separate process on its own loopback
address and talk to its JSON-lines control channel."""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("franky_sim_process.py")


class FrankySimProcess:
    def __init__(self) -> None:
        self.host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        self.proc = subprocess.Popen([sys.executable, str(SCRIPT), "--hostname", self.host], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = self._readline(60.0)
        if '"ready"' not in line:
            self.close()
            raise RuntimeError(f"franky-sim did not start: {line!r}")

    def _readline(self, timeout_s: float) -> str:
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout_s):
                raise TimeoutError("franky-sim did not answer")
        return self.proc.stdout.readline()

    def state(self) -> dict:
        self.proc.stdin.write(json.dumps({"op": "state"}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._readline(5.0))

    def freeze(self) -> None:
        """SIGSTOP: the simulator goes silent mid-motion, as a pulled cable looks to libfranka."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            f.close()
