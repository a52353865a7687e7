"""The segmenter interface: an image segmenter (standing in for a learned one: the renderer's instance masks) plugs
in through ProjectedMaskSegmenter, splits touching objects of one color that geometry and color cannot, and the
reconstructor works with it unchanged."""

import numpy as np
import pytest

from reconstruction import ColorDbscanSegmenter, ImageSegmenter, ProjectedMaskSegmenter, Reconstructor
from reconstruction.fusion import Fuser, PointSet, voxel_downsample
from reconstruction.segmentation import SegmentationContext, TablePlane
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


class MaskSegmenter(ImageSegmenter):
    """Per-camera instance masks given up front (here the renderer's; in use, a network's output)."""

    def __init__(self, masks: dict[str, np.ndarray], ignore: set[int]) -> None:
        self.masks = masks
        self.ignore = ignore

    def instances(self, rgb, depth_m, camera):
        m = self.masks[camera].astype(np.int64).copy()
        m[np.isin(m, list(self.ignore))] = -1
        return m


@pytest.fixture(scope="module")
def shot(robot, cams):
    """Two gray unknown objects pressed against each other, and a red block."""
    cat = catalog()
    gray = NEUTRAL_RGBA[0]
    scene = SceneSpec(robot, (named_object("red_block", "block_red", (0.5, 0.15, 0.0251), 25, cat),
                              clutter_object("c0", 17, (0.45, -0.10, 0.05), 0, gray),
                              clutter_object("c1", 67, (0.45, -0.008, 0.05), 0, gray)))
    return shoot(scene, cams, settle_s=1.0)


def _object_points(shot, cams):
    """Everything more than 12 mm above the table (the robot is far away), voxelised, with its frames."""
    fuser = Fuser((0.2, -0.5, 0.012), (0.9, 0.5, 0.3), edge_jump_per_m=0.012)
    frames = shot.obs.frames
    depths = [f.depth_m for f in frames]
    pts = voxel_downsample(PointSet.concatenate([fp.select() for fp in fuser.frames(frames, depths)]), 0.004)
    return pts, SegmentationContext(frames, tuple(depths), TablePlane.z0())


def _near(clusters, xy, radius=0.05):
    return [c for c in clusters if np.linalg.norm(c.centroid[:2] - xy) < radius]


def test_touching_objects_of_one_color_come_apart_with_instance_masks(shot, cams):
    pts, context = _object_points(shot, cams)
    gray = ColorDbscanSegmenter([(0.85, 0.12, 0.10)]).segment(pts, context)
    both = [c for c in gray if c.extent[1] > 0.12]
    assert len(both) == 1, "color + geometry alone merges the two touching gray objects"
    seg = ProjectedMaskSegmenter(MaskSegmenter(dict(zip([f.name for f in shot.obs.frames], shot.seg)),
                                               {shot.robot_id, shot.table_id}))
    clusters = seg.segment(pts, context)
    c0 = _near(clusters, shot.truth["c0"].position[:2])
    c1 = _near(clusters, shot.truth["c1"].position[:2])
    # each object has its own cluster(s) (an occluded object may come in pieces); none spans both
    assert c0 and c1 and not {id(c) for c in c0} & {id(c) for c in c1}
    assert all(c.extent[1] < 0.11 for c in clusters)


def test_reconstructor_runs_unchanged_with_an_image_segmenter(shot, robot, cams):
    masks = dict(zip([f.name for f in shot.obs.frames], shot.seg))
    seg = ProjectedMaskSegmenter(MaskSegmenter(masks, {shot.robot_id, shot.table_id}))
    models = models_for({"red_block": "block_red"})
    with Reconstructor(models, robot, cams, segmenter=seg) as rec:
        est = rec.update(shot.obs)
    red = est.objects["red_block"]
    dt, dr = pose_errors(red.pose, shot.truth["red_block"], "cube")
    assert red.found and dt < 0.01 and dr < 10, (dt, dr, est.notes)
    assert len(est.clutter) >= 1


def test_without_frames_an_image_segmenter_finds_nothing(shot, cams):
    pts, _ = _object_points(shot, cams)
    seg = ProjectedMaskSegmenter(MaskSegmenter({}, set()))
    assert seg.segment(pts) == []
