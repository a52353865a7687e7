"""The resting-pose fits on a synthetic box: the batched planar Gauss-Newton gives what one fit per pose gives, and the
lean helpers (a tilt towards what an object touches) find the neighbour and tilt the right way."""

import numpy as np
import trimesh

from reconstruction.pose_model import even_samples
from reconstruction.resting import (
    inside_convex,
    lean_direction,
    leaning_poses,
    planar_icp,
    planar_icp_many,
    stable_up_directions,
    turn_about,
)


class _Prep:
    """The fields of pose_model.PreparedModel the resting fits read."""

    def __init__(self, mesh: trimesh.Trimesh) -> None:
        from scipy.spatial import cKDTree
        self.dense_points, self.dense_normals = even_samples(mesh, 0.002)
        self.points, self.normals = even_samples(mesh, 0.005)
        self.tree, self.sparse_tree = cKDTree(self.dense_points), cKDTree(self.points)
        self.center = np.zeros(3)


def _pose(yaw_deg: float, xyz) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = turn_about(np.array([0.0, 0.0, 1.0]), np.radians(yaw_deg))
    T[:3, 3] = xyz
    return T


def test_batched_planar_fit_equals_one_fit_per_pose():
    mesh = trimesh.creation.box([0.06, 0.04, 0.03])
    prep = _Prep(mesh)
    rng = np.random.default_rng(0)
    T_true = _pose(25.0, (0.5, 0.1, 0.015))
    seen = prep.dense_points[rng.choice(len(prep.dense_points), 600, replace=False)]
    obs = seen @ T_true[:3, :3].T + T_true[:3, 3] + rng.normal(0.0, 0.0005, (600, 3))
    up = np.array([0.0, 0.0, 1.0])
    starts = np.array([_pose(25.0 + d, (0.5 + dx, 0.1 - dx, 0.015)) for d, dx in ((6, 0.004), (-5, -0.003), (2, 0.0))])
    many = planar_icp_many(prep, obs, starts, up, fix_height=True, max_corr_m=0.01)
    for T0, T in zip(starts, many):
        one = planar_icp(prep, obs, T0, up, fix_height=True, max_corr_m=0.01)
        np.testing.assert_allclose(T, one, atol=1e-12)
        assert np.linalg.norm(T[:3, 3] - T_true[:3, 3]) < 0.002      # and each fit lands on the truth
        assert abs(np.degrees(np.arctan2(T[1, 0], T[0, 0])) - 25.0) < 1.0


def test_lean_direction_points_at_the_touching_neighbour_and_tilts_towards_it():
    mesh = trimesh.creation.box([0.04, 0.04, 0.04])
    prep = _Prep(mesh)
    T = _pose(0.0, (0.5, 0.0, 0.02))
    own = prep.dense_points @ T[:3, :3].T + T[:3, 3]
    up = np.array([0.0, 0.0, 1.0])
    assert lean_direction(prep, own, T, up, 0.0, own, 0.01, 10) is None          # alone: nothing to lean on
    wall = np.array([[0.525, y, z] for y in np.linspace(-0.02, 0.02, 9) for z in np.linspace(0.015, 0.04, 6)])
    d = lean_direction(prep, own, T, up, 0.0, np.vstack([own, wall]), 0.01, 10)
    assert d is not None and d @ np.array([1.0, 0.0, 0.0]) > 0.99                # the neighbour is at +x
    tilted = leaning_poses(prep, T, up, d, (5.0, -5.0))
    assert tilted[0][:3, 2] @ np.array([1.0, 0.0, 0.0]) > 0.08                    # +5 deg: the top moves to +x
    assert tilted[1][:3, 2] @ np.array([1.0, 0.0, 0.0]) < -0.08                   # -5 deg: away from it


def test_an_open_scan_gets_its_resting_poses_from_its_hull():
    """A mesh that is not closed (a scan's open bottom) can have its volume-integral centre of mass outside itself;
    trimesh's stable-pose walk then never ended (LIBERO-10's black book hung the planner for 20 minutes)."""
    box = trimesh.creation.box((0.2, 0.1, 0.03))
    box.apply_translation((0.3, 0.0, 0.0))
    open_box = trimesh.Trimesh(box.vertices, box.faces[:-2], process=False)   # one face missing
    assert not open_box.is_watertight and not inside_convex(open_box.convex_hull, open_box.center_mass)
    ups = stable_up_directions(open_box)
    # a box rests on any of its six faces: the same up directions as the closed box's
    closed = stable_up_directions(box)
    assert len(ups) == len(closed) == 6
    assert all(np.max(ups @ u) > 0.999 for u in closed)
    assert inside_convex(box.convex_hull, box.center_mass)
