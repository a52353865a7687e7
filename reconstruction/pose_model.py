"""The registration data of one known model, prepared once per model: surface samples at two densities (with
normals, FPFH and KD-trees), its stable resting poses and its symmetry (pose.PoseEstimator uses it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
import trimesh
from scipy.spatial import cKDTree

from reconstruction.model_symmetry import object_symmetry
from reconstruction.models import ObjectModel
from reconstruction.resting import distinct_ups, fills_hull, stable_up_directions
from sim.symmetry import MeshSymmetry

reg = o3d.pipelines.registration


@dataclass(frozen=True, eq=False)
class PreparedModel:
    voxel_m: float
    sparse: o3d.geometry.PointCloud      # ~one sample per voxel, with FPFH: global registration
    fpfh: reg.Feature
    dense: o3d.geometry.PointCloud       # denser samples: ICP target and fitness (no sparse-sampling bias)
    points: np.ndarray                   # sparse samples and their normals: the visibility check
    normals: np.ndarray
    center: np.ndarray
    bottom_z: float
    dense_points: np.ndarray             # the dense samples as arrays, with a KD-tree: constrained refinement
    dense_normals: np.ndarray
    tree: cKDTree
    hull_vertices: np.ndarray            # of the collision geometry: the lowest point of a pose
    stable_ups: np.ndarray               # (k, 3) object-frame directions that point up in a stable resting pose
    convex_outline: bool                 # the mesh fills its convex hull: its outline is the hull's outline
    sparse_tree: cKDTree | None = None   # over the sparse samples: coarse resting fits
    rest_ups: np.ndarray | None = None   # stable_ups, one per class of poses the symmetry makes alike
    symmetry: MeshSymmetry | None = None   # declared, or inferred from the mesh (model_symmetry.object_symmetry)


def even_samples(mesh: trimesh.Trimesh, spacing_m: float, seed: int = 0, max_points: int = 20000
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Surface samples about spacing_m apart (one random sample kept per voxel), with their exact face normals.

    Averaging per voxel would cancel normals on thin double-sided walls, so a real sample is kept.
    """
    n = int(np.clip(8.0 * mesh.area / spacing_m**2, 500, 20 * max_points))
    pts, face = trimesh.sample.sample_surface(mesh, n, seed=seed)
    keys = np.floor(pts / spacing_m).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    if len(first) > max_points:
        first = np.random.default_rng(seed).choice(first, max_points, replace=False)
    first = np.sort(first)
    return np.ascontiguousarray(pts[first]), np.ascontiguousarray(np.asarray(mesh.face_normals)[face[first]])


def cloud(points: np.ndarray, normals: np.ndarray) -> o3d.geometry.PointCloud:
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64)))
    pc.normals = o3d.utility.Vector3dVector(np.ascontiguousarray(normals, dtype=np.float64))
    return pc


def hybrid(radius: float, max_nn: int) -> o3d.geometry.KDTreeSearchParamHybrid:
    return o3d.geometry.KDTreeSearchParamHybrid(radius=float(radius), max_nn=int(max_nn))


def prepare_model(model: ObjectModel, voxel_min_m: float, voxel_max_m: float, voxel_per_diameter: float,
                  seed: int = 0) -> PreparedModel:
    """Registration data of a model: its voxel is diameter / voxel_per_diameter, clamped to [min, max]."""
    geom = model.geometry
    voxel = float(np.clip(geom.diameter / voxel_per_diameter, voxel_min_m, voxel_max_m))
    pts, normals = even_samples(geom.mesh, voxel, seed)
    sparse = cloud(pts, normals)
    fpfh = reg.compute_fpfh_feature(sparse, hybrid(5 * voxel, 100))
    dense_pts, dense_normals = even_samples(geom.mesh, float(np.clip(voxel / 2, 0.0025, 0.005)), seed)
    # Resting is judged on the visual mesh, the surface the cameras measure: catalog collision shapes are
    # often coarser (the tray's tilted wall boxes reach 2 mm below its visual bottom).
    support = geom.mesh
    ups = stable_up_directions(support)
    sym = object_symmetry(model)
    return PreparedModel(voxel, sparse, fpfh, cloud(dense_pts, dense_normals), pts, normals,
                         geom.bounds.mean(axis=0), float(support.bounds[0, 2]), dense_pts, dense_normals,
                         cKDTree(dense_pts), np.asarray(support.convex_hull.vertices, dtype=float),
                         ups, fills_hull(geom.mesh, dense_pts, voxel), cKDTree(pts), distinct_ups(ups, sym), sym)
