"""SafetyEnvelope rules, one by one, on a 2-joint toy robot with hand-checkable kinematics.

Toy robot: limits q0 in [-1, 1], q1 in [-2, 2]; speed limits 1 and 2 rad/s; TCP x = 0.5 + 0.1 q0,
y = 0.1 q1, z = 0.3; workspace box x in [0.42, 0.58] (so q0 in [-0.8, 0.8]), y in [-0.3, 0.3].
"""

import numpy as np
import pytest

from robot_io.envelope import EnvelopeConfig, SafetyEnvelope
from robot_io.errors import SafetyRejected
from robot_io.trajectory import JointTrajectory
from sim.scene import RobotSpec

TOY = RobotSpec(
    name="toy", urdf="/nonexistent/toy.urdf", ee_link="tcp", arm_joints=("j0", "j1"), finger_joints=("f",),
    finger_open_pos=(0.04,), finger_closed_pos=(0.0,), gripper_max_width_m=0.08,
    home_joint_pos_rad=(0.0, 0.0),
    joint_lower_rad=(-1.0, -2.0), joint_upper_rad=(1.0, 2.0), max_joint_speed_rad_s=(1.0, 2.0),
    workspace_min_xyz=(0.42, -0.3, 0.0), workspace_max_xyz=(0.58, 0.3, 0.5),
)
Q0 = np.zeros(2)


def fk(q):
    return np.array([0.5 + 0.1 * q[0], 0.1 * q[1], 0.3])


def env(**kw):
    return SafetyEnvelope(TOY, fk, EnvelopeConfig(**kw))


def traj(q, width=0.08, dt=0.5):
    return JointTrajectory(np.asarray(q, dtype=float), width, dt)


def max_step(sent, q_now=Q0):
    return np.abs(np.diff(np.vstack([q_now, sent.joint_pos_rad]), axis=0)).max()


def test_plan_within_every_rule_passes_unchanged():
    t = traj([[0.01, 0.02], [0.03, -0.01]], width=[0.08, 0.0], dt=0.5)
    sent, notes = env().filter(t, Q0)
    np.testing.assert_array_equal(sent.joint_pos_rad, t.joint_pos_rad)
    np.testing.assert_array_equal(sent.gripper_width_m, [0.08, 0.0])
    assert sent.dt_s == 0.5 and notes == []


@pytest.mark.parametrize("bad", [
    traj([[0.0, np.nan]]),
    traj([[0.0, 0.0], [np.inf, 0.0]]),
    traj([[0.0, 0.0]], width=np.nan),
    traj([[0.0, 0.0]], dt=float("nan")),
])
def test_nan_or_inf_anywhere_is_rejected(bad):
    with pytest.raises(SafetyRejected, match="non-finite"):
        env().filter(bad, Q0)


def test_nan_current_state_is_rejected():
    with pytest.raises(SafetyRejected, match="current joint state"):
        env().filter(traj([[0.0, 0.0]]), np.array([np.nan, 0.0]))


def test_wrong_shapes_are_rejected():
    with pytest.raises(SafetyRejected, match="3 joints"):
        env().filter(traj([[0.0, 0.0, 0.0]]), Q0)
    with pytest.raises(SafetyRejected, match="current joint state has shape"):
        env().filter(traj([[0.0, 0.0]]), np.zeros(3))
    with pytest.raises(SafetyRejected, match="JointTrajectory"):
        env().filter(np.zeros((3, 2)), Q0)


def test_non_positive_dt_is_rejected():
    with pytest.raises(SafetyRejected, match="dt_s"):
        env().filter(traj([[0.0, 0.0]], dt=0.0), Q0)


def test_joints_are_clamped_to_limits_with_a_note():
    # q1 = 2.5 is 0.5 rad past its upper limit 2.0; bridging from q1 = 1.98 needs no subdivision.
    q_now = np.array([0.0, 1.98])
    sent, notes = env().filter(traj([[0.0, 2.5]]), q_now)
    np.testing.assert_allclose(sent.joint_pos_rad, [[0.0, 2.0]])
    assert any("clamped 1 of 1 waypoint(s) to the joint limits" in n and "joint 1 by 0.500 rad" in n
               for n in notes)


def test_far_first_waypoint_is_bridged_from_q_now():
    sent, notes = env(max_joint_step_rad=0.05).filter(traj([[0.5, 0.0]]), Q0)
    # 0.5 rad in steps of 0.05: 10 waypoints 0.05, 0.10, ..., 0.50
    np.testing.assert_allclose(sent.joint_pos_rad[:, 0], np.arange(1, 11) * 0.05, atol=1e-12)
    np.testing.assert_array_equal(sent.joint_pos_rad[:, 1], 0.0)
    assert sent.joint_pos_rad[-1, 0] == 0.5  # the planned waypoint itself, exactly
    assert any("bridged" in n and "9 extra" in n for n in notes)


def test_bridge_holds_the_current_gripper_width():
    sent, _ = env(max_joint_step_rad=0.1).filter(traj([[0.3, 0.0]], width=0.0), Q0, gripper_now_m=0.08)
    np.testing.assert_allclose(sent.gripper_width_m, [0.08, 0.08, 0.0])


def test_segments_are_subdivided_to_the_step_limit():
    t = traj([[0.0, 0.0], [0.2, -0.1]], width=[0.08, 0.0])
    sent, notes = env(max_joint_step_rad=0.05).filter(t, Q0)
    assert sent.n_waypoints == 1 + 4
    assert max_step(sent) <= 0.05 + 1e-12
    np.testing.assert_allclose(sent.joint_pos_rad[-1], [0.2, -0.1])
    # inserted points keep the previous width: the gripper closes on arrival, not on the way
    np.testing.assert_allclose(sent.gripper_width_m, [0.08, 0.08, 0.08, 0.08, 0.0])
    assert any("subdivided 1 segment(s) with 3 extra waypoint(s)" in n for n in notes)


def test_dt_is_stretched_to_the_scaled_speed_limit():
    # Steps of 0.05 rad on joint 0 (limit 1 rad/s, scaled 0.5 -> 0.5 rad/s) need dt >= 0.1 s.
    t = traj([[0.05, 0.05], [0.1, 0.1]], dt=0.01)
    sent, notes = env(speed_scale=0.5).filter(t, Q0)
    assert sent.dt_s == pytest.approx(0.1)
    speeds = np.abs(np.diff(np.vstack([Q0, sent.joint_pos_rad]), axis=0)) / sent.dt_s
    assert np.all(speeds <= 0.5 * np.array([1.0, 2.0]) + 1e-9)
    assert any("stretched dt from 0.0100 s to 0.1000 s" in n for n in notes)


def test_slow_enough_plans_keep_their_dt():
    sent, notes = env(speed_scale=0.5).filter(traj([[0.05, 0.0]], dt=0.2), Q0)
    assert sent.dt_s == 0.2 and not any("stretched" in n for n in notes)


def test_dt_rounds_up_to_controller_periods():
    sent, notes = env(control_period_s=1 / 240).filter(traj([[0.001, 0.0]], dt=0.01), Q0)
    assert sent.dt_s == pytest.approx(3 / 240)
    assert any("3 controller period(s)" in n for n in notes)


def test_path_is_truncated_before_leaving_the_workspace():
    # q0 beyond 0.8 puts the TCP past x = 0.58. With 0.5 rad steps the last segment (1.0 -> 0.0) is split
    # in two, so the subdivided path has 5 waypoints and the third (q0 = 1.0) is the first outside.
    t = traj([[0.4, 0.0], [0.8, 0.0], [1.0, 0.0], [0.0, 0.0]])
    sent, notes = env(max_joint_step_rad=0.5).filter(t, Q0)
    np.testing.assert_allclose(sent.joint_pos_rad, [[0.4, 0.0], [0.8, 0.0]])  # on the boundary is inside
    assert any("truncated at waypoint 2 of 5" in n and "outside the workspace box" in n for n in notes)


def test_truncation_happens_on_the_subdivided_path():
    # The jump 0.7 -> 1.0 is subdivided at 0.1 rad; the first point past 0.8 is dropped with the rest.
    sent, _ = env(max_joint_step_rad=0.1).filter(traj([[0.7, 0.0], [1.0, 0.0]]), np.array([0.7, 0.0]))
    np.testing.assert_allclose(sent.joint_pos_rad[:, 0], [0.7, 0.8])


def test_workspace_margin_shrinks_the_box():
    t = traj([[0.6, 0.0], [0.7, 0.0], [0.75, 0.0]])
    sent, _ = env(max_joint_step_rad=1.0, workspace_margin_m=0.01).filter(t, Q0)  # x <= 0.57: q0 <= 0.7
    np.testing.assert_allclose(sent.joint_pos_rad[:, 0], [0.6, 0.7])


def test_nothing_inside_the_workspace_is_rejected():
    with pytest.raises(SafetyRejected, match="nothing to send"):
        env(max_joint_step_rad=1.0).filter(traj([[0.9, 0.0]]), Q0)


def test_gripper_width_is_clamped():
    sent, notes = env().filter(traj([[0.0, 0.0], [0.0, 0.0]], width=[-0.01, 0.2]), Q0)
    np.testing.assert_allclose(sent.gripper_width_m, [0.0, 0.08])
    assert any("gripper width of 2 waypoint(s)" in n for n in notes)


def test_too_many_waypoints_is_rejected():
    with pytest.raises(SafetyRejected, match="max_waypoints"):
        env(max_joint_step_rad=0.001, max_waypoints=100).filter(traj([[0.5, 0.0]]), Q0)


def test_bridge_from_outside_the_limits_stays_inside():
    q_now = np.array([0.0, 2.02])  # physics overshoot past the 2.0 limit
    sent, _ = env(max_joint_step_rad=0.05).filter(traj([[0.0, 1.7]]), q_now)
    assert sent.n_waypoints == 7 and sent.joint_pos_rad[:, 1].max() <= 2.0


def test_filter_is_pure():
    t = traj([[0.5, 3.0]], width=0.2, dt=0.001)
    before = (t.joint_pos_rad.copy(), t.gripper_width_m.copy(), t.dt_s)
    e = env()
    a, na = e.filter(t, Q0)
    b, nb = e.filter(t, Q0)
    np.testing.assert_array_equal(t.joint_pos_rad, before[0])
    np.testing.assert_array_equal(t.gripper_width_m, before[1])
    assert t.dt_s == before[2]
    np.testing.assert_array_equal(a.joint_pos_rad, b.joint_pos_rad)
    assert na == nb and a.dt_s == b.dt_s


@pytest.mark.parametrize("kw, field", [
    ({"max_joint_step_rad": 0.0}, "max_joint_step_rad"),
    ({"speed_scale": 1.5}, "speed_scale"),
    ({"workspace_margin_m": -0.1}, "workspace_margin_m"),
    ({"control_period_s": 0.0}, "control_period_s"),
])
def test_config_validation(kw, field):
    with pytest.raises(ValueError, match=field):
        EnvelopeConfig(**kw)


def test_margin_that_empties_the_box_is_refused():
    with pytest.raises(ValueError, match="no workspace"):
        env(workspace_margin_m=0.1)
