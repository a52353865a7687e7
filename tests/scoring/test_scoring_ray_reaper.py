"""A driver that started a local Ray and is killed with SIGKILL leaves no Ray process behind 5 s later.

Without the reaper, Ray 2.60's dashboard and runtime-env agents outlive a killed driver by minutes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.integration.test_lab_safety import _alive, _tree

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DRIVER = textwrap.dedent("""
    import time
    from scoring.backend import AgentConfig
    from scoring.pool import RayExecutor
    ex = RayExecutor(num_cpus=1)
    ex.start([AgentConfig(name="a", backend="simjudge")])
    print("ready", flush=True)
    time.sleep(300)
""")


def test_ray_processes_do_not_outlive_a_killed_driver():
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    try:
        assert driver.stdout.readline().strip() == b"ready"
        tree = _tree(driver.pid)
        ray_procs = {pid: start for pid, start in tree.items() if pid != driver.pid}
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        time.sleep(5.0)
        left = [pid for pid, start in ray_procs.items() if _alive(pid, start)]
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        driver.stdout.close()
    print(f"\n{len(ray_procs)} processes under the driver (Ray's and the reaper); left 5 s after kill -9: {left}")
    assert len(ray_procs) >= 4   # gcs, raylet, agents, the actor, the reaper
    assert left == []
