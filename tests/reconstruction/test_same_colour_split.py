"""Two objects of one model and one colour, touching: colour and geometry segment them as one blob, so the
reconstruction fits one model, takes away the points it explains, and fits again on the rest."""

import numpy as np

from reconstruction import Reconstructor
from tests.fakes.recon_scenes import models_for, pose_errors, shoot, touching_pair_scene

MAX_TRANS_M = 0.010
MAX_ROT_DEG = 10.0


def test_two_touching_red_blocks_are_both_found(robot, cams):
    scene = touching_pair_scene(robot, ("red_a", "block_red"), ("red_b", "block_red"), 15.0, (0.42, -0.2, 0.04))
    shot = shoot(scene, cams)
    models = models_for({"red_a": "block_red", "red_b": "block_red"})
    with Reconstructor(models, robot, cams) as rec:
        est = rec.update(shot.obs)
    placed = []
    for name in ("red_a", "red_b"):
        obj = est.objects[name]
        assert obj.found, (name, est.notes)
        placed.append(obj.pose.position)
    # one model, one colour: either name may take either block, but each block is taken once and placed right
    truth = [shot.truth["red_a"], shot.truth["red_b"]]
    if np.linalg.norm(placed[0] - truth[0].position) > np.linalg.norm(placed[0] - truth[1].position):
        truth.reverse()
    for name, true_pose in zip(("red_a", "red_b"), truth):
        dt, dr = pose_errors(est.objects[name].pose, true_pose, "cube")
        assert dt <= MAX_TRANS_M and dr <= MAX_ROT_DEG, (name, dt, dr, est.notes)
    assert np.linalg.norm(placed[0] - placed[1]) > 0.04          # not both on one block
