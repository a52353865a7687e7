"""The sim lab as a controller: only the launcher's clients get motion or truth, frames and connections are bounded,
and 10,000 fuzzed commands sent straight to it (no envelope in between) never move the arm beyond its limits.

The limits are checked on the lab's own physics state: the trace it records every physics step (what libfranka
or UR RTDE stream from a real arm), turned into TCP positions with an independent kinematics world.
"""

import os
import socket
import time

import numpy as np
import pybullet as p
import pybullet_data
import pytest

from robot_io.errors import ProtectiveStopError
from robot_io.lab_limits import SPEED_WINDOW_STEPS, ControllerLimits, TcpKinematics, path_samples, velocity_changes
from robot_io.lab_server import AUTH_TIMEOUT_S, MAX_CONNECTIONS
from robot_io.labspec import LabSpec
from robot_io.protocol import HEADER
from robot_io.sim_robot import LabEvaluator, SimRobot, launch_lab
from robot_io.trajectory import JointTrajectory
from sim.geometry import Pose
from sim.scene import ObjectSpec, SceneSpec
from sim.world import TIMESTEP_S, World
from tests.robot_io import lab_client
from tests.robot_io.lab_client import ask

CUBE_URDF = os.path.join(pybullet_data.getDataPath(), "cube_small.urdf")
BRAKING_ALLOWANCE_M = 0.005
N_FUZZ = int(os.environ.get("ANTIGROUNDING_FUZZ_N", "10000"))


def _spec(panda, **kw):
    cube = ObjectSpec("cube", Pose.from_xyz_rpy_deg((0.55, 0.15, 0.025)), urdf=CUBE_URDF, mass_kg=0.1, friction=0.8)
    return LabSpec(SceneSpec(panda, (cube,)), (), settle_s=0.2, **kw)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024.0


def _closed_by_peer(sock: socket.socket, timeout_s: float) -> bool:
    sock.settimeout(timeout_s)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@pytest.fixture(scope="module")
def panda(panda_spec):
    return panda_spec


def test_second_client_gets_neither_truth_nor_motion(panda):
    with launch_lab(_spec(panda), seed=0) as lab, \
            SimRobot(lab.host, lab.port, secret=lab.control_secret) as robot:
        q0 = np.asarray(robot.status()["joint_pos_rad"])
        move = JointTrajectory((q0 + [0.3, 0, 0, 0, 0, 0, 0])[None], 0.08, 0.05)

        # No secret: nothing but challenge/auth is answered, and the first refusal ends the connection.
        for op, extra in [("evaluate", {}), ("execute", {"trajectory": move.to_msg()}), ("stop", {}),
                          ("shutdown", {}), ("observe", {}), ("hello", {}), ("status", {}), ("trace", {})]:
            with lab_client.connect(lab) as sock:
                reply = ask(sock, {"op": op, **extra})
                assert not reply["ok"] and "authenticate first" in reply["error"]
                assert "objects" not in reply and "accepted" not in reply
                assert _closed_by_peer(sock, 5.0)
        # A wrong secret, or the right secret for the other role, fails the challenge-response.
        for role, key in [("control", os.urandom(32)), ("evaluate", os.urandom(32)), ("control", lab.eval_secret),
                          ("evaluate", lab.control_secret)]:
            with pytest.raises(AssertionError, match="authentication failed"):
                lab_client.connect(lab, role, secret=key).close()
        # Even the control secret does not make a second controller while the planner holds control.
        with pytest.raises(AssertionError, match="another client .* controls this lab"):
            lab_client.connect(lab, "control").close()
        # The evaluation channel reads truth, and nothing else: it cannot move, stop or end the lab.
        with lab_client.connect(lab, "evaluate") as sock:
            for op, extra in [("execute", {"trajectory": move.to_msg()}), ("stop", {}), ("shutdown", {}),
                              ("observe", {}), ("trace", {})]:
                reply = ask(sock, {"op": op, **extra})
                assert not reply["ok"] and "evaluate role may only" in reply["error"]
            assert set(ask(sock, {"op": "evaluate"})["objects"]) == {"cube"}
        # None of that moved the arm; the planner's own link still works.
        evaluator = LabEvaluator(lab.host, lab.port, secret=lab.eval_secret)
        np.testing.assert_allclose(evaluator.truth()["joint_pos_rad"], q0, atol=1e-9)
        assert robot.execute(move).completed
        # The secrets are nowhere but in this process: not on the lab's command line, in its environment,
        # its spec file or its log, nor in the handle's repr.
        pid = lab.popen.pid
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
        with open(f"/proc/{pid}/environ", "rb") as fh:
            environ = fh.read()
        spec_path = cmdline.split(b"\0")[cmdline.split(b"\0").index(b"--spec") + 1].decode()
        with open(spec_path, "rb") as fh:
            spec_text = fh.read()
        for secret in (lab.control_secret, lab.eval_secret):
            for blob in (cmdline, environ, spec_text, lab.log_path.read_bytes(), repr(lab).encode()):
                assert secret not in blob and secret.hex().encode() not in blob


def test_frames_and_connections_are_bounded(panda):
    with launch_lab(_spec(panda), seed=0) as lab:
        pid = lab.popen.pid
        rss0 = _rss_mb(pid)
        # Announcing a 100 MB frame before authenticating ends the connection; nothing is allocated for it.
        big = []
        for _ in range(20):
            sock = lab_client.connect(lab)
            sock.sendall(HEADER.pack(100 * 1024 * 1024) + b"x" * 1000)
            big.append(sock)
        assert all(_closed_by_peer(s, 5.0) for s in big)
        for s in big:
            s.close()
        assert _rss_mb(pid) - rss0 < 20.0
        # MAX_CONNECTIONS stalled connections fill the lab; the next is closed at once; the stalled ones are
        # dropped after AUTH_TIMEOUT_S, and then the planner gets in.
        stalled = [lab_client.connect(lab) for _ in range(MAX_CONNECTIONS)]
        time.sleep(0.3)
        extra = lab_client.connect(lab)
        assert _closed_by_peer(extra, 2.0)
        extra.close()
        t0 = time.monotonic()
        assert all(_closed_by_peer(s, AUTH_TIMEOUT_S + 5.0) for s in stalled)
        assert time.monotonic() - t0 < AUTH_TIMEOUT_S + 5.0
        for s in stalled:
            s.close()
        with SimRobot(lab.host, lab.port, secret=lab.control_secret) as robot:
            assert robot.status()["executing"] is False


def _random_command(rng, q_now, v_max, a_max, lo, hi, dof):
    """One fuzzed execute message: mostly plausible motions around the limits, plus malformed ones."""
    kind = rng.random()
    n = int(rng.integers(1, 5))
    dt = float(rng.choice([TIMESTEP_S, 2 * TIMESTEP_S, 4 * TIMESTEP_S, 0.025, 0.05]))   # short: tens of seconds
    if kind < 0.55:   # a straight line at a random fraction of what speed, acceleration and step cap allow
        direction = rng.normal(size=dof)
        direction /= np.abs(direction).max()
        allowed = min(0.05, float(np.min(v_max * dt)), float(np.min(a_max * dt * dt)))
        step = allowed * float(rng.uniform(0.2, 1.6)) * direction
        q = q_now + np.outer(np.arange(1, n + 1), step)
    elif kind < 0.7:  # anywhere within the joint limits: big jumps
        q = rng.uniform(lo, hi, size=(n, dof))
    elif kind < 0.8:  # outside the joint limits
        q = q_now + rng.normal(scale=4.0, size=(n, dof))
    elif kind < 0.9:  # bad dt
        q = q_now + rng.normal(scale=0.001, size=(n, dof))
        dt = float(rng.choice([0.0, -0.05, 1e-9, 1e300, 3600.0, np.inf, np.nan]))
    else:             # NaN, wrong shapes, bad gripper widths
        q = q_now + rng.normal(scale=0.001, size=(n, dof))
        bad = rng.integers(3)
        if bad == 0:
            q[0, rng.integers(dof)] = np.nan
        elif bad == 1:
            q = q[:, :-1]
        else:
            return {"op": "execute", "trajectory": {"joint_pos_rad": q, "gripper_width_m": np.full(n, 5.0),
                                                    "dt_s": dt}}
    return {"op": "execute", "trajectory": {"joint_pos_rad": q, "gripper_width_m": np.full(len(q), 0.08),
                                            "dt_s": dt}}


@pytest.mark.slow
def test_fuzzed_commands_never_exceed_the_limits(panda):
    limits = ControllerLimits()
    v_max = np.asarray(panda.max_joint_speed_rad_s)
    a_max = limits.accel(panda.dof)
    lo, hi = np.asarray(panda.joint_lower_rad), np.asarray(panda.joint_upper_rad)
    box_lo, box_hi = np.asarray(panda.workspace_min_xyz), np.asarray(panda.workspace_max_xyz)
    kin_client = p.connect(p.DIRECT)
    world = World.from_scene(kin_client, SceneSpec(robot=panda))
    kin = TcpKinematics(panda)
    rng = np.random.default_rng(15)
    for q in rng.uniform(lo, hi, size=(20, panda.dof)):   # the fast FK agrees with the World's
        np.testing.assert_allclose(kin.xyz(q), world.fk(q).position, atol=1e-9)
    p.disconnect(kin_client)
    refused: dict[str, int] = {}
    accepted = stopped = 0
    worst = {"speed_ratio": 0.0, "window_speed_ratio": 0.0, "waypoint_step_rad": 0.0, "accel_ratio": 0.0,
             "outside_box_m": 0.0, "commanded_outside_box_m": 0.0, "window_speed_ratio_at_stop": 0.0}
    where_out = None
    t0 = time.monotonic()
    with launch_lab(_spec(panda), seed=0) as lab, lab_client.connect(lab, "control") as ctrl:
        q_now = np.asarray(lab_client.request(ctrl, {"op": "status"})["joint_pos_rad"])
        for _ in range(N_FUZZ):
            msg = _random_command(rng, q_now, v_max, a_max, lo, hi, panda.dof)
            reply = ask(ctrl, msg)
            if not reply["ok"]:
                why = reply["error"].split(":")[0] if not reply.get("protective_stop") else \
                    "protective stop: " + reply["error"].split(": ")[1].split()[0]
                refused[why] = refused.get(why, 0) + 1
                continue
            accepted += 1
            while (st := lab_client.request(ctrl, {"op": "status"}))["executing"]:
                time.sleep(0.001)
            stopped += not st["completed"]
            trace = lab_client.request(ctrl, {"op": "trace"})["trace"]
            q_cmd = np.asarray(msg["trajectory"]["joint_pos_rad"])
            dt = float(msg["trajectory"]["dt_s"])
            # What the lab accepted obeys its rules (measured, as the lab does, from the arm's position clipped
            # into the joint limits: physics can leave a held joint a little past a limit) ...
            steps = np.diff(np.vstack([np.clip(q_now, lo, hi)[None], q_cmd]), axis=0)
            worst["waypoint_step_rad"] = max(worst["waypoint_step_rad"], float(np.abs(steps).max()))
            worst["accel_ratio"] = max(worst["accel_ratio"], float(np.max(velocity_changes(steps) / dt**2 / a_max)))
            for pt in path_samples(q_now, q_cmd, 0.002)[0]:
                xyz = kin.xyz(pt)
                worst["commanded_outside_box_m"] = max(worst["commanded_outside_box_m"],
                                                       float(np.max(np.maximum(box_lo - xyz, xyz - box_hi))))
            # ... and so does the motion, measured in the lab's physics every step.
            q_phys = np.vstack([q_now[None], np.asarray(trace["joint_pos_rad"])])
            per_step = np.abs(np.diff(q_phys, axis=0)) / TIMESTEP_S / v_max
            worst["speed_ratio"] = max(worst["speed_ratio"], float(per_step.max()))
            padded = np.vstack([np.repeat(q_now[None], SPEED_WINDOW_STEPS, axis=0), q_phys])   # at rest before
            window = (np.abs(padded[SPEED_WINDOW_STEPS:] - padded[:-SPEED_WINDOW_STEPS]) / (
                SPEED_WINDOW_STEPS * TIMESTEP_S) / v_max).max(axis=1)
            if (st["stopped_reason"] or "").startswith("protective_stop: joint"):
                # The step on which the monitor saw the overspeed (a contact can kick a joint within one step)
                # is the last one the motion ran: the lab stopped it there.
                worst["window_speed_ratio_at_stop"] = max(worst["window_speed_ratio_at_stop"], float(window[-1]))
                window = window[:-1]
            worst["window_speed_ratio"] = max(worst["window_speed_ratio"], float(window.max(initial=0.0)))
            for i, q in enumerate(q_phys[1:]):
                xyz = kin.xyz(q)
                out = float(np.max(np.maximum(box_lo - xyz, xyz - box_hi)))
                if out > worst["outside_box_m"]:
                    worst["outside_box_m"] = out
                    where_out = (xyz.round(4).tolist(), i, len(q_phys) - 1, dt, st["stopped_reason"])
            q_now = np.asarray(st["joint_pos_rad"])
    kin.close()
    elapsed = time.monotonic() - t0
    print(f"\n{N_FUZZ} fuzzed commands in {elapsed:.1f} s: {accepted} accepted ({stopped} stopped by the lab), "
          f"refused {dict(sorted(refused.items()))}; worst {({k: round(v, 4) for k, v in worst.items()})}; "
          f"TCP farthest out at {where_out}")
    assert accepted >= 500 and sum(refused.values()) + accepted == N_FUZZ
    assert refused.get("protective stop: the", 0) > 0 or refused.get("protective stop: waypoint", 0) > 0
    assert worst["waypoint_step_rad"] <= limits.max_joint_step_rad * (1 + 1e-6)
    assert worst["accel_ratio"] <= 1.0 + 1e-6
    assert worst["commanded_outside_box_m"] <= limits.workspace_tol_m + 1e-4
    # Measured in physics: the speed (over the controller's 50 ms window) within the limit plus the monitor's
    # tolerance on every step but the one where the monitor stopped the motion; the TCP within the box plus the
    # monitor's tolerance, plus the few millimetres the arm travels
    # while it brakes after a protective stop (tracking error can take the TCP off the commanded path).
    assert worst["window_speed_ratio"] <= 1.0 + limits.runtime_speed_tol
    assert worst["outside_box_m"] <= limits.runtime_workspace_tol_m + BRAKING_ALLOWANCE_M


def test_protective_stop_reaches_the_client(panda):
    with launch_lab(_spec(panda), seed=0) as lab, \
            SimRobot(lab.host, lab.port, secret=lab.control_secret) as robot:
        q0 = np.asarray(robot.status()["joint_pos_rad"])
        # Bypass the envelope: a 0.4 rad jump in one physics step.
        with pytest.raises(ProtectiveStopError, match="protective stop: waypoint 0: joint 6 jumps 0.4000 rad"):
            robot._request({"op": "execute", "trajectory": JointTrajectory(
                (q0 + [0, 0, 0, 0, 0, 0, 0.4])[None], 0.08, TIMESTEP_S).to_msg()})
        st = robot.status()
        assert st["protective_stop"].startswith("refused: waypoint 0: joint 6 jumps")
        np.testing.assert_allclose(st["joint_pos_rad"], q0, atol=1e-9)
        # The envelope's own output always passes: a long move is subdivided, slowed and accelerated gently.
        report = robot.execute(JointTrajectory((q0 + [0.6, 0.3, 0, -0.3, 0, 0.4, 0.8])[None], 0.08, 0.05))
        assert report.completed and report.reach_tol_rad == ControllerLimits().reach_tol_rad
        assert np.abs(report.final_joint_pos_rad - report.sent.joint_pos_rad[-1]).max() <= report.reach_tol_rad


def test_blocked_arm_is_not_completed(panda):
    # A fixed box under the TCP: the commanded path (20 cm straight down) is allowed, the fingers cannot get
    # there, so the motion is not completed.
    kin_client = p.connect(p.DIRECT)
    kin = World.from_scene(kin_client, SceneSpec(robot=panda))
    home = np.asarray(panda.home_joint_pos_rad)
    tcp = kin.fk(home)
    q_goal, err = kin.ik(Pose(tcp.position - [0, 0, 0.2], tcp.quat_xyzw), home)
    p.disconnect(kin_client)
    assert err < 1e-3
    box = ObjectSpec("box", Pose(tuple(tcp.position - [0, 0, 0.15])), urdf=os.path.join(
        pybullet_data.getDataPath(), "cube.urdf"), scale=0.1, fixed=True)
    spec = LabSpec(SceneSpec(panda, (box,)), (), settle_s=0.1)
    with launch_lab(spec, seed=0) as lab, SimRobot(lab.host, lab.port, secret=lab.control_secret) as robot:
        report = robot.execute(JointTrajectory(q_goal[None], 0.08, 0.05))
        assert not report.completed
        assert report.stopped_reason.startswith(("not_reached", "protective_stop")), report.stopped_reason
        assert np.abs(report.final_joint_pos_rad - report.sent.joint_pos_rad[-1]).max() > report.reach_tol_rad
