"""Bad input: depth in millimetres, impossible camera poses, empty or all-NaN depth, a camera looking away, a named
object that is not there. Each gets a clear error or a reported miss: never a crash, never a silent wrong pose."""

import dataclasses

import numpy as np
import pytest

from reconstruction import FrameError, Reconstructor, check_frame
from robot_io.observation import CameraFrame
from sim.camera import CameraSpec
from sim.scene import SceneSpec
from tests.fakes.recon_scenes import (
    NEUTRAL_RGBA,
    catalog,
    clutter_object,
    models_for,
    named_object,
    pose_errors,
    shoot,
)

CROP = (np.array([0.05, -0.6, -0.02]), np.array([0.95, 0.6, 0.7]))


@pytest.fixture(scope="module")
def shot(robot, cams):
    cat = catalog()
    scene = SceneSpec(robot, (named_object("red_block", "block_red", (0.5, 0.05, 0.0251), 25, cat),
                              named_object("blue_block", "block_blue", (0.45, -0.15, 0.0251), -10, cat),
                              clutter_object("c0", 17, (0.6, -0.05, 0.04), 30, NEUTRAL_RGBA[0])))
    return shoot(scene, cams)


@pytest.fixture(scope="module")
def models():
    return models_for({"red_block": "block_red", "blue_block": "block_blue"})


def _replace_frame(obs, name, **changes):
    frames = tuple(CameraFrame(f.name, f.rgb, changes.get("depth_m", f.depth_m), f.K,
                               changes.get("T_world_camera", f.T_world_camera)) if f.name == name else f
                   for f in obs.frames)
    return dataclasses.replace(obs, frames=frames)


def test_good_frames_pass(shot):
    for f in shot.obs.frames:
        check = check_frame(f.name, f.depth_m, f.K, f.T_world_camera, *CROP)
        assert check.usable and check.issue == "" and check.valid_fraction > 0.9 and check.in_crop_fraction > 0.3


def test_depth_in_millimetres_is_rejected_with_the_camera_and_the_unit(shot):
    f = shot.obs.frames[0]
    with pytest.raises(FrameError, match=rf"camera '{f.name}'.*millimetres"):
        check_frame(f.name, f.depth_m * 1000.0, f.K, f.T_world_camera, *CROP)


def test_camera_pose_that_puts_the_table_behind_the_camera_is_rejected(shot):
    f = shot.obs.frames[0]
    # camera below the table
    T_low = f.T_world_camera.copy()
    T_low[2, 3] = -0.2
    with pytest.raises(FrameError, match="above the table"):
        check_frame(f.name, f.depth_m, f.K, T_low, *CROP)
    # the inverse (T_camera_world handed in): here a plausible-looking pose, 2 m from the table it predicts
    with pytest.raises(FrameError, match="T_world_camera is wrong"):
        check_frame(f.name, f.depth_m, f.K, np.linalg.inv(f.T_world_camera), *CROP)
    # an OpenGL camera frame (z backwards) at the right place looks up, away from the table
    T_gl = f.T_world_camera @ np.diag([1.0, -1.0, -1.0, 1.0])
    with pytest.raises(FrameError, match="looks away from the table"):
        check_frame(f.name, f.depth_m, f.K, T_gl, *CROP)
    # the camera looking at the floor through the table (depth much longer than the pose allows)
    with pytest.raises(FrameError, match="below the table|T_world_camera is wrong"):
        check_frame(f.name, f.depth_m * 3.0, f.K, f.T_world_camera, *CROP)


def test_empty_and_nan_depth_and_a_camera_looking_elsewhere_are_skipped(shot):
    f = shot.obs.frames[0]
    for bad in (np.full_like(f.depth_m, np.nan), np.zeros_like(f.depth_m)):
        check = check_frame(f.name, bad, f.K, f.T_world_camera, *CROP)
        assert not check.usable and "no depth" in check.issue and f.name in check.issue
    # looking at the floor far from the workspace: valid depth, none of it in the crop box
    away = CameraSpec.look_at("away", 64, 48, 40, eye=(3.0, 2.0, 0.6), target=(3.5, 2.5, 0.0))
    depth = np.full((48, 64), 0.8, np.float32)
    check = check_frame("away", depth, away.K, away.T_world_camera_matrix, *CROP)
    assert not check.usable and "workspace" in check.issue


def test_reconstructor_uses_the_good_cameras_and_reports_the_bad_one(robot, cams, shot, models):
    obs = _replace_frame(shot.obs, "front", depth_m=np.full_like(shot.obs.frames[0].depth_m, np.nan))
    with Reconstructor(models, robot, cams) as rec:
        est = rec.update(obs)
    assert est.cameras_used == ("left", "right")
    assert [i.kind for i in est.issues] == ["camera"] and est.issues[0].subject == "front"
    for name in ("red_block", "blue_block"):
        dt, dr = pose_errors(est.objects[name].pose, shot.truth[name], "cube")
        assert est.objects[name].found and dt < 0.01 and dr < 10, (name, dt, dr)


def test_no_usable_camera_reports_every_object_missing_without_crashing(robot, cams, shot, models):
    obs = shot.obs
    for f in shot.obs.frames:
        obs = _replace_frame(obs, f.name, depth_m=np.full_like(f.depth_m, np.nan))
    with Reconstructor(models, robot, cams) as rec:
        est = rec.update(obs)
    assert not any(o.found for o in est.objects.values()) and est.unknown == ()
    kinds = {(i.kind, i.subject) for i in est.issues}
    assert {("missing", "red_block"), ("missing", "blue_block"), ("camera", "")} <= kinds
    report = est.report()
    assert report["objects"]["red_block"]["status"] == "missing" and report["cameras_used"] == []


def test_reconstructor_raises_a_frame_error_for_millimetres(robot, cams, shot, models):
    obs = _replace_frame(shot.obs, "left", depth_m=shot.obs.frames[1].depth_m * 1000.0)
    with Reconstructor(models, robot, cams) as rec, pytest.raises(FrameError, match="camera 'left'"):
        rec.update(obs)


def test_absent_object_with_a_look_alike_is_not_given_a_wrong_pose(robot, cams):
    """No red block, but a red-brown unknown object: the red block is reported missing, not posed on it."""
    cat = catalog()
    scene = SceneSpec(robot, (named_object("blue_block", "block_blue", (0.45, -0.15, 0.0251), -10, cat),
                              clutter_object("c0", 17, (0.55, 0.1, 0.04), 30, (0.8, 0.15, 0.12, 1.0))))
    shot = shoot(scene, cams)
    models = models_for({"red_block": "block_red", "blue_block": "block_blue"})
    with Reconstructor(models, robot, cams) as rec:
        est = rec.update(shot.obs)
    red = est.objects["red_block"]
    assert not red.found, (red.fitness, red.pose)
    assert any(i.kind == "missing" and i.subject == "red_block" for i in est.issues)
    assert est.objects["blue_block"].found
    # the look-alike is still an obstacle
    centres = np.array([c.centroid for c in est.clutter])
    assert np.min(np.linalg.norm(centres[:, :2] - shot.truth["c0"].position[:2], axis=1)) < 0.04
