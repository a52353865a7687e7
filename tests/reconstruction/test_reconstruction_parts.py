"""The stages one by one on synthetic data: fusion, table plane, color segmentation, pose, clutter hulls,
SceneEstimate.to_scene. No rendering here; tolerances follow from the voxel size and the synthetic noise."""

import math

import numpy as np
import pytest

from reconstruction.candidates import candidate_clusters
from reconstruction.clutter import hull_object
from reconstruction.depth_views import visibility
from reconstruction.estimate import EstimatedObject, SceneEstimate
from reconstruction.fusion import Fuser, PointSet, fuse_frames, voxel_downsample
from reconstruction.pose import PoseEstimator
from reconstruction.segmentation import NEUTRAL, Cluster, ColorDbscanSegmenter, color_labels, fit_table_plane
from sim.camera import CameraSpec, project_points
from sim.geometry import Pose, rotation_error_deg
from sim.scene import ObjectSpec
from tests.fakes.recon_scenes import catalog, models_for, robot_spec

VOXEL_M = 0.004


class _Frame:
    def __init__(self, cam: CameraSpec, depth, rgb):
        self.name, self.depth_m, self.rgb = cam.name, depth, rgb
        self.K, self.T_world_camera = cam.K, cam.T_world_camera_matrix


def _plane_depth(cam: CameraSpec, height_m: float = 0.0) -> np.ndarray:
    """Exact depth image of the horizontal plane z = height_m."""
    T = cam.T_world_camera_matrix
    u, v = np.meshgrid(np.arange(cam.width), np.arange(cam.height))
    rays = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u, dtype=float)], axis=-1)
    rz = rays @ T[2, :3]
    with np.errstate(divide="ignore"):
        depth = (height_m - T[2, 3]) / rz
    depth[(depth <= 0) | ~np.isfinite(depth)] = np.nan
    return depth.astype(np.float32)


def _cam() -> CameraSpec:
    return CameraSpec.look_at("top", 160, 120, 60.0, eye=(0.8, 0.0, 0.8), target=(0.45, 0.0, 0.0))


def _cube_points(pose: Pose, rgb, n: int = 1500, noise_m: float = 0.0005, seed: int = 0) -> PointSet:
    """Surface points of the visible (upper and side) faces of a 5 cm cube, with noise."""
    rng = np.random.default_rng(seed)
    model = models_for({"b": "block_red"})["b"]
    pts, normals = model.points, model.normals
    keep = normals[:, 2] > -0.5   # no bottom face: the table hides it
    pts = pts[keep][:n]
    T = pose.matrix()
    world = pts @ T[:3, :3].T + T[:3, 3] + rng.normal(0, noise_m, (len(pts), 3))
    colors = np.tile(np.asarray(rgb, dtype=float), (len(world), 1))
    origins = np.tile([0.9, 0.0, 0.8], (len(world), 1))
    return PointSet(world, colors, origins)


# ---------------------------------------------------------------------------------------------- fusion
def test_fusion_backprojects_crops_and_keeps_colors():
    cam = _cam()
    depth = _plane_depth(cam)
    depth[:10] = np.nan                     # no return
    rgb = np.zeros((cam.height, cam.width, 3), np.uint8)
    rgb[..., 0] = 200
    frame = _Frame(cam, depth, rgb)
    pts = fuse_frames([frame], [depth], (0.3, -0.1, -0.05), (0.6, 0.1, 0.05))
    assert len(pts) > 500
    assert np.abs(pts.points[:, 2]).max() < 1e-5                  # the plane z = 0, exactly
    assert pts.points[:, 0].min() >= 0.3 and pts.points[:, 1].max() <= 0.1
    np.testing.assert_allclose(pts.colors[:, 0], 200 / 255)
    np.testing.assert_allclose(pts.view_origins, np.tile(cam.T_world_camera_matrix[:3, 3], (len(pts), 1)))
    # the world points project back onto their pixels' depth
    uv, z = project_points(cam, pts.points[:50])
    assert np.all(z > 0)


def test_fuser_select_with_stride_and_mask():
    cam = _cam()
    depth = _plane_depth(cam, 0.01)
    fp = Fuser((-1, -1, -1), (2, 2, 2)).frame(depth, np.zeros((cam.height, cam.width, 3), np.uint8), cam.K,
                                                 cam.T_world_camera_matrix)
    every = fp.select()
    assert len(fp.select(stride=10)) == math.ceil(len(every) / 10)
    np.testing.assert_allclose(every.points[:, 2], 0.01, atol=1e-5)
    assert len(fp.select(fp.x > 0.45)) < len(every)


def test_voxel_downsample_averages_colors_and_view_origins():
    pts = np.array([[0.0001, 0.0001, 0.0001], [0.0003, 0.0002, 0.0001], [0.05, 0.05, 0.05]])
    colors = np.array([[1.0, 0, 0], [0.0, 0, 1], [0, 1, 0]])
    origins = np.array([[1.0, 0, 1], [0.0, 1, 1], [1, 1, 1]])
    down = voxel_downsample(PointSet(pts, colors, origins), VOXEL_M)
    assert len(down) == 2
    i = int(np.argmin(down.points[:, 0]))
    np.testing.assert_allclose(down.colors[i], [0.5, 0, 0.5])
    np.testing.assert_allclose(down.view_origins[i], [0.5, 0.5, 1.0])   # averaged, not normalised


# ---------------------------------------------------------------------------------------------- table
def test_table_plane_fit_and_sanity_check():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.5, 0.5, (20000, 2))
    table = np.column_stack([xy, 0.01 + rng.normal(0, 0.001, len(xy))])
    clutter = rng.uniform([0, 0, 0.02], [0.2, 0.2, 0.2], (3000, 3))
    plane = fit_table_plane(np.vstack([table, clutter]))
    assert plane.fitted and plane.normal[2] > 0.999 and plane.d == pytest.approx(-0.01, abs=1e-3)
    tilted = np.column_stack([xy, 0.2 * xy[:, 0]])          # 11 degrees: not the table
    fallback = fit_table_plane(tilted, band_m=0.2)
    assert not fallback.fitted and fallback.d == 0.0 and "tilted" in fallback.note
    assert "using z = 0" in fit_table_plane(np.zeros((10, 3))).note


# ---------------------------------------------------------------------------------------------- segmentation
def test_color_labels_follow_chromaticity_not_brightness():
    refs = np.array([[0.85, 0.12, 0.10], [0.12, 0.25, 0.85]])
    colors = np.array([[0.85, 0.12, 0.10], [0.42, 0.06, 0.05],      # red, lit and in shade
                       [0.06, 0.12, 0.42], [0.5, 0.5, 0.5],          # blue in shade, gray
                       [0.45, 0.32, 0.2], [0.01, 0.0, 0.0]])         # brown clutter, black
    np.testing.assert_array_equal(color_labels(colors, refs), [0, 0, 1, NEUTRAL, NEUTRAL, NEUTRAL])


def test_touching_blocks_of_different_colors_split():
    red = _cube_points(Pose.from_xyz_rpy_deg((0.5, 0.0, 0.025), (0, 0, 0)), (0.85, 0.12, 0.10))
    blue = _cube_points(Pose.from_xyz_rpy_deg((0.5, 0.05, 0.025), (0, 0, 0)), (0.12, 0.25, 0.85), seed=1)
    gray = _cube_points(Pose.from_xyz_rpy_deg((0.55, 0.0, 0.025), (0, 0, 0)), (0.5, 0.5, 0.5), seed=2)
    seg = ColorDbscanSegmenter([(0.85, 0.12, 0.10), (0.12, 0.25, 0.85), (0.5, 0.5, 0.55)])
    clusters = seg.segment(voxel_downsample(PointSet.concatenate([red, blue, gray]), VOXEL_M))
    assert sorted(c.label for c in clusters) == [NEUTRAL, 0, 1]
    for c in clusters:
        if c.label != NEUTRAL:
            assert np.linalg.norm(c.extent[:2]) < 0.08      # one block each, not two
            np.testing.assert_allclose(c.centroid[1], 0.0 if c.label == 0 else 0.05, atol=0.012)
    # voxels that mix two colors on the synthetic contact faces are neither color: they go with the gray one


# ---------------------------------------------------------------------------------------------- pose
@pytest.mark.parametrize("yaw_deg, tilt_deg", [(0.0, 0.0), (33.0, 0.0), (-71.0, 0.0), (20.0, 25.0)])
def test_pose_of_a_block_from_its_visible_faces(yaw_deg, tilt_deg):
    models = models_for({"red_block": "block_red"})
    model = models["red_block"]
    truth = Pose.from_xyz_rpy_deg((0.5, 0.1, 0.025 if tilt_deg == 0 else 0.06), (tilt_deg, 0.0, yaw_deg))
    cluster = Cluster(voxel_downsample(_cube_points(truth, model.rgba[:3]), VOXEL_M), 0)
    res = PoseEstimator().estimate(model, cluster)
    est = Pose.from_matrix(res.T_world_object)
    # noise 0.5 mm and 4 mm voxels: a millimetre and a couple of degrees
    assert np.linalg.norm(est.position - truth.position) < 0.002
    assert rotation_error_deg(est.rotation(), truth.rotation(), "cube") < 2.0
    assert res.fitness > 0.9 and res.rmse_m < 0.003


def test_visibility_flags_a_model_the_cameras_see_through():
    cam = _cam()
    depth = _plane_depth(cam)                     # an empty table
    from reconstruction.depth_views import DepthView

    view = DepthView.from_frame(depth, cam.K, cam.T_world_camera_matrix)
    model = models_for({"b": "block_red"})["b"]
    T = Pose.from_xyz_rpy_deg((0.45, 0.0, 0.025)).matrix()
    supported, contradicted, n = visibility(model.points @ T[:3, :3].T + T[:3, 3], model.normals @ T[:3, :3].T,
                                            [view], 0.01)
    assert n > 100 and contradicted > 0.85 and supported < 0.2


def test_candidates_by_color_then_by_size():
    models = models_for({"red_block": "block_red", "tray": "tray"})
    red = Cluster(_cube_points(Pose.from_xyz_rpy_deg((0.5, 0, 0.025)), (0.85, 0.12, 0.1)), 0)
    pebble = Cluster(_cube_points(Pose.from_xyz_rpy_deg((0.3, 0, 0.025)), (0.5, 0.5, 0.5)), NEUTRAL)
    tray_pts = models["tray"].points + np.array([0.5, 0.2, 0.0])
    tray = Cluster(PointSet(tray_pts, np.full_like(tray_pts, 0.3), np.zeros_like(tray_pts)), NEUTRAL)
    clusters = [red, pebble, tray]
    assert [c for c, _ in candidate_clusters(models["red_block"], 0, clusters, set(), 3)][0].label == 0
    tray_cands = candidate_clusters(models["tray"], NEUTRAL, clusters, set(), 3)
    assert len(tray_cands) == 1 and tray_cands[0][1] == [2]       # the pebble is too small to be the tray
    assert candidate_clusters(models["tray"], NEUTRAL, clusters, {2}, 3) == []


# ---------------------------------------------------------------------------------------------- clutter
def test_clutter_hull_reaches_the_table_and_is_posed_at_its_centroid():
    pts = _cube_points(Pose.from_xyz_rpy_deg((0.4, -0.2, 0.025)), (0.5, 0.5, 0.5))
    above = pts.subset(pts.points[:, 2] > 0.006)         # what the table removal leaves
    spec = hull_object("clutter_0", above)
    assert spec is not None and spec.fixed and spec.urdf is None and spec.name == "clutter_0"
    verts = np.asarray(spec.mesh_vertices) + np.asarray(spec.pose.xyz)
    assert verts[:, 2].min() == pytest.approx(0.0, abs=1e-9)       # extended down to the table
    assert verts[:, 2].max() == pytest.approx(0.05, abs=0.003)
    np.testing.assert_allclose(np.asarray(spec.pose.xyz)[:2], [0.4, -0.2], atol=0.003)
    assert max(max(f) for f in spec.mesh_faces) < len(spec.mesh_vertices)
    np.testing.assert_allclose(spec.rgba, (0.5, 0.5, 0.5, 1.0))
    flat = PointSet(np.column_stack([np.random.default_rng(0).uniform(0, 0.1, (50, 2)), np.full(50, 0.2)]),
                    np.zeros((50, 3)), np.zeros((50, 3)))
    assert hull_object("flat", flat) is None


# ---------------------------------------------------------------------------------------------- to_scene
def test_to_scene_uses_catalog_model_and_priors_and_skips_missing():
    models = models_for({"red_block": "block_red", "blue_block": "block_blue", "tray": "tray"})
    pose = Pose.from_xyz_rpy_deg((0.5, 0.0, 0.025), (0, 0, 30))
    clutter = ObjectSpec("clutter_0", Pose((0.3, 0.2, 0.02)), mesh_vertices=((0, 0, 0), (0.01, 0, 0), (0, 0.01, 0),
                                                                            (0, 0, 0.01)), fixed=True)
    est = SceneEstimate(objects={"red_block": EstimatedObject("red_block", pose, 0.9, True, 500),
                                 "blue_block": EstimatedObject("blue_block", Pose(), 0.0, False),
                                 "tray": EstimatedObject("tray", Pose((0.5, 0.3, 0.0)), 0.95, True, 5000)},
                        unknown=(clutter,))
    robot = robot_spec()
    scene = est.to_scene(robot, robot.home_joint_pos_rad, 0.08, models)
    names = [o.name for o in scene.objects]
    assert names == ["red_block", "tray", "clutter_0"]
    red = scene.object("red_block")
    assert red.pose == pose and red.urdf == models["red_block"].urdf and red.symmetry == "cube"
    assert red.mass_kg == catalog()["block_red"]["mass_kg"] and not red.fixed
    assert scene.object("tray").fixed and scene.object("tray").scale == 0.5
    assert scene.grasped is None
    with pytest.raises(KeyError, match="no model"):
        est.to_scene(robot, None, None, {"tray": models["tray"]})


def test_objects_of_one_color_share_a_label():
    seg = ColorDbscanSegmenter([(0.85, 0.12, 0.10), (0.85, 0.12, 0.10), (0.5, 0.5, 0.55)])
    assert len(seg.references) == 1
    assert seg.label_of((0.42, 0.06, 0.05)) == 0 and seg.label_of((0.5, 0.5, 0.5)) == NEUTRAL


def test_yaw_hypotheses_follow_the_declared_symmetry():
    from reconstruction.models import ObjectModel

    est = PoseEstimator()
    cube = ObjectModel.from_catalog("b", catalog()["block_red"])
    assert cube.symmetry == "cube"
    np.testing.assert_allclose(est._yaws(cube), [0.0, 22.5, 45.0, 67.5])             # one 90 deg period
    # 'none' is not a declaration: the mesh's own symmetry is used (the cube mesh's quarter turns)
    np.testing.assert_allclose(est._yaws(ObjectModel(cube.name, cube.urdf, symmetry="none")), [0, 22.5, 45, 67.5])
    duck = ObjectModel("duck", "pybullet_data:duck_vhacd.urdf", symmetry="none")
    assert len(est._yaws(duck)) == 12 and est._yaws(duck).max() == 330.0           # the whole turn, capped
    assert list(est._yaws(ObjectModel(cube.name, cube.urdf, symmetry="cylinder"))) == [0.0]
