"""No Ray process outlives the program that started it, even after kill -9.

Ray's head processes (GCS, raylet, dashboard and runtime-env agents, log monitor, workers) do not all die
with the driver that started them: killed with SIGKILL, a driver leaves agents running for minutes. The
reaper is a small separate process, in its own session so a terminal's Ctrl-C does not reach it, that
learns the Ray processes' ids from the driver over a pipe and follows their descendants through /proc.
When the pipe closes (the driver called `stop`, exited, or was killed) it SIGKILLs every process it
tracked that still exists (same pid and start time), then exits. Linux only; elsewhere `start` is a no-op.

    python -m scoring.ray_reaper      (started by `RayReaper.start`, never by hand)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time

logger = logging.getLogger(__name__)

SCAN_PERIOD_S = 0.25


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, start time in clock ticks) of a live, non-zombie process, else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()   # after "pid (comm) "; comm may hold spaces
    if fields[0] == b"Z":
        return None
    return int(fields[1]), int(fields[19])


def _all_processes() -> dict[int, tuple[int, int]]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def _track(tracked: dict[int, int]) -> None:
    """Add every live descendant of a tracked process (pid -> start time), in place."""
    procs = _all_processes()
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start) in procs.items():
            if pid not in tracked and ppid in tracked and procs.get(ppid, (0, -1))[1] == tracked[ppid]:
                tracked[pid] = start
                grew = True


def _kill_all(tracked: dict[int, int]) -> int:
    _track(tracked)
    killed = 0
    for pid, start in tracked.items():
        st = _stat(pid)
        if st is not None and st[1] == start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def _serve() -> int:
    """The reaper process: stdin carries one JSON line {"pids": [...]} (more lines add pids); EOF means reap."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tracked: dict[int, int] = {}
    buf = b""
    fd = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], SCAN_PERIOD_S)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                for pid in json.loads(line).get("pids", []):
                    st = _stat(int(pid))
                    if st is not None:
                        tracked[int(pid)] = st[1]
        _track(tracked)
    _kill_all(tracked)
    return 0


class RayReaper:
    """The driver's handle: `start()`, then `watch(pids)` for Ray's processes, `stop()` to reap and end it."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        if not sys.platform.startswith("linux") or self._proc is not None:
            return
        self._proc = subprocess.Popen([sys.executable, "-m", "scoring.ray_reaper"], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def watch(self, pids: list[int]) -> None:
        if self._proc is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write((json.dumps({"pids": [int(p) for p in pids]}) + "\n").encode())
            self._proc.stdin.flush()
        except OSError as err:
            logger.warning("ray reaper is gone (%s); Ray processes may outlive a killed planner", err)

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


def ray_process_ids() -> list[int]:
    """The processes of the Ray node this driver started (GCS, raylet, agents, monitors), or [] if unknown."""
    try:
        from ray._private import worker  # private, but the only place Ray keeps its node's processes
        node = worker._global_node
        return [info.process.pid for infos in node.all_processes.values() for info in infos
                if getattr(info, "process", None) is not None]
    except Exception as err:  # a Ray without this attribute: fall back to this process's Ray children
        logger.debug("ray node processes unknown (%s); scanning children", err)
    me = os.getpid()
    out = []
    for pid, (ppid, _) in _all_processes().items():
        if ppid == me:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if b"/ray/" in fh.read():
                        out.append(pid)
            except OSError:
                continue
    return out


def _main() -> int:
    start = time.monotonic()
    try:
        return _serve()
    finally:
        logger.debug("reaper ran %.1f s", time.monotonic() - start)


if __name__ == "__main__":
    raise SystemExit(_main())
