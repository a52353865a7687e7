import numpy as np
import pybullet
import pybullet_data
import pytest

from sim import predicates
from sim.geometry import Pose
from sim.rollout import Candidate, Contact, _expected, touching_pairs
from sim.scene import ObjectSpec, RobotSpec, SceneSpec
from sim.world import World

CUBE = f"{pybullet_data.getDataPath()}/cube_small.urdf"


def _scene(robot, red_yaw=30.0):
    red = ObjectSpec("red", Pose.from_xyz_rpy_deg((0.5, 0.1, 0.025), (0, 0, red_yaw)), urdf=CUBE,
                     rgba=(0.8, 0.1, 0.1, 1), symmetry="cube")
    blue = ObjectSpec("blue", Pose.from_xyz_rpy_deg((0.5, -0.1, 0.025)), urdf=CUBE, rgba=(0.1, 0.1, 0.8, 1),
                      symmetry="cube")
    return SceneSpec(robot, (red, blue))


def _down(robot, xyz, yaw=0.0):
    return Pose(xyz) @ Pose.from_xyz_rpy_deg((0, 0, 0), (0, 0, yaw)) @ robot.tcp_down


def test_ik_fk_round_trip(client, panda_spec):
    world = World.from_scene(client, _scene(panda_spec))
    target = _down(panda_spec, (0.45, -0.1, 0.2), 20)
    q, err = world.ik(target)
    reached = world.fk(q)
    assert err < 1e-3
    np.testing.assert_allclose(reached.position, target.position, atol=1e-3)
    assert np.degrees(np.arccos(np.clip(reached.rotation()[:, 2] @ target.rotation()[:, 2], -1, 1))) < 1.0
    # ik/fk leave the arm where it was
    np.testing.assert_allclose(world.joint_pos_rad(), panda_spec.home_joint_pos_rad, atol=1e-9)


def test_xarm_config_loads_and_reaches(client):
    import os

    from tests.conftest import REPO
    xarm = RobotSpec.from_yaml(os.path.join(REPO, "configs", "robots", "xarm6.yaml"))
    world = World.from_scene(client, SceneSpec(xarm))
    q, err = world.ik(_down(xarm, (0.4, 0.0, 0.2)))
    assert err < 5e-3
    assert world.gripper_width_m() == pytest.approx(xarm.gripper_max_width_m, abs=1e-6)


def test_rollout_grasps_and_restores(client, panda_spec):
    world = World.from_scene(client, _scene(panda_spec))
    world.step(60)
    before = world.object_poses()
    q_before = world.joint_pos_rad()
    cand = Candidate(0, (_down(panda_spec, (0.5, 0.1, 0.12), 30), _down(panda_spec, (0.5, 0.1, 0.025), 30)), "close")
    roll = world.rollout(cand, allowed_contacts=frozenset({"red"}),
                         probe=lambda w: {"grasped": predicates.evaluate(w, {"grasped": "red"})})
    assert roll.feasible and roll.grasped_after == "red" and roll.probe["grasped"]
    assert roll.contacts == () and roll.disturbed == ()
    assert roll.joint_path_rad.shape[1] == 7 and len(roll.gripper_width_m) == len(roll.joint_path_rad)
    np.testing.assert_allclose(roll.ee_path_xyz[-1], (0.5, 0.1, 0.025), atol=0.01)
    # the world is back where it was
    assert world.grasped() is None
    for name, pose in world.object_poses().items():
        np.testing.assert_allclose(pose.position, before[name].position, atol=1e-6)
    np.testing.assert_allclose(world.joint_pos_rad(), q_before, atol=1e-6)


def test_rollout_reports_collision_with_other_object(client, panda_spec):
    world = World.from_scene(client, _scene(panda_spec))
    world.step(60)
    # sweep low through the blue block while only red is the subject
    cand = Candidate(1, (_down(panda_spec, (0.5, -0.25, 0.03)), _down(panda_spec, (0.5, 0.0, 0.03))), "keep")
    roll = world.rollout(cand, allowed_contacts=frozenset({"red"}))
    assert any(c.b == "blue" for c in roll.contacts) or "blue" in roll.disturbed


def test_stack_then_predicates(client, panda_spec):
    world = World.from_scene(client, _scene(panda_spec, red_yaw=0.0))
    world.step(60)
    for cand in (Candidate(0, (_down(panda_spec, (0.5, 0.1, 0.1)), _down(panda_spec, (0.5, 0.1, 0.025))), "close"),
                 Candidate(1, (_down(panda_spec, (0.5, 0.1, 0.15)), _down(panda_spec, (0.5, -0.1, 0.15)),
                               _down(panda_spec, (0.5, -0.1, 0.08))), "open")):
        roll = world.rollout(cand, allowed_contacts=frozenset({"red", "blue"}))
        world.execute_joint_path(roll.joint_path_rad, roll.gripper_width_m, roll.dt_s)
    world.step(120)
    goal = {"all": [{"on_top": ["red", "blue"]}, {"gripper_open": True}]}
    assert predicates.evaluate(world, goal)
    assert predicates.progress(world, goal) == 1.0
    assert not predicates.evaluate(world, {"on_top": ["blue", "red"]})


def test_update_scene_reuses_bodies(client, panda_spec):
    world = World.from_scene(client, _scene(panda_spec))
    ids = dict(world.body_ids)
    moved = _scene(panda_spec, red_yaw=0.0)
    world.update_scene(moved)
    assert world.body_ids == ids
    assert world.object_pose("red").rpy_deg()[2] == pytest.approx(0.0, abs=1e-6)


def test_mesh_object_collides_and_is_drawn(client, panda_spec):
    """Unknown clutter arrives as a convex mesh: it must block the arm and show up in the twin's pictures."""
    from sim.camera import CameraSpec, load_fast_renderer, render_rgbd

    load_fast_renderer(client)
    corners = tuple((x, y, z) for x in (-0.03, 0.03) for y in (-0.03, 0.03) for z in (0.0, 0.06))
    box = ObjectSpec("clutter_0", Pose((0.5, 0.0, 0.0)), mesh_vertices=corners, fixed=True, rgba=(0.2, 0.8, 0.2, 1))
    world = World.from_scene(client, SceneSpec(panda_spec, (box,)))
    lo, hi = world.object_aabb("clutter_0")
    np.testing.assert_allclose(lo[:2], (0.47, -0.03), atol=0.005)   # collision margin ~ a few mm
    np.testing.assert_allclose(hi[2], 0.06, atol=0.005)
    cam = CameraSpec.look_at("top", 64, 64, 30.0, eye=(0.5, 0.0, 0.8), target=(0.5, 0.0, 0.0), up=(1, 0, 0))
    rgbd = render_rgbd(client, cam, renderer=world.renderer)
    # a pixel covers 2 * 0.74 * tan(15 deg) / 64 = 6.2 mm at the box top, so the 6 cm top spans ~9.7 px
    centre = (slice(29, 35), slice(29, 35))
    assert (rgbd.seg[centre] == world.body_ids["clutter_0"]).all()
    assert (rgbd.seg[:, :16] != world.body_ids["clutter_0"]).all()
    # the box top is 0.74 m from the camera; every face is wound outwards so none is culled
    assert np.nanmedian(rgbd.depth_m[centre]) == pytest.approx(0.74, abs=0.005)


def test_release_height_is_measured(client, panda_spec):
    world = World.from_scene(client, _scene(panda_spec, red_yaw=0.0))
    world.step(60)
    grasp = Candidate(0, (_down(panda_spec, (0.5, 0.1, 0.1)), _down(panda_spec, (0.5, 0.1, 0.025))), "close")
    roll = world.rollout(grasp, allowed_contacts=frozenset({"red"}))
    world.execute_joint_path(roll.joint_path_rad, roll.gripper_width_m, roll.dt_s)
    assert world.grasped() == "red"
    high = world.rollout(Candidate(1, (_down(panda_spec, (0.5, 0.1, 0.125)),), "open"))
    low = world.rollout(Candidate(2, (_down(panda_spec, (0.5, 0.1, 0.03)),), "open"))
    # the cube's bottom is 2.5 cm below the TCP: released at TCP 12.5 cm it falls ~10 cm, at 3 cm ~0.5 cm
    assert high.release_drop_m == pytest.approx(0.10, abs=0.01)
    assert low.release_drop_m < 0.015


def test_pinching_the_top_edge_is_not_a_grasp(client, panda_spec):
    world = World.from_scene(client, _scene(panda_spec, red_yaw=0.0))
    world.step(60)
    # TCP 5 mm below the cube's top (5 cm): fingertips only catch the edge
    shallow = Candidate(0, (_down(panda_spec, (0.5, 0.1, 0.1)), _down(panda_spec, (0.5, 0.1, 0.045))), "close")
    deep = Candidate(1, (_down(panda_spec, (0.5, 0.1, 0.1)), _down(panda_spec, (0.5, 0.1, 0.025))), "close")
    assert world.rollout(shallow, allowed_contacts=frozenset({"red"})).grasped_after is None
    assert world.rollout(deep, allowed_contacts=frozenset({"red"})).grasped_after == "red"


def test_object_pose_is_the_urdf_link_frame_even_with_an_inertial_offset(client, panda_spec, tmp_path):
    urdf = tmp_path / "offset.urdf"
    urdf.write_text("""<robot name="o"><link name="base">
      <inertial><origin xyz="0 0 0.05"/><mass value="0.1"/><inertia ixx="1e-4" iyy="1e-4" izz="1e-4" ixy="0"
        ixz="0" iyz="0"/></inertial>
      <collision><geometry><box size="0.04 0.04 0.04"/></geometry></collision></link></robot>""")
    pose = Pose.from_xyz_rpy_deg((0.5, 0.2, 0.3), (0, 0, 30))
    spec = SceneSpec(panda_spec, (ObjectSpec("o", pose, urdf=str(urdf), fixed=True),))
    world = World.from_scene(client, spec)
    np.testing.assert_allclose(world.object_pose("o").matrix(), pose.matrix(), atol=1e-6)
    moved = Pose.from_xyz_rpy_deg((0.45, -0.1, 0.2), (0, 0, -20))
    world.update_scene(SceneSpec(panda_spec, (ObjectSpec("o", moved, urdf=str(urdf), fixed=True),)))
    np.testing.assert_allclose(world.object_pose("o").matrix(), moved.matrix(), atol=1e-6)


def _closing_axis_world(world) -> np.ndarray:
    a, b = (np.asarray(pybullet.getLinkState(world.robot_id, j, physicsClientId=world.client)[4])
            for j in world.finger_idx)
    return (b - a) / np.linalg.norm(b - a)


@pytest.mark.parametrize("across_m, held", [(0.0, True), (0.04, False)])
def test_a_grasp_needs_the_object_between_the_fingers_and_it_lifts_with_the_hand(client, panda_spec, across_m, held):
    """A 6 cm box centred between the fingers is held; the same box 4 cm to the side of the fingers, its face
    rubbing both fingers' sides while they close on nothing, is not (both finger links touch it: the old rule
    held it with the fingers shut)."""
    scene = SceneSpec(panda_spec, ())
    world = World.from_scene(client, scene)
    world.set_joint_pos(world.ik(_down(panda_spec, (0.5, 0.0, 0.12)))[0])
    closing = _closing_axis_world(world)
    across = np.cross(closing, (0.0, 0.0, 1.0))   # horizontal, perpendicular to the closing direction
    xyz = np.array([0.5, 0.0, 0.03]) + across_m * across
    pybullet.resetSimulation(physicsClientId=client)
    box = ObjectSpec("box", Pose(tuple(xyz)), urdf=CUBE, scale=1.2, rgba=(0.8, 0.1, 0.1, 1), symmetry="cube")
    world = World.from_scene(client, SceneSpec(panda_spec, (box,)))
    world.step(60)
    grasp = Candidate(0, (_down(panda_spec, (0.5, 0.0, 0.12)), _down(panda_spec, (0.5, 0.0, 0.03))), "close")
    roll = world.rollout(grasp, allowed_contacts=frozenset({"box"}),
                         probe=lambda w: {"grasped": predicates.evaluate(w, {"grasped": "box"}),
                                          "progress": predicates.progress(w, {"grasped": "box"})})
    assert (roll.grasped_after == "box") is held
    assert roll.probe["grasped"] is held
    assert (roll.probe["progress"] == 1.0) is held
    # and what is held rises with the hand; what is not stays on the table
    q, grip, dt, _ = world.plan_joint_path(grasp)
    world.execute_joint_path(q, grip, dt)
    lift = Candidate(1, (_down(panda_spec, (0.5, 0.0, 0.15)),), "keep")
    q, grip, dt, _ = world.plan_joint_path(lift)
    world.execute_joint_path(q, grip, dt)
    risen = world.object_pose("box").position[2] - 0.03
    assert bool(risen > 0.1) is held, f"box rose {risen:.3f} m"


def test_ik_error_counts_the_orientation_as_well_as_the_position(client, panda_spec):
    """Turned -135 degrees about the vertical from the home yaw, the wrist joint runs into its limit: the TCP is at
    the target within a millimetre but the hand is ~15 degrees off. The error says so, as the distance the
    farthest finger (orientation_lever_m from the TCP) is moved by that turn."""
    world = World.from_scene(client, SceneSpec(panda_spec))
    assert 0.04 <= world.orientation_lever_m <= 0.12      # the Panda's fingers: 4 cm half opening, ~5 cm long
    target = _down(panda_spec, (0.5, 0.0, 0.2), -135.0)
    q, err = world.ik(target, q_seed=panda_spec.home_joint_pos_rad)
    reached = world.fk(q)
    R = target.rotation().T @ reached.rotation()
    angle = float(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)))
    position_error = float(np.linalg.norm(reached.position - target.position))
    assert position_error < 2e-3 and np.degrees(angle) > 5.0                 # the case: position fine, hand turned
    assert err == pytest.approx(max(position_error, angle * world.orientation_lever_m), rel=1e-6)
    assert err > 0.005   # over the grasp search's IK tolerance: this pose is not reached
    # a reachable pose still reads under a millimetre
    assert world.ik(_down(panda_spec, (0.5, 0.0, 0.2), 45.0))[1] < 1e-3


def test_a_path_slows_to_a_stop_at_its_goal_instead_of_overshooting(client, panda_spec):
    """A fast straight descent to 2 cm above the table: the arm tracking the joint path must not dip more than a
    millimetre below the goal on arrival (it dipped ~3 mm, fingertips into the table, before the path ended in
    shrinking steps)."""
    world = World.from_scene(client, SceneSpec(panda_spec))
    cand = Candidate(0, (_down(panda_spec, (0.5, 0.1, 0.3)), _down(panda_spec, (0.5, 0.1, 0.02))), "keep")
    q, grip, dt, err = world.plan_joint_path(cand)
    assert err < 1e-3
    lowest = [1.0]
    world.execute_joint_path(q, grip, dt, on_step=lambda: lowest.__setitem__(0, min(lowest[0],
                                                                                      world.tcp_pose().position[2])))
    assert lowest[0] > 0.02 - 0.001, f"dipped to {lowest[0]:.4f} m"
    assert world.tcp_pose().position[2] == pytest.approx(0.02, abs=1e-3)


def test_lifting_an_object_off_what_it_stood_on_is_no_collision(client, panda_spec):
    """The fits leave an object against the noisy top of the obstacle it stands on (a bowl on LIBERO's stove,
    a bump of the obstacle's height map reaching into it): a held object's contact with what it touched before
    the move is expected; its contact with anything else, and the hand's, is still a collision."""
    stove = ObjectSpec("stove", Pose((0.5, 0.1, 0.0)), urdf=CUBE, scale=2.0, fixed=True)      # top at 5 cm
    bump = ObjectSpec("bump", Pose((0.53, 0.1, 0.0575)), urdf=CUBE, scale=0.3, fixed=True)   # 1.5 cm, on its top
    other = ObjectSpec("other", Pose((0.5, -0.1, 0.2)), urdf=CUBE, scale=2.0, fixed=True)     # in the way
    red = ObjectSpec("red", Pose((0.5, 0.1, 0.075)), urdf=CUBE)                               # 2.5 mm into the bump
    world = World.from_scene(client, SceneSpec(panda_spec, (stove, bump, other, red)))
    world.step(24)   # as the tracker settles the twin
    before = touching_pairs(world)
    assert {frozenset(("red", "bump")), frozenset(("red", "stove"))} <= before
    assert not any("other" in pair for pair in before)
    assert _expected(Contact("held:red", "bump"), frozenset(), before)
    assert not _expected(Contact("held:red", "other"), frozenset(), before)
    assert not _expected(Contact("robot:arm", "bump"), frozenset(), before)
    grasp = world.rollout(Candidate(0, (_down(panda_spec, (0.5, 0.1, 0.17)), _down(panda_spec, (0.5, 0.1, 0.075))),
                                    "close"), allowed_contacts=frozenset({"red"}))
    assert grasp.grasped_after == "red"
    world.execute_joint_path(grasp.joint_path_rad, grasp.gripper_width_m, grasp.dt_s)
    lift = world.rollout(Candidate(1, (_down(panda_spec, (0.5, 0.1, 0.2)),), "keep"))
    assert lift.clean and lift.contacts == (), lift.contacts
    into = world.rollout(Candidate(2, (_down(panda_spec, (0.5, 0.1, 0.2)), _down(panda_spec, (0.5, -0.1, 0.2))),
                                   "keep"))
    assert not into.clean and any(c.b == "other" for c in into.contacts)
