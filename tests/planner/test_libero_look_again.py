"""LookAgain and the "only a turn is in doubt" rule (planner/twin_tracker.py) that LIBERO's scanned cans and
printed cartons need: their declared symmetry is 'none', so a half-turned pose explains the points nearly as
well and the reconstruction reports low confidence although the position is right."""

from __future__ import annotations

import pytest
from scipy.spatial.transform import Rotation

from planner.twin_tracker import LookAgain, outline_symmetric
from reconstruction.models import ObjectModel
from sim.geometry import Pose


def _recon(status: str, **extra) -> dict:
    return {"objects": {"can": {"status": status, "confidence": 0.1, "fitness": 0.8, "coverage": 0.7, **extra}}}


def test_low_confidence_target_is_looked_at_again_then_gone_ahead():
    look = LookAgain(max_looks=2)
    assert "look again" in look.check("can", _recon("low_confidence"), gripper_closed=False)
    assert "look again" in look.check("can", _recon("low_confidence"), gripper_closed=False)
    recon = _recon("low_confidence")
    assert look.check("can", recon, gripper_closed=False) is None
    assert "going ahead" in recon["note"]


def test_turn_only_doubt_is_not_looked_at_again():
    look = LookAgain(max_looks=2)
    recon = _recon("low_confidence", turn_only=True)
    assert look.check("can", recon, gripper_closed=False) is None
    assert "position trusted" in recon["note"]
    assert look.looks == 0
    # a missing target is always looked for again, whatever the flag says
    assert "look again" in look.check("can", _recon("missing", turn_only=True), gripper_closed=False)


@pytest.mark.parametrize("turn_deg", [0.0, 37.0])
def test_outline_of_a_cube_is_the_same_half_turned(turn_deg):
    cube = ObjectModel("cube", "pybullet_data:cube_small.urdf")
    quat = Rotation.from_euler("z", turn_deg, degrees=True).as_quat()
    assert outline_symmetric(cube, Pose((0.3, 0.1, 0.02), tuple(quat)))


def _l_shape_urdf(tmp_path) -> str:
    """An L of two 10 x 2 cm bars, 3 cm tall, as URDF + OBJ: seen from above, not the same half turned."""
    import trimesh

    bar_x = trimesh.creation.box((0.10, 0.02, 0.03))
    bar_x.apply_translation((0.05, 0.01, 0.015))
    bar_y = trimesh.creation.box((0.02, 0.10, 0.03))
    bar_y.apply_translation((0.01, 0.05, 0.015))
    trimesh.util.concatenate([bar_x, bar_y]).export(tmp_path / "l.obj")
    geom = '<geometry><mesh filename="l.obj"/></geometry>'
    (tmp_path / "l.urdf").write_text(
        f'<robot name="l"><link name="base"><inertial><mass value="0.1"/><inertia ixx="1e-4" iyy="1e-4" '
        f'izz="1e-4" ixy="0" ixz="0" iyz="0"/></inertial><visual>{geom}</visual><collision>{geom}</collision>'
        "</link></robot>")
    return str(tmp_path / "l.urdf")


def test_outline_of_an_l_is_not(tmp_path):
    ell = ObjectModel("ell", _l_shape_urdf(tmp_path))
    assert not outline_symmetric(ell, Pose((0.0, 0.0, 0.0)))
    on_its_side = Rotation.from_euler("x", 90, degrees=True).as_quat()   # from above: a 10 x 3 cm bar
    assert outline_symmetric(ell, Pose((0.0, 0.0, 0.0), tuple(on_its_side)))



def test_a_held_object_is_last_seen_where_the_hand_carries_it(monkeypatch):
    """Once let go and hidden (in a basket, behind its wall) it is dropped in the twin from where it was carried,
    not from where it stood before the grasp."""
    import dataclasses
    from types import SimpleNamespace

    from planner.twin_tracker import TwinTracker
    from sim.grasp import Held

    tracker = TwinTracker.__new__(TwinTracker)     # only the memory of poses; no PyBullet world needed here
    tracker.robot = SimpleNamespace(gripper_max_width_m=0.078)
    tracker.held = Held("bottle", Pose((0.0, 0.0, -0.01)))
    tracker._last_seen = {"bottle": Pose((0.48, -0.22, 0.02))}
    tracker.models = {"bottle": SimpleNamespace(at=lambda pose: SimpleNamespace(name="bottle", pose=pose))}
    # a scene stand-in: dataclasses.replace on it just sets the fields
    monkeypatch.setattr(dataclasses, "replace", lambda obj, **kw: SimpleNamespace(**{**vars(obj), **kw}))
    tracker._carry_held(SimpleNamespace(objects=()), SimpleNamespace(objects={}, low_confidence=()),
                        Pose((0.61, 0.27, 0.21)), 0.035)
    assert tracker.held is not None and tracker.held.name == "bottle"
    assert tracker._last_seen["bottle"].xyz == pytest.approx((0.61, 0.27, 0.20))
