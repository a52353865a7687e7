"""Starting and stopping a lab process: `launch_lab` (the sim lab), `spawn_lab` (any lab command, shared with the
LIBERO lab's launcher) and the `LabProcess` they yield.

`spawn_lab` draws the session secrets and hands them to the lab through an inherited pipe; the returned
`LabProcess` holds them (never in its repr). The lab dies with the planner process (PR_SET_PDEATHSIG), and is
terminated, then killed, on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from robot_io.errors import RobotError
from robot_io.lab_auth import LabSecrets
from robot_io.labspec import LabSpec

log = logging.getLogger(__name__)


class LabStartError(RobotError):
    """The sim lab process did not come up (bad spec, crash, or no port line in time)."""


@dataclass(frozen=True)
class LabProcess:
    """A running sim lab: where to connect, the process, its stderr log file and the session secrets
    (`control_secret` for the SimRobot that drives it, `eval_secret` for LabEvaluator; never in repr)."""

    host: str
    port: int
    popen: subprocess.Popen
    log_path: Path
    secrets: LabSecrets = dataclasses.field(repr=False, default=None)

    @property
    def control_secret(self) -> bytes:
        return self.secrets.control

    @property
    def eval_secret(self) -> bytes:
        return self.secrets.evaluate

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def log_tail(self, n_lines: int = 20) -> str:
        return _tail(self.log_path, n_lines)


def _tail(path: Path, n_lines: int) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n_lines:])


def _read_port(proc: subprocess.Popen, log_path: Path, timeout_s: float) -> int:
    """Wait for the lab's one stdout line {"port": P}; fail with the tail of its log."""
    deadline = time.monotonic() + timeout_s
    buf = b""
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.debug("sim lab stdout: %r", line)
                    continue
                if isinstance(msg, dict) and isinstance(msg.get("port"), int):
                    return msg["port"]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabStartError(f"sim lab did not report its port within {timeout_s:.0f} s; "
                                    f"its log ends:\n{_tail(log_path, 20)}")
            if sel.select(timeout=min(remaining, 0.2)):
                chunk = os.read(fd, 4096)
                if chunk:
                    buf += chunk
                    continue
                try:  # EOF without a port line: the lab is exiting; wait for its exit code
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise LabStartError(f"sim lab closed its stdout without reporting a port; its log ends:\n"
                                        f"{_tail(log_path, 20)}") from None
            if proc.poll() is not None:
                raise LabStartError(f"sim lab exited with code {proc.returncode} before listening; "
                                    f"its log ends:\n{_tail(log_path, 20)}")


def _die_with_parent() -> None:
    """In the lab child before exec: ask Linux to SIGTERM it when the planner process dies, even by kill -9,
    so a killed planner never leaves a lab (and its arm) running. (The signal follows the launching thread:
    call launch_lab from a thread that lives as long as the run.) Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:   # a killed LIBERO lab frees gigabytes: on a loaded machine that can outlast a short wait
                proc.wait(timeout=60.0)
            except subprocess.TimeoutExpired:
                log.warning("lab process %d still exiting 60 s after SIGKILL; left to the OS", proc.pid)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def spawn_lab(cmd: list[str], *, host: str, log_file: Path, env: dict[str, str],
              startup_timeout_s: float) -> Iterator[LabProcess]:
    """Run a lab command (`--secret-fd` is added here) with fresh session secrets, yield its LabProcess once it
    reports its port, terminate it on exit. The secrets go through a pipe the lab inherits, so they appear on no
    command line, in no environment, file or log. Shared by `launch_lab` and the LIBERO lab's launcher."""
    secrets = LabSecrets.generate()
    secret_r, secret_w = os.pipe()
    try:
        os.write(secret_w, secrets.to_line())   # ~150 bytes: fits the pipe buffer before the child reads
    finally:
        os.close(secret_w)
    try:
        with open(log_file, "ab") as log_f:
            proc = subprocess.Popen([*cmd, "--secret-fd", str(secret_r)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=log_f, env=env, preexec_fn=_die_with_parent,
                                    pass_fds=(secret_r,))
    finally:
        os.close(secret_r)
    try:
        yield LabProcess(host, _read_port(proc, log_file, startup_timeout_s), proc, log_file, secrets)
    finally:
        _terminate(proc)


@contextlib.contextmanager
def launch_lab(spec: LabSpec, seed: int | None = None, *, host: str = "127.0.0.1", port: int = 0,
               startup_timeout_s: float = 60.0, log_path: str | os.PathLike | None = None,
               env: dict[str, str] | None = None) -> Iterator[LabProcess]:
    """Start `python -m robot_io.simlab` for `spec` and yield a LabProcess; terminate it on exit.

    The spec goes to a temporary JSON file; the lab's stderr goes to `log_path` (default: a temporary
    file, deleted on exit). `seed` defaults to spec.seed. `env` adds environment variables for the lab.
    The session secrets are drawn and handed over by `spawn_lab`.
    """
    seed = spec.seed if seed is None else int(seed)
    with tempfile.TemporaryDirectory(prefix="simlab-") as tmp:
        spec_path = Path(tmp) / "lab_spec.json"
        spec_path.write_text(spec.to_json())
        log_file = Path(log_path) if log_path is not None else Path(tmp) / "simlab.log"
        cmd = [sys.executable, "-m", "robot_io.simlab", "--spec", str(spec_path), "--seed", str(seed),
               "--port", str(port), "--host", host]
        with spawn_lab(cmd, host=host, log_file=log_file, env={**os.environ, **(env or {})},
                       startup_timeout_s=startup_timeout_s) as lab:
            log.info("sim lab pid %d listening on %s:%d (seed %d)", lab.popen.pid, host, lab.port, seed)
            yield lab
