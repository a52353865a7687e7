"""Start tests/fakes/ur_controller.py as a separate process on its own loopback address, and talk to its
test control channel (JSON lines on stdin/stdout)."""

from __future__ import annotations

import json
import os
import random
import selectors
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).with_name("ur_controller.py")


class FakeURProcess:
    """A running fake UR controller. ur_rtde uses fixed ports (30004, 29999, 30003), so each fake gets its own
    127.x.y.z address; tests running side by side do not collide."""

    def __init__(self, *extra_args: str, host: str | None = None) -> None:
        self.host = host or f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        self.proc = subprocess.Popen([sys.executable, str(SCRIPT), "--host", self.host, *extra_args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        ready = self._readline(30.0)   # a loaded shared machine can take 10 s to import numpy and bind
        if '"ready"' not in ready:
            self.close()
            raise RuntimeError(f"fake UR controller did not start: {ready!r} {self.proc.stderr.read()}")

    def _readline(self, timeout_s: float) -> str:
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout_s):
                raise TimeoutError("fake UR controller did not answer")
        return self.proc.stdout.readline()

    def op(self, name: str) -> dict:
        self.proc.stdin.write(json.dumps({"op": name}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._readline(5.0))

    def state(self) -> dict:
        return self.op("state")

    def events(self, kind: str) -> list[dict]:
        return [e for e in self.state()["events"] if e["event"] == kind]

    def wait_for(self, pred, timeout_s: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.state()
            if pred(st) or time.monotonic() > deadline:
                return st
            time.sleep(0.02)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=3)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
