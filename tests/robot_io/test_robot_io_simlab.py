"""The sim lab as a real subprocess: observe, execute, evaluate, watchdog, and a killed lab.

Kept short: tiny images, one cube, one lab per scenario.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pybullet_data
import pytest

from robot_io.errors import ConnectionLostError, NotConnectedError, SafetyRejected
from robot_io.lab_process import _read_port
from robot_io.labspec import LabSpec
from robot_io.sim_robot import LabEvaluator, LabStartError, SimRobot, launch_lab
from robot_io.trajectory import JointTrajectory
from sim.camera import CameraSpec
from sim.geometry import Pose
from sim.scene import ObjectSpec, SceneSpec
from tests.robot_io import lab_client

EYE = np.array([1.25, 0.0, 0.75])
TARGET = np.array([0.45, 0.0, 0.0])
CUBE_XYZ = (0.55, 0.15, 0.025)
CUBE_URDF = os.path.join(pybullet_data.getDataPath(), "cube_small.urdf")


@pytest.fixture(scope="module")
def panda(panda_spec):  # tests/conftest.py: RobotSpec.from_yaml("configs/robots/panda.yaml")
    return panda_spec


def _spec(panda, **kw):
    cube = ObjectSpec("cube", Pose.from_xyz_rpy_deg(CUBE_XYZ, (0, 0, 15)), urdf=CUBE_URDF, mass_kg=0.1,
                      friction=0.8)
    cam = CameraSpec.look_at("front", 80, 60, 55, EYE, TARGET, depth_noise_m=0.001)
    return LabSpec(SceneSpec(panda, (cube,)), (cam,),
                   success={"at": {"object": "cube", "xyz": list(CUBE_XYZ), "within_m": 0.01}},
                   settle_s=0.3, **kw)


@pytest.fixture(scope="module")
def lab(panda):
    with launch_lab(_spec(panda), seed=0) as lab:
        yield lab


def test_observe_execute_evaluate(lab, panda):
    robot = SimRobot(lab.host, lab.port, secret=lab.control_secret)
    with pytest.raises(NotConnectedError):
        robot.observe()
    with robot:
        assert robot.is_connected and robot.camera_names == ("front",) and robot.dof == 7
        obs = robot.observe()
        (frame,) = obs.frames
        assert frame.name == "front" and frame.rgb.shape == (60, 80, 3) and frame.depth_m.shape == (60, 80)
        assert frame.rgb.dtype == np.uint8 and frame.depth_m.dtype == np.float32
        cam = _spec(panda).cameras[0]
        np.testing.assert_allclose(frame.K, cam.K)
        np.testing.assert_allclose(frame.T_world_camera, cam.T_world_camera_matrix)
        # Around the image centre the camera sees the bare table (the plane z = 0): each pixel's ray from
        # the eye meets it at a depth we can compute, about the 1.10 m eye-target distance. Noise is ~1 mm.
        v, u = int(cam.cy), int(cam.cx)
        R, eye = frame.T_world_camera[:3, :3], frame.T_world_camera[:3, 3]
        errs = []
        for dv in (-1, 0, 1):
            for du in (-1, 0, 1):
                ray_world = R @ (np.linalg.inv(frame.K) @ np.array([u + du, v + dv, 1.0]))
                expected_z = -eye[2] / ray_world[2]  # optical-frame ray has z = 1, so t is the z-depth
                errs.append(frame.depth_m[v + dv, u + du] - expected_z)
        assert abs(float(np.nanmedian(errs))) < 0.003
        assert float(np.nanmedian(frame.depth_m[v - 1:v + 2, u - 1:u + 2])) == pytest.approx(
            np.linalg.norm(EYE - TARGET), abs=0.03)
        np.testing.assert_allclose(obs.joint_pos_rad, panda.home_joint_pos_rad, atol=0.01)
        assert obs.gripper_width_m == pytest.approx(panda.gripper_max_width_m, abs=1e-3)
        np.testing.assert_allclose(obs.T_world_tcp[:3, :3] @ obs.T_world_tcp[:3, :3].T, np.eye(3), atol=1e-6)

        goal = obs.joint_pos_rad + np.array([0.25, 0.0, 0.0, 0.15, 0.0, 0.0, 0.0])
        report = robot.execute(JointTrajectory(goal[None], panda.gripper_max_width_m, 0.05))
        assert report.completed and report.stopped_reason is None
        assert any("bridged" in n for n in report.notes)
        steps = np.diff(np.vstack([obs.joint_pos_rad, report.sent.joint_pos_rad]), axis=0)
        assert np.abs(steps).max() <= 0.05 + 1e-9  # EnvelopeConfig's default max_joint_step_rad
        np.testing.assert_allclose(report.sent.joint_pos_rad[-1], goal)
        np.testing.assert_allclose(report.final_joint_pos_rad, goal, atol=0.01)
        np.testing.assert_allclose(robot.observe().joint_pos_rad, goal, atol=0.01)

        with pytest.raises(SafetyRejected):
            robot.execute(JointTrajectory(np.full((1, 7), np.nan), 0.08, 0.05))

    assert not robot.is_connected
    truth = LabEvaluator(lab.host, lab.port, secret=lab.eval_secret).truth()
    assert set(truth["objects"]) == {"cube"}
    np.testing.assert_allclose(truth["objects"]["cube"]["xyz"], CUBE_XYZ, atol=0.005)  # randomize is 0 here
    assert truth["success"] is True and truth["grasped"] is None and truth["seed"] == 0


def test_watchdog_stops_a_silent_planner(panda):
    spec = _spec(panda, realtime_factor=1.0, heartbeat_timeout_s=0.4)
    home = np.asarray(panda.home_joint_pos_rad)
    with launch_lab(spec, seed=0) as lab:
        # A polling SimRobot is never "silent": a 0.6 s move, longer than the timeout, completes.
        with SimRobot(lab.host, lab.port, secret=lab.control_secret) as robot:
            robot.observe()  # the first render initialises the renderer; later ones are fast
            short = JointTrajectory(home[None] + [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1], 0.08, 0.6)
            assert robot.execute(short).completed
            home = robot.status()["joint_pos_rad"]
            # 3 s at real time: joint 0 sweeps 0.9 rad.
            path = home + np.outer(np.linspace(0.015, 0.9, 60), [1, 0, 0, 0, 0, 0, 0])
            traj = JointTrajectory(path, panda.gripper_max_width_m, 0.05)

        # A raw client (no heartbeat thread) starts the long move and goes silent.
        silent = lab_client.connect(lab, "control")
        reply = lab_client.request(silent, {"op": "execute", "trajectory": traj.to_msg()})
        assert reply["accepted"]
        t_sent = time.monotonic()
        with lab_client.connect(lab, "evaluate") as other:
            # The evaluation channel is served while the arm moves (it is not the planner's heartbeat).
            assert lab_client.request(other, {"op": "status"})["executing"]
            time.sleep(max(0.0, 1.2 - (time.monotonic() - t_sent)))
            st = lab_client.request(other, {"op": "status"})
            assert st["exec_id"] == reply["exec_id"] and not st["executing"]
            assert st["stopped_reason"] == "watchdog" and not st["completed"]
            assert st["motion_after_last_message_s"] <= spec.heartbeat_timeout_s + 1e-9
            q = np.asarray(st["joint_pos_rad"])
            # It moved (about 0.1 rad in the 0.4 s before the watchdog), then stopped well short of the goal.
            assert 0.002 < q[0] - home[0] < 0.6
            time.sleep(0.2)
            np.testing.assert_allclose(lab_client.request(other, {"op": "status"})["joint_pos_rad"], q, atol=1e-3)
        silent.close()
        with lab_client.connect(lab, "control") as ctrl:
            lab_client.request(ctrl, {"op": "shutdown"})
        assert lab.popen.wait(timeout=10) == 0
        assert "watchdog: planner silent for" in lab.log_path.read_text()
        assert lab.popen.stdout.read() == b""  # nothing but the port line ever reached stdout


def test_killed_lab_raises_connection_lost(panda):
    with launch_lab(_spec(panda), seed=1) as lab:
        robot = SimRobot(lab.host, lab.port, secret=lab.control_secret, reply_timeout_s=5.0)
        robot.connect()
        try:
            robot.observe()
            lab.popen.kill()
            lab.popen.wait(timeout=10)
            lost = f"sim lab at 127.0.0.1:{lab.port} dropped the connection"
            with pytest.raises(ConnectionLostError, match=lost):
                robot.observe()
            assert not robot.is_connected
            with pytest.raises(ConnectionLostError):
                robot.status()
        finally:
            robot.disconnect()
        with pytest.raises(NotConnectedError):
            robot.observe()
    with pytest.raises(ConnectionLostError, match="cannot reach"):
        SimRobot("127.0.0.1", lab.port, secret=lab.control_secret, connect_timeout_s=1.0).connect()


def test_lab_start_failures_carry_the_log_tail(tmp_path):
    log = tmp_path / "lab.log"
    code = "import sys; print('noise'); sys.stderr.write('boom: bad spec\\n'); sys.exit(3)"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=f)
    with pytest.raises(LabStartError, match="(?s)code 3.*boom: bad spec"):
        _read_port(proc, log, timeout_s=10.0)
    proc.stdout.close()
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], stdout=subprocess.PIPE,
                                stderr=f)
    try:
        with pytest.raises(LabStartError, match="did not report its port"):
            _read_port(proc, log, timeout_s=0.5)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
