"""Rim pinch grasps: on a flared bowl built here (always) and on the converted LIBERO bowl (when generated), held by
pybullet_data's Panda closing its fingers in a PyBullet twin."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pybullet as p
import pybullet_data
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from planner.rim_grasps import RimGraspConfig, rim_contact, rim_grasps, world_mesh
from sim.geometry import Pose

LIBERO_BOWL = Path(__file__).resolve().parents[2].parent / "libero2/.libero-assets/objects/akita_black_bowl/visual.obj"
FINGER_AXIS_TCP = np.array([0.0, 1.0, 0.0])   # pybullet_data's Panda: the fingers slide along the hand's y
OFF_AXIS = np.array([0.0, -0.1, 0.0])         # the model's origin off the bowl's axis, as in the LIBERO model


def flared_bowl(wall_m: float = 0.006, flare_m: float = 0.010) -> trimesh.Trimesh:
    """A bowl 45 mm tall with a floor, its wall `wall_m` thick (horizontally) and leaning out by flare_m, its
    origin 10 cm off its axis."""
    h, r0 = 0.045, 0.040
    slope = flare_m / h
    profile = np.array([(0.0, 0.0), (r0, 0.0), (r0 + flare_m, h), (r0 + flare_m - wall_m, h),
                        (r0 + flare_m - wall_m - slope * (h - 0.005), 0.005), (0.0, 0.005)])
    mesh = trimesh.creation.revolve(profile, sections=64)
    mesh.apply_translation(OFF_AXIS)
    return mesh


def solid_drum() -> trimesh.Trimesh:
    return trimesh.creation.cylinder(radius=0.056, height=0.05, sections=64)


def test_flared_bowl_pinches_all_round_with_opposing_normals():
    mesh = flared_bowl()
    T = Pose((0.5, 0.0, 0.0), tuple(Pose.from_xyz_rpy_deg((0, 0, 0), (0, 0, 30)).quat_xyzw))
    grasps = rim_grasps("bowl", mesh, T, FINGER_AXIS_TCP, n_dirs=12)
    assert len(grasps) == 12
    wm = world_mesh(mesh, T)
    lo, hi = wm.bounds
    axis = (lo[:2] + hi[:2]) / 2
    assert np.allclose(axis, [0.5 + 0.1 * math.sin(math.radians(30)), -0.1 * math.cos(math.radians(30))],
                       atol=1e-3)
    for g in grasps:
        # outer pad at the rim's outer edge (50 mm), inner pad at the wall's inside at its fingertip (39.1 mm)
        assert 0.0095 <= g.width_m <= 0.0125
        r = float(np.linalg.norm(np.asarray(g.tcp.position[:2]) - axis))
        assert 0.040 < r < 0.050
        assert g.tcp.position[2] == pytest.approx(hi[2] - 0.016)
        # the TCP's finger axis lies along the radial closing direction; the approach points down
        R = g.tcp.rotation()
        radial = np.append((np.asarray(g.tcp.position[:2]) - axis) / r, 0.0)
        assert abs(R @ FINGER_AXIS_TCP @ radial) > 0.99
        assert R[:, 2] @ np.array([0, 0, -1.0]) > 0.99
    c = rim_contact(wm, axis, 0.3, hi[2] - 0.016, RimGraspConfig())
    assert c is not None and c.opposition_deg < 5.0
    # both normals lean off the horizontal closing direction by the flare, yet oppose each other
    assert abs(math.degrees(math.asin(abs(c.outer_normal[2]))) - math.degrees(math.atan(0.010 / 0.045))) < 3.0


def test_no_rim_on_a_solid_drum_or_a_thick_wall_or_a_shallow_dish():
    assert rim_grasps("drum", solid_drum(), Pose(), FINGER_AXIS_TCP, n_dirs=8) == []
    assert rim_grasps("thick", flared_bowl(wall_m=0.045), Pose(), FINGER_AXIS_TCP, n_dirs=8) == []
    dish = flared_bowl()
    dish.apply_scale([1.0, 1.0, 0.25])   # 11 mm tall: the pads cannot go 16 mm below its rim
    assert rim_grasps("dish", dish, Pose(), FINGER_AXIS_TCP, n_dirs=8) == []


def test_friction_cone_rejects_walls_whose_normals_do_not_oppose():
    # a wall thickening towards the bottom: the two faces lean by different angles (about 30 degrees apart)
    h = 0.045
    profile = np.array([(0.0, 0.0), (0.040, 0.0), (0.050, h), (0.046, h), (0.022, 0.005), (0.0, 0.005)])
    mesh = trimesh.creation.revolve(profile, sections=48)
    tight = RimGraspConfig(friction_mu=0.3)
    c = rim_contact(mesh, np.zeros(2), 0.0, h - 0.016, tight)
    assert c is not None and c.opposition_deg > math.degrees(math.atan(0.3))
    assert rim_grasps("wedge", mesh, Pose(), FINGER_AXIS_TCP, n_dirs=8, config=tight) == []


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="RimGraspConfig.friction_mu"):
        RimGraspConfig(friction_mu=0.0)
    with pytest.raises(ValueError, match="n_dirs"):
        rim_grasps("bowl", flared_bowl(), Pose(), FINGER_AXIS_TCP, n_dirs=0)


def _twin_hold(mesh_world: trimesh.Trimesh, grasp, tmp_path: Path) -> tuple[int, int, int, float]:
    """Teleport pybullet_data's Panda to the grasp with its fingers open, then close them on the (fixed) object:
    (contacts before closing, left and right finger's contacts after, the fingers' opening after)."""
    cid = p.connect(p.DIRECT)
    try:
        obj_path = tmp_path / "object.obj"
        mesh_world.export(obj_path)
        shape = p.createCollisionShape(p.GEOM_MESH, fileName=str(obj_path), flags=p.GEOM_FORCE_CONCAVE_TRIMESH,
                                       physicsClientId=cid)
        obj = p.createMultiBody(0, shape, physicsClientId=cid)
        robot = p.loadURDF(str(Path(pybullet_data.getDataPath()) / "franka_panda/panda.urdf"), useFixedBase=True,
                           physicsClientId=cid)
        tcp_link, fingers = 11, (9, 10)
        target = list(grasp.tcp.position)
        ready = [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8]   # top-down, elbow up: IK stays within the joint limits
        lower = [p.getJointInfo(robot, j, physicsClientId=cid)[8] for j in range(7)] + [0.0, 0.0]
        upper = [p.getJointInfo(robot, j, physicsClientId=cid)[9] for j in range(7)] + [0.04, 0.04]
        # the gripper is symmetric: of the grasp and its half turn about the approach, the one the wrist reaches
        flip = (Rotation.from_quat(grasp.tcp.quat_xyzw) * Rotation.from_euler("z", math.pi)).as_quat()
        for quat in (list(grasp.tcp.quat_xyzw), list(flip)):
            for j in range(7):
                p.resetJointState(robot, j, ready[j], physicsClientId=cid)
            for _ in range(20):   # IK from the posed arm converges to sub-millimetre
                q = p.calculateInverseKinematics(robot, tcp_link, target, quat, lowerLimits=lower, upperLimits=upper,
                                                 jointRanges=[u - lo for u, lo in zip(upper, lower)],
                                                 restPoses=ready + [0.039, 0.039], maxNumIterations=200,
                                                 residualThreshold=1e-6, physicsClientId=cid)
                for j in range(7):
                    p.resetJointState(robot, j, q[j], physicsClientId=cid)
            state = p.getLinkState(robot, tcp_link, computeForwardKinematics=True, physicsClientId=cid)
            if np.linalg.norm(np.asarray(state[4]) - target) < 2e-3:
                break
        for j in fingers:
            p.resetJointState(robot, j, 0.039, physicsClientId=cid)
        reached = np.asarray(p.getLinkState(robot, tcp_link, computeForwardKinematics=True, physicsClientId=cid)[4])
        assert np.linalg.norm(reached - target) < 2e-3
        p.performCollisionDetection(physicsClientId=cid)
        before = len(p.getContactPoints(robot, obj, physicsClientId=cid))
        for j in range(7):
            p.setJointMotorControl2(robot, j, p.POSITION_CONTROL, q[j], force=500, physicsClientId=cid)
        for j in fingers:
            p.setJointMotorControl2(robot, j, p.POSITION_CONTROL, 0.0, force=20.0, physicsClientId=cid)
        for _ in range(240):
            p.stepSimulation(physicsClientId=cid)
        held = [p.getJointState(robot, j, physicsClientId=cid)[0] for j in range(7)]
        assert np.allclose(held, q[:7], atol=1e-2)   # the arm stayed where IK put it (within its limits)
        left = len(p.getContactPoints(robot, obj, fingers[0], -1, physicsClientId=cid))
        right = len(p.getContactPoints(robot, obj, fingers[1], -1, physicsClientId=cid))
        gap_m = sum(p.getJointState(robot, j, physicsClientId=cid)[0] for j in fingers)
        return before, left, right, gap_m
    finally:
        p.disconnect(cid)


def test_flared_bowl_grasp_closes_both_fingers_on_the_wall_in_pybullet(tmp_path):
    mesh = flared_bowl()
    T = Pose((0.5, 0.1, 0.02))
    grasps = rim_grasps("bowl", mesh, T, FINGER_AXIS_TCP, n_dirs=8)
    before, left, right, gap_m = _twin_hold(world_mesh(mesh, T), grasps[0], tmp_path)
    assert before == 0          # the open fingers straddle the wall without touching it
    assert left > 0 and right > 0
    assert gap_m > 0.005        # stopped on the wall, not closed through it


def test_twin_check_fails_for_a_grasp_off_the_wall(tmp_path):
    mesh = flared_bowl()
    T = Pose((0.5, 0.1, 0.02))
    g = rim_grasps("bowl", mesh, T, FINGER_AXIS_TCP, n_dirs=8)[0]
    inward = np.array([0.5, 0.0, 0.0]) - np.asarray(g.tcp.position) * np.array([1, 1, 0])
    inward /= np.linalg.norm(inward)
    off = replace(g, tcp=Pose(tuple(np.asarray(g.tcp.position) + 0.035 * inward), g.tcp.quat_xyzw))
    before, left, right, _ = _twin_hold(world_mesh(mesh, T), off, tmp_path)
    assert before > 0 or left == 0 or right == 0


@pytest.mark.skipif(not LIBERO_BOWL.exists(), reason=f"converted LIBERO bowl not generated at {LIBERO_BOWL}")
def test_libero_bowl_rim_grasps_all_round_and_hold_in_pybullet(tmp_path):
    mesh = trimesh.load(LIBERO_BOWL, force="mesh")
    T = Pose((0.5, 0.2, 0.02))   # its origin is ~10 cm off its axis: the bowl sits near y = 0.1
    grasps = rim_grasps("akita_black_bowl", mesh, T, FINGER_AXIS_TCP, n_dirs=16)
    assert len(grasps) >= 8
    for g in grasps:
        assert 0.008 <= g.width_m <= 0.020
    before, left, right, gap_m = _twin_hold(world_mesh(mesh, T), grasps[0], tmp_path)
    assert before == 0
    assert left > 0 and right > 0
    assert gap_m > 0.005


LIBERO_BOWL_URDF = LIBERO_BOWL.parent / "model.urdf"


def _ik(robot: int, cid: int, target, quat, q_start) -> list[float]:
    lower = [p.getJointInfo(robot, j, physicsClientId=cid)[8] for j in range(7)] + [0.0, 0.0]
    upper = [p.getJointInfo(robot, j, physicsClientId=cid)[9] for j in range(7)] + [0.04, 0.04]
    q = list(q_start)
    for _ in range(20):
        for j in range(7):
            p.resetJointState(robot, j, q[j], physicsClientId=cid)
        q = list(p.calculateInverseKinematics(robot, 11, list(target), list(quat), lowerLimits=lower,
                                              upperLimits=upper, jointRanges=[u - lo for u, lo in zip(upper, lower)],
                                              restPoses=list(q_start[:7]) + [0.039, 0.039], maxNumIterations=200,
                                              residualThreshold=1e-6, physicsClientId=cid))
    return q[:7]


@pytest.mark.skipif(not LIBERO_BOWL_URDF.exists(), reason=f"converted LIBERO bowl not generated at {LIBERO_BOWL_URDF}")
def test_libero_bowl_is_lifted_by_a_rim_pinch_in_pybullet():
    """The bowl dynamic (its URDF's collision pieces, its mass) on a floor under gravity: pinched at the best rim
    grasp found on those pieces and lifted 6 cm, it comes up with the hand."""
    from reconstruction.models import load_geometry

    mesh = load_geometry(str(LIBERO_BOWL_URDF), 1.0).support_mesh
    T = Pose((0.5, 0.2, 0.0))
    grasps = rim_grasps("akita_black_bowl", mesh, T, FINGER_AXIS_TCP, n_dirs=16, config=RimGraspConfig(friction_mu=1.0))
    assert len(grasps) >= 8
    cid = p.connect(p.DIRECT)
    try:
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        p.loadURDF(str(Path(pybullet_data.getDataPath()) / "plane.urdf"), physicsClientId=cid)
        bowl = p.loadURDF(str(LIBERO_BOWL_URDF), T.xyz, T.quat_xyzw, physicsClientId=cid)
        robot = p.loadURDF(str(Path(pybullet_data.getDataPath()) / "franka_panda/panda.urdf"), useFixedBase=True,
                           physicsClientId=cid)
        for j in (9, 10):
            p.changeDynamics(robot, j, lateralFriction=1.0, physicsClientId=cid)
        for _ in range(60):
            p.stepSimulation(physicsClientId=cid)
        z0 = p.getBasePositionAndOrientation(bowl, physicsClientId=cid)[0][2]
        g = grasps[0]
        ready = [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8]
        flip = (Rotation.from_quat(g.tcp.quat_xyzw) * Rotation.from_euler("z", math.pi)).as_quat()
        for quat in (g.tcp.quat_xyzw, tuple(flip)):
            q = _ik(robot, cid, g.tcp.position, quat, ready)
            reached = p.getLinkState(robot, 11, computeForwardKinematics=True, physicsClientId=cid)[4]
            if np.linalg.norm(np.asarray(reached) - g.tcp.position) < 2e-3:
                break
        for j in (9, 10):
            p.resetJointState(robot, j, 0.039, physicsClientId=cid)
        for j in range(7):
            p.setJointMotorControl2(robot, j, p.POSITION_CONTROL, q[j], force=500, physicsClientId=cid)
        for j in (9, 10):
            p.setJointMotorControl2(robot, j, p.POSITION_CONTROL, 0.0, force=20.0, physicsClientId=cid)
        for _ in range(120):
            p.stepSimulation(physicsClientId=cid)
        lift = np.asarray(g.tcp.position) + np.array([0.0, 0.0, 0.06])
        q_up = _ik(robot, cid, lift, quat, q)
        for j in range(7):
            p.resetJointState(robot, j, q[j], physicsClientId=cid)
        for k in range(1, 241):   # raise the hand over a second
            for j in range(7):
                p.setJointMotorControl2(robot, j, p.POSITION_CONTROL, q[j] + (q_up[j] - q[j]) * min(1.0, k / 200),
                                        force=500, physicsClientId=cid)
            p.stepSimulation(physicsClientId=cid)
        z1 = p.getBasePositionAndOrientation(bowl, physicsClientId=cid)[0][2]
        hand_rise = p.getLinkState(robot, 11, computeForwardKinematics=True, physicsClientId=cid)[4][2] - g.tcp.xyz[2]
        assert hand_rise > 0.04
        # pinched on one side the bowl tips about the pinch (its centre of mass is ~5 cm away) but hangs in the hand:
        # its lowest point well off the floor, its centre risen most of the way
        assert p.getAABB(bowl, physicsClientId=cid)[0][2] > 0.015
        assert z1 - z0 > 0.6 * hand_rise, (z1 - z0, hand_rise)
        for _ in range(240):   # held still for a second: it does not slide out
            p.stepSimulation(physicsClientId=cid)
        z2 = p.getBasePositionAndOrientation(bowl, physicsClientId=cid)[0][2]
        assert abs(z2 - z1) < 0.003, (z1, z2)
    finally:
        p.disconnect(cid)
