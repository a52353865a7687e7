"""A planner that freezes or dies leaves nothing moving, listening or running.

- SIGSTOP a planner mid-trajectory in the default configuration (the lab faster than real time): the arm
  stops within one heartbeat timeout of the planner's last message, in simulated time.
- During an API-scorer run (real anthropic client, stub server on 127.0.0.1) no process of the run listens on
  anything but the loopback interface; 5 s after kill -9 of the planner none of its processes are left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from planner.task import load_task
from robot_io.sim_robot import LabEvaluator, launch_lab
from tests.fakes.stub_server import StubVLMServer

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK = os.path.join(REPO, "configs", "tasks", "stack_blocks.yaml")

FROZEN_PLANNER = textwrap.dedent("""
    import sys
    import numpy as np
    from robot_io.sim_robot import SimRobot
    from robot_io.trajectory import JointTrajectory
    host, port, secret = sys.stdin.readline().split()
    with SimRobot(host, int(port), secret=bytes.fromhex(secret)) as robot:
        q0 = np.asarray(robot.status()["joint_pos_rad"])
        # 60 s of simulated motion: joint 0 sweeps 1.2 rad slowly.
        path = q0 + np.outer(np.linspace(0.005, 1.2, 240), [1, 0, 0, 0, 0, 0, 0])
        robot.execute(JointTrajectory(path, 0.08, 0.25))
""")


def _tree(root: int) -> dict[int, int]:
    """pid -> start time of root and all its live descendants."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    f = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if f[0] != b"Z":
                procs[int(name)] = (int(f[1]), int(f[19]))
    out = {root: procs[root][1]} if root in procs else {}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start) in procs.items():
            if pid not in out and ppid in out:
                out[pid] = start
                grew = True
    return out


def _alive(pid: int, start: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            f = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    return f[0] != b"Z" and int(f[19]) == start


def _listening(pids) -> list[tuple[int, str]]:
    """(pid, 'address:port') of every listening TCP socket the processes hold (from /proc, like ss -ltnp)."""
    listen: dict[str, str] = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        with open(table) as fh:
            for line in list(fh)[1:]:
                cols = line.split()
                if cols[3] != "0A":   # TCP_LISTEN
                    continue
                addr_hex, port_hex = cols[1].split(":")
                raw = bytes.fromhex(addr_hex)
                if v6:
                    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                    addr = "[" + ":".join(b"".join(words)[i:i + 2].hex() for i in range(0, 16, 2)) + "]"
                else:
                    addr = ".".join(str(b) for b in raw[::-1])
                listen[cols[9]] = f"{addr}:{int(port_hex, 16)}"
    out = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in listen:
                out.append((pid, listen[target[8:-1]]))
    return out


def _loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    return host.startswith("127.") or host == "[0000:0000:0000:0000:0000:0000:0000:0001]"


def test_sigstop_planner_arm_stops_within_one_heartbeat():
    spec = load_task(TASK).lab   # the configuration `run` uses: faster than real time
    assert spec.realtime_factor == 0.0
    with launch_lab(spec, 0) as lab:
        evaluator = LabEvaluator(lab.host, lab.port, secret=lab.eval_secret)
        planner = subprocess.Popen([sys.executable, "-c", FROZEN_PLANNER], cwd=REPO, stdin=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
        try:
            planner.stdin.write(f"{lab.host} {lab.port} {lab.control_secret.hex()}\n".encode())
            planner.stdin.close()
            deadline = time.monotonic() + 60
            while not evaluator.status()["executing"]:
                assert time.monotonic() < deadline and planner.poll() is None, "the planner never started moving"
                time.sleep(0.02)
            time.sleep(0.2)
            os.kill(planner.pid, signal.SIGSTOP)
            t_stop = time.monotonic()
            while (st := evaluator.status())["executing"]:
                assert time.monotonic() - t_stop < spec.heartbeat_timeout_s + 10, "the arm kept moving"
                time.sleep(0.05)
            wall_s = time.monotonic() - t_stop
            q1 = np.asarray(evaluator.truth()["joint_pos_rad"])
            time.sleep(0.5)
            q2 = np.asarray(evaluator.truth()["joint_pos_rad"])
        finally:
            planner.kill()
            planner.wait()
    print(f"\nSIGSTOP: stopped_reason={st['stopped_reason']}, simulated motion after the planner's last message "
          f"{st['motion_after_last_message_s']:.3f} s (heartbeat timeout {spec.heartbeat_timeout_s} s), "
          f"lab declared it {wall_s:.2f} s (wall) after SIGSTOP")
    assert st["stopped_reason"] == "watchdog" and not st["completed"]
    assert st["motion_after_last_message_s"] <= spec.heartbeat_timeout_s
    np.testing.assert_allclose(q2, q1, atol=1e-6)   # and it stays still


@pytest.mark.slow
def test_api_run_listens_only_on_loopback_and_leaves_nothing_after_kill9(tmp_path):
    proxies = ("http_proxy", "https_proxy", "all_proxy")
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in proxies and not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    with StubVLMServer("good", delay_s=0.5) as srv:
        env.update(ANTHROPIC_API_KEY="sk-ant-test-0000", ANTHROPIC_BASE_URL=srv.anthropic_base_url)
        planner = subprocess.Popen([sys.executable, "-m", "planner.cli", "run", "--task", TASK, "--scorer", "anthropic",
                                    "--max-steps", "30", "--out", str(tmp_path)], cwd=REPO, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 240
            while len(srv.requests) < 3:   # the first step's agent calls are in flight: everything is up
                assert planner.poll() is None, "the planner ended early"
                assert time.monotonic() < deadline, "no agent call reached the stub server"
                time.sleep(0.2)
            tree = _tree(planner.pid)
            listening = _listening(tree)
            ss = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
            os.kill(planner.pid, signal.SIGKILL)
            planner.wait()
            time.sleep(5.0)
            left = [pid for pid, start in tree.items() if _alive(pid, start)]
        finally:
            if planner.poll() is None:
                planner.kill()
                planner.wait()
    print(f"\nplanner tree: {len(tree)} processes; listening: {listening}; left 5 s after kill -9: {left}\n{ss}")
    assert len(tree) >= 2   # the planner and its lab at least
    assert listening and all(_loopback(addr) for _, addr in listening), listening
    assert left == []
