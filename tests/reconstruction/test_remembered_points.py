"""An object the reconstruction does not find this step but the caller's twin keeps at a remembered pose: its points
there are not meshed into an unknown obstacle (the twin would push the remembered object up onto its own points:
LIBERO-Spatial task 9's bowl on the cabinet, merged into the cabinet's obstacle, sat 5 cm too high)."""

import numpy as np

from reconstruction import Reconstructor
from tests.fakes.recon_scenes import models_for, shoot, touching_pair_scene


def _near(clutter, xy, radius=0.04) -> list:
    """The unknown clusters centred within radius of xy: their extents along x."""
    return [c.extent_m[0] for c in clutter if np.linalg.norm(np.asarray(c.centroid[:2]) - xy) < radius]


def test_a_remembered_objects_points_are_not_an_obstacle(robot, cams):
    scene = touching_pair_scene(robot, ("red_a", "block_red"), ("red_b", "block_red"), 0.0, (0.40, -0.2, 0.04))
    shot = shoot(scene, cams)
    # the model looked for is blue: no candidate, so both red blocks stay unexplained
    models = models_for({"blue_a": "block_blue"})
    with Reconstructor(models, robot, cams) as rec:
        est = rec.update(shot.obs)
        assert not est.objects["blue_a"].found
        both = _near(est.clutter, (0.525, 0.0))
        assert len(both) == 1 and both[0] > 0.09, [(c.centroid, c.extent_m) for c in est.clutter]
        rec.remember({"blue_a": shot.truth["red_a"]})       # the twin keeps it where red_a stands
        est = rec.update(shot.obs)
    left = [(c.centroid, c.extent_m) for c in est.clutter]
    assert not _near(est.clutter, (0.5, 0.0), 0.015), left      # red_a's points are explained
    one = _near(est.clutter, (0.5505, 0.0), 0.015)              # red_b, next to it, is still an obstacle
    assert len(one) == 1 and one[0] < 0.06, left
    assert _near(est.clutter, (0.40, -0.2), 0.06), left         # and so is the clutter
