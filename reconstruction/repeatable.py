"""Repeatable geometry: a seeded RANSAC plane and rounding of registration results.

Open3D 0.20 runs segment_plane and ICP on a thread pool: segment_plane's draws interleave between threads, so
`o3d.utility.random.seed` does not fix its answer (measured: 2 different planes in 30 calls on one cloud, with
one OpenMP thread too), and ICP's sums are reduced in thread order, so the same input gives transforms that
differ in the last bits. Through the twin's contact physics such a difference grows into a different MPC run.
Here the plane is a numpy RANSAC on a seeded generator (a pure function of its input), and every registration
result is rounded to `ROUND_DECIMALS` (1e-10 m or rad: far below any sensor, far above double rounding).
Open3D runs its feature-matching RANSAC (and more) on TBB threads that OMP_NUM_THREADS does not reach: seeded,
the same LIBERO observation still gave 5 different plate fits in 6 runs, and through the fit a different twin.
`Reconstructor.update` runs Open3D on one thread (`one_thread`): 8 of 8 runs repeated, for ~6% more time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import open3d as o3d

ROUND_DECIMALS = 10


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Open3D on a single thread inside the block (its thread count is process-wide; restored after)."""
    before = o3d.utility.get_max_threads()
    o3d.utility.set_max_threads(1)
    try:
        yield
    finally:
        o3d.utility.set_max_threads(before)


def rounded_transform(T) -> np.ndarray:
    """A 4x4 transform with its entries rounded: last-bit differences from threaded reductions disappear."""
    out = np.round(np.asarray(T, dtype=np.float64), ROUND_DECIMALS)
    out[3] = (0.0, 0.0, 0.0, 1.0)
    return out


def ransac_plane(points: np.ndarray, distance_m: float, iterations: int = 200, seed: int = 0,
                 batch: int = 50) -> tuple[np.ndarray, float, np.ndarray]:
    """Plane n . x + d = 0 (|n| = 1) through the most points within distance_m; returns (n, d, inlier indices).
    Deterministic for a given input and seed.

    Hypotheses are scored in batches (a (batch, N) distance matrix) so 200 of them on 8000 points take
    milliseconds.
    """
    pts = np.ascontiguousarray(points, dtype=np.float64)
    n_pts = len(pts)
    if n_pts < 3:
        return np.array([0.0, 0.0, 1.0]), 0.0, np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    best_count, best_n, best_d = -1, np.array([0.0, 0.0, 1.0]), 0.0
    for start in range(0, iterations, batch):
        k = min(batch, iterations - start)
        idx = np.stack([rng.choice(n_pts, 3, replace=False) for _ in range(k)])
        a, b, c = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
        normals = np.cross(b - a, c - a)
        norms = np.linalg.norm(normals, axis=1)
        ok = norms > 1e-12
        if not np.any(ok):
            continue
        normals, a = normals[ok] / norms[ok, None], a[ok]
        ds = -np.einsum("ij,ij->i", normals, a)
        counts = (np.abs(pts @ normals.T + ds) < distance_m).sum(axis=0)
        i = int(np.argmax(counts))   # first maximum: ties go to the earliest hypothesis, so the order is fixed
        if counts[i] > best_count:
            best_count, best_n, best_d = int(counts[i]), normals[i], float(ds[i])
    # The best hypothesis as it is, like open3d's segment_plane: a least-squares refit on its inliers was tried
    # and pulls the plane towards the objects' bottom rows (cluttered_touching seed 1: a block's yaw 16 deg off).
    inliers = np.flatnonzero(np.abs(pts @ best_n + best_d) < distance_m)
    best_n = np.round(best_n, ROUND_DECIMALS)
    return best_n, round(best_d, ROUND_DECIMALS), inliers
