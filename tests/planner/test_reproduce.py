"""Reproducibility helpers: the repeatable plane fit, rounded transforms, run identity and the run diff."""

import json
import os

import numpy as np
import open3d as o3d

from planner.reproduce import diff_runs, sha256_json, strip_timings
from planner.runlog import RunLog
from reconstruction.repeatable import one_thread, ransac_plane, rounded_transform
from reconstruction.segmentation import fit_table_plane


def _table_cloud(seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-0.4, 0.4, (6000, 2))
    n = np.array([0.02, -0.01, 1.0])
    n /= np.linalg.norm(n)
    z = -(n[0] * xy[:, 0] + n[1] * xy[:, 1] + 0.003) / n[2] + rng.normal(0, 0.001, len(xy))
    clutter = rng.uniform([-0.4, -0.4, 0.0], [0.4, 0.4, 0.03], (2500, 3))
    return np.r_[np.c_[xy, z], clutter], n, 0.003


def test_ransac_plane_finds_the_plane_and_repeats_exactly():
    pts, n_true, d_true = _table_cloud()
    answers = {ransac_plane(pts, 0.004, 200, seed=0)[0].tobytes() for _ in range(5)}
    assert len(answers) == 1                                  # a pure function of its input
    n, d, inliers = ransac_plane(pts, 0.004, 200, seed=0)
    if n[2] < 0:   # a plane's normal may come out either way
        n, d = -n, -d
    assert np.degrees(np.arccos(abs(np.dot(n, n_true)))) < 0.3 and abs(d - d_true) < 0.001
    assert len(inliers) > 5500


def test_open3d_segment_plane_is_what_this_replaces():
    """The reason for repeatable.py: open3d 0.20 answers differently for one seed (if it ever stops, drop it)."""
    pts, _, _ = _table_cloud(1)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    ours = {fit_table_plane(pts, band_m=0.05).normal for _ in range(10)}
    assert len(ours) == 1
    theirs = set()
    for _ in range(30):
        o3d.utility.random.seed(0)
        theirs.add(tuple(np.round(pc.segment_plane(0.004, 3, 200)[0], 12)))
    print(f"open3d segment_plane: {len(theirs)} different planes in 30 seeded calls")


def _feature_ransac(src, dst, f_src, f_dst):
    reg = o3d.pipelines.registration
    o3d.utility.random.seed(0)
    res = reg.registration_ransac_based_on_feature_matching(
        src, dst, f_src, f_dst, False, 0.01, reg.TransformationEstimationPointToPoint(False), 3,
        [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9)], reg.RANSACConvergenceCriteria(2000, 0.99))
    return np.round(res.transformation, 9).tobytes()


def test_open3d_on_one_thread_repeats_its_feature_ransac_and_restores_the_thread_count():
    """Reconstructor.update runs Open3D under one_thread: seeded feature RANSAC on threads draws in varying
    order (it gave 5 different LIBERO plate fits in 6 runs), on one thread it is a function of its input."""
    rng = np.random.default_rng(3)
    pts = np.r_[rng.uniform(-0.05, 0.05, (400, 3)) * [1, 1, 0.2], rng.uniform(-0.02, 0.02, (200, 3)) + [0, 0, 0.03]]
    dst = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    c, s_ = np.cos(0.4), np.sin(0.4)
    moved = pts @ np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]]).T + [0.1, 0.02, 0] + rng.normal(0, 0.001, pts.shape)
    src = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(moved))
    feats, hybrid = [], o3d.geometry.KDTreeSearchParamHybrid
    for pc in (src, dst):
        pc.estimate_normals(hybrid(0.02, 30))
        feats.append(o3d.pipelines.registration.compute_fpfh_feature(pc, hybrid(0.05, 100)))
    before = o3d.utility.get_max_threads()
    with one_thread():
        assert o3d.utility.get_max_threads() == 1
        ours = {_feature_ransac(src, dst, *feats) for _ in range(8)}
    assert o3d.utility.get_max_threads() == before
    assert len(ours) == 1
    theirs = {_feature_ransac(src, dst, *feats) for _ in range(8)}
    print(f"open3d feature RANSAC on {before} threads: {len(theirs)} different answers in 8 seeded calls")


def test_rounded_transform_removes_last_bit_noise():
    T = np.eye(4)
    T[:3, 3] = [0.1, 0.2, 0.3]
    T2 = T.copy()
    T2[0, 3] = np.nextafter(T2[0, 3], 1.0)
    assert not np.array_equal(T, T2)
    assert np.array_equal(rounded_transform(T), rounded_transform(T2))


def test_strip_timings_and_hash():
    rec = {"step": 1, "timings_s": {"observe": 0.1}, "scores": {"calls": [{"latency_s": 2.0, "raw_text": "x"}]},
           "run_dir": "/a"}
    assert strip_timings(rec) == {"step": 1, "scores": {"calls": [{"raw_text": "x"}]}}
    assert sha256_json({"a": 1, "b": 2}) == sha256_json({"b": 2, "a": 1})


def _run(root, chosen, t):
    log = RunLog.create(str(root), "t", 0)
    log.write_header({"reproduce": {"seeds": {"lab": 0}}, "started": t})
    for k, c in enumerate(chosen):
        log.append({"type": "step", "step": k, "chosen": c, "timings_s": {"observe": t * k}})
    log.close()
    return log.path


def test_diff_runs_ignores_timings_and_names_the_first_difference(tmp_path):
    a = _run(tmp_path / "a", [3, 5, 1], 1.0)
    b = _run(tmp_path / "b", [3, 5, 1], 2.5)
    c = _run(tmp_path / "c", [3, 4, 1], 1.0)
    assert diff_runs(a, b) == []
    diffs = diff_runs(a, c)
    assert len(diffs) == 1 and "record 1" in diffs[0] and ".chosen: 5 != 4" in diffs[0]
    assert os.path.exists(os.path.join(a, "run.json")) and json.load(open(os.path.join(a, "run.json")))


def test_the_robot_hash_reads_the_urdf_not_its_path(tmp_path, panda_spec):
    """Two checkouts keep the same URDF at different absolute paths: one robot, one hash; a changed file, another."""
    import dataclasses
    import shutil

    from planner.reproduce import robot_hash

    copy = tmp_path / "a" / "panda.urdf"
    copy.parent.mkdir()
    shutil.copy(panda_spec.urdf, copy)
    moved = dataclasses.replace(panda_spec, urdf=str(copy))
    assert robot_hash(moved) == robot_hash(panda_spec)
    copy.write_text(copy.read_text() + "\n<!-- edited -->\n")
    assert robot_hash(moved) != robot_hash(panda_spec)
    assert robot_hash(dataclasses.replace(panda_spec, name="other")) != robot_hash(panda_spec)
