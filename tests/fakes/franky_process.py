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
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).with_name("franky_sim_process.py")


class FrankySimProcess:
    def __init__(self) -> None:
        self.host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        self._stderr = tempfile.TemporaryFile()   # read back only to say why it died
        self.proc = subprocess.Popen([sys.executable, str(SCRIPT), "--hostname", self.host], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True,
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

    def state(self, timeout_s: float = 10.0) -> dict:
        """The simulated joints and what the server received; asked again while the simulation, just started,
        has no state to give yet."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.proc.stdin.write(json.dumps({"op": "state"}) + "\n")
            self.proc.stdin.flush()
            line = self._readline(5.0)
            if not line:
                self._stderr.seek(0)
                tail = self._stderr.read()[-1500:].decode(errors="replace")
                raise RuntimeError(f"franky-sim exited (code {self.proc.poll()}) before answering: {tail}")
            out = json.loads(line)
            if "error" not in out or time.monotonic() > deadline:
                return out
            time.sleep(0.1)

    def freeze(self) -> None:
        """SIGSTOP: the simulator goes silent mid-motion, as a pulled cable looks to libfranka."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout, self._stderr):
            f.close()
