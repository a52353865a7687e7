"""Unknown objects: meshes from the points no model explains (hull, column decomposition, CoACD), down to the
table, clear of named objects. Geometry is checked with points that must lie inside or outside the parts."""


import logging
import multiprocessing
import threading

import numpy as np
import pybullet as p
import pytest
import trimesh

from reconstruction.clutter import ClutterConfig, UnknownMesher
from reconstruction.fusion import PointSet
from reconstruction.height_map import column_parts, height_map, solid_mesh
from reconstruction.segmentation import TablePlane
from sim.world import World


def _box_surface(lo, hi, spacing=0.004):
    """Points on the top and side faces of an axis-aligned box (the bottom is never seen)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    pts = []
    xs = np.arange(lo[0], hi[0] + 1e-9, spacing)
    ys = np.arange(lo[1], hi[1] + 1e-9, spacing)
    zs = np.arange(lo[2], hi[2] + 1e-9, spacing)
    X, Y = np.meshgrid(xs, ys)
    pts.append(np.column_stack([X.ravel(), Y.ravel(), np.full(X.size, hi[2])]))
    for x in (lo[0], hi[0]):
        Y, Z = np.meshgrid(ys, zs)
        pts.append(np.column_stack([np.full(Y.size, x), Y.ravel(), Z.ravel()]))
    for y in (lo[1], hi[1]):
        X, Z = np.meshgrid(xs, zs)
        pts.append(np.column_stack([X.ravel(), np.full(X.size, y), Z.ravel()]))
    return np.concatenate(pts)


def _points(xyz, min_height=0.008):
    xyz = xyz[xyz[:, 2] > min_height]   # the table cut removes the lowest few millimetres
    return PointSet(xyz, np.full((len(xyz), 3), 0.5), np.tile([1.2, 0.0, 0.8], (len(xyz), 1)))


def _inside(parts, xyz, tol=1e-4) -> np.ndarray:
    """Whether each point lies inside any of the parts (convex meshes)."""
    out = np.zeros(len(xyz), dtype=bool)
    for part in parts:
        verts = np.asarray(part.mesh_vertices) + np.asarray(part.pose.xyz)
        hull = trimesh.convex.convex_hull(verts)
        eq = np.column_stack([hull.face_normals, -np.einsum("ij,ij->i", hull.face_normals,
                                                             hull.vertices[hull.faces[:, 0]])])
        out |= np.all(xyz @ eq[:, :3].T + eq[:, 3] <= tol, axis=1)
    return out


L_SHAPE = np.concatenate([_box_surface((0.40, 0.00, 0.0), (0.50, 0.03, 0.04)),
                          _box_surface((0.40, 0.03, 0.0), (0.43, 0.20, 0.04))])
NOTCH = np.array([[0.455, 0.07, 0.02], [0.46, 0.05, 0.035]])   # inside the L's hull, outside the L
SOLID = np.array([[0.45, 0.015, 0.02], [0.415, 0.10, 0.02], [0.415, 0.14, 0.005]])
TABLE = TablePlane.z0()


def test_hull_covers_the_notch_and_reaches_the_table():
    obj = UnknownMesher(ClutterConfig(method="hull")).mesh("clutter_0", _points(L_SHAPE), TABLE)
    assert obj.method == "hull" and len(obj.parts) == 1 and obj.resting
    part = obj.parts[0]
    assert part.fixed and part.name == "clutter_0"
    assert _inside(obj.parts, SOLID).all() and _inside(obj.parts, NOTCH).all()
    verts = np.asarray(part.mesh_vertices) + np.asarray(part.pose.xyz)
    assert verts[:, 2].min() == pytest.approx(0.0, abs=1e-9)


def test_columns_follow_the_concave_shape():
    obj = UnknownMesher(ClutterConfig(method="columns")).mesh("clutter_0", _points(L_SHAPE), TABLE)
    assert obj.method == "columns" and 2 <= len(obj.parts) <= 6
    assert [p.name for p in obj.parts] == [f"clutter_0_p{k}" for k in range(len(obj.parts))]
    assert _inside(obj.parts, SOLID).all()
    assert not _inside(obj.parts, NOTCH).any()
    top = max((np.asarray(q.mesh_vertices) + np.asarray(q.pose.xyz))[:, 2].max() for q in obj.parts)
    low = min((np.asarray(q.mesh_vertices) + np.asarray(q.pose.xyz))[:, 2].min() for q in obj.parts)
    assert low == pytest.approx(0.0, abs=1e-9) and 0.036 <= top <= 0.045


def test_auto_keeps_one_hull_for_a_convex_object_and_decomposes_a_concave_one():
    mesher = UnknownMesher()
    assert mesher.config.method == "auto"
    box = mesher.mesh("clutter_0", _points(_box_surface((0.4, 0.0, 0.0), (0.46, 0.05, 0.05))), TABLE)
    assert box.method == "hull" and len(box.parts) == 1
    ell = mesher.mesh("clutter_1", _points(L_SHAPE), TABLE)
    assert ell.method == "columns" and len(ell.parts) >= 2 and not _inside(ell.parts, NOTCH).any()


def test_columns_stay_clear_of_a_named_object():
    """Points of a found named object (forbidden) remove the columns that would cut into it."""
    block = _box_surface((0.44, 0.05, 0.0), (0.49, 0.10, 0.05), spacing=0.003)    # sits in the L's notch
    obj = UnknownMesher(ClutterConfig(method="columns")).mesh(
        "clutter_0", _points(np.concatenate([_box_surface((0.40, 0.0, 0.0), (0.50, 0.045, 0.04)),
                                             _box_surface((0.40, 0.03, 0.0), (0.43, 0.15, 0.04))])),
        TABLE, forbidden_xyz=block)
    inside = _inside(obj.parts, block[(block[:, 0] > 0.445) & (block[:, 1] > 0.055) & (block[:, 0] < 0.485)
                                       & (block[:, 1] < 0.095)])
    assert not inside.any()


def test_a_cluster_above_the_table_is_extruded_to_its_own_bottom():
    floating = _points(_box_surface((0.4, 0.0, 0.06), (0.45, 0.05, 0.09)))
    obj = UnknownMesher(ClutterConfig(method="columns")).mesh("clutter_0", floating, TABLE)
    low = min((np.asarray(q.mesh_vertices) + np.asarray(q.pose.xyz))[:, 2].min() for q in obj.parts)
    assert not obj.resting and low == pytest.approx(0.06, abs=0.005)


def _silent_worker(vertices, faces, kw, conn):
    """A CoACD worker that never answers (a decomposition that would run past any time limit)."""
    threading.Event().wait()


def _failing_worker(vertices, faces, kw, conn):
    conn.send("RuntimeError: CoACD gave up")
    conn.close()


@pytest.mark.parametrize("worker, said", [(_silent_worker, "did not finish"), (_failing_worker, "CoACD failed")])
def test_coacd_falls_back_to_columns_when_it_gives_no_parts(monkeypatch, caplog, worker, said):
    """No answer within the time limit, or an error, gives the column decomposition, and the worker is stopped."""
    import reconstruction.clutter as clutter

    monkeypatch.setattr(clutter, "_coacd_worker", worker)
    cfg = ClutterConfig(method="coacd", coacd_timeout_s=0.5)
    with caplog.at_level(logging.INFO, logger="reconstruction.clutter"):
        obj = UnknownMesher(cfg).mesh("clutter_0", _points(L_SHAPE), TABLE)
    columns = UnknownMesher(ClutterConfig(method="columns")).mesh("clutter_0", _points(L_SHAPE), TABLE)
    assert obj.method == "columns" and len(obj.parts) == len(columns.parts) >= 1
    assert any(said in r.getMessage() for r in caplog.records)
    assert multiprocessing.active_children() == []   # the silent worker was terminated, not left running


def test_height_map_solid_is_watertight():
    cfg = ClutterConfig()
    hm = height_map(_points(L_SHAPE).points, TABLE, cfg)
    solid = solid_mesh(hm, cfg)
    assert solid.is_watertight
    L_volume = (0.10 * 0.03 + 0.03 * 0.17) * 0.04
    assert solid.volume == pytest.approx(L_volume, rel=0.35)
    assert 2 <= len(column_parts(hm, cfg)) <= 6


@pytest.mark.slow
def test_coacd_decomposes_the_extruded_solid_and_caches_it(monkeypatch):
    import reconstruction.clutter as clutter

    decompositions = []
    real = clutter.coacd_parts
    monkeypatch.setattr(clutter, "coacd_parts", lambda *a, **k: decompositions.append(1) or real(*a, **k))
    mesher = UnknownMesher(ClutterConfig(method="coacd", coacd_timeout_s=120.0))
    obj = mesher.mesh("clutter_0", _points(L_SHAPE), TABLE)
    assert obj.method == "coacd" and len(obj.parts) >= 2
    assert _inside(obj.parts, SOLID[:2]).all()
    again = mesher.mesh("clutter_0", _points(L_SHAPE + [0.002, 0.0, 0.0]), TABLE)   # within the cache grid
    assert again.method == "coacd" and len(again.parts) == len(obj.parts)
    assert len(decompositions) == 1   # the second cluster came from the cache: CoACD ran once


def test_unknown_parts_load_as_fixed_obstacles(panda_spec):
    from sim.scene import SceneSpec

    obj = UnknownMesher(ClutterConfig(method="columns")).mesh("clutter_0", _points(L_SHAPE), TABLE)
    client = p.connect(p.DIRECT)
    try:
        world = World.from_scene(client, SceneSpec(panda_spec, obj.parts))
        before = world.object_poses()
        world.step(120)
        for name, pose in world.object_poses().items():
            assert np.allclose(pose.position, before[name].position, atol=1e-9)
        world.close()
    finally:
        p.disconnect(client)
