"""A planner killed with SIGKILL must not leave its sim lab (and the arm) running."""

import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO

PARENT = """
import sys, time
from planner.task import load_task
from robot_io.sim_robot import launch_lab
loaded = load_task(sys.argv[1])
with launch_lab(loaded.lab, 0) as lab:
    print(lab.popen.pid, flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:   # a zombie waiting for its reaper is gone for our purpose
        return f.read().split()[2] != "Z"


def test_lab_dies_with_a_killed_planner():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, f"{REPO}/configs/tasks/stack_blocks.yaml"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    lab_pid = int(parent.stdout.readline())
    assert _alive(lab_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(lab_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(lab_pid)
