"""Export of the twin: scene.json + one URDF per object + OBJ meshes, loaded back in a fresh plain PyBullet client
(no project code) at the same poses, with the same geometry, and settling like the twin."""

import json
import os
import subprocess
import sys

import numpy as np
import pybullet as p
import pybullet_data
import pytest

from reconstruction import EstimatedObject, Issue, SceneEstimate, export_scene
from reconstruction.clutter import ClutterConfig, UnknownMesher
from reconstruction.fusion import PointSet
from reconstruction.models import load_geometry
from reconstruction.segmentation import TablePlane
from sim.geometry import Pose
from sim.scene import SceneSpec
from tests.fakes.recon_scenes import catalog, named_object, robot_spec


@pytest.fixture(scope="module")
def twin():
    cat = catalog()
    robot = robot_spec()
    block = named_object("red_block", "block_red", (0.52, 0.12, 0.025), 30, cat)
    tray = named_object("tray", "tray", (0.5, -0.15, 0.0), 10, cat)
    # an L-shaped unknown object in columns (several convex parts)
    xs, ys = np.meshgrid(np.arange(0.30, 0.40, 0.004), np.arange(0.05, 0.20, 0.004))
    keep = (xs < 0.33) | (ys < 0.08)
    top = np.column_stack([xs[keep], ys[keep], np.full(keep.sum(), 0.04)])
    top = np.vstack([top, top * [1, 1, 0.3]])     # and low points: it stands on the table
    pts = PointSet(top, np.full((len(top), 3), 0.5), np.tile([1.2, 0, 0.8], (len(top), 1)))
    unknown = UnknownMesher(ClutterConfig(method="columns")).mesh("clutter_0", pts, TablePlane.z0())
    assert len(unknown.parts) >= 2
    objects = (block, tray, *unknown.parts)
    scene = SceneSpec(robot, objects, joint_pos_rad=robot.home_joint_pos_rad, gripper_width_m=0.08)
    est = SceneEstimate(
        objects={"red_block": EstimatedObject("red_block", block.pose, 0.9, True, 500, 0.002, 0.8, confidence=0.9),
                 "tray": EstimatedObject("tray", tray.pose, 0.55, True, 3000, 0.003, 0.6, confidence=0.55)},
        unknown=unknown.parts, clutter=(unknown,),
        issues=(Issue("low_confidence", "tray", "'tray': low confidence 0.55"),), cameras_used=("front",))
    return scene, est, unknown


def _link_pose(body: int, client: int) -> Pose:
    pos, quat = p.getBasePositionAndOrientation(body, physicsClientId=client)
    info = p.getDynamicsInfo(body, -1, physicsClientId=client)
    return Pose(pos, quat) @ Pose(info[3], info[4]).inverse()


def test_export_loads_in_plain_pybullet_at_the_same_poses(twin, tmp_path):
    scene, est, unknown = twin
    written = export_scene(scene, str(tmp_path), est)
    assert {"red_block", "tray", "clutter_0", "scene.json", "load_scene.py"} <= set(written)
    doc = json.loads((tmp_path / "scene.json").read_text())
    entries = {e["name"]: e for e in doc["objects"]}
    assert set(entries) == {"red_block", "tray", "clutter_0"}
    assert entries["clutter_0"]["kind"] == "unknown"
    assert entries["clutter_0"]["parts"] == [q.name for q in unknown.parts]
    assert doc["estimate"]["objects"]["tray"]["status"] == "low_confidence"
    assert doc["estimate"]["objects"]["red_block"]["confidence"] == pytest.approx(0.9)

    client = p.connect(p.DIRECT)
    try:
        p.setGravity(0, 0, -9.81, physicsClientId=client)
        p.loadURDF(os.path.join(pybullet_data.getDataPath(), "plane.urdf"), physicsClientId=client)
        bodies = {}
        for name, e in entries.items():
            bodies[name] = p.loadURDF(str(tmp_path / e["urdf"]), e["pose"]["xyz"], e["pose"]["quat_xyzw"],
                                      useFixedBase=e["fixed"], physicsClientId=client)
        for name in ("red_block", "tray"):
            spec = scene.object(name)
            got = _link_pose(bodies[name], client)
            np.testing.assert_allclose(got.position, spec.pose.position, atol=1e-6)
            np.testing.assert_allclose(got.matrix()[:3, :3], spec.pose.matrix()[:3, :3], atol=1e-6)
            # the collision geometry is the catalog's: its AABB is where the model's collision mesh is
            geom = load_geometry(spec.urdf, spec.scale)
            T = spec.pose.matrix()
            verts = np.asarray(geom.support_mesh.vertices if geom.collision_mesh is None
                               else geom.collision_mesh.vertices) @ T[:3, :3].T + T[:3, 3]
            lo, hi = p.getAABB(bodies[name], physicsClientId=client)
            np.testing.assert_allclose((np.asarray(lo) + hi) / 2, (verts.min(0) + verts.max(0)) / 2, atol=3e-3)
        verts = np.concatenate([np.asarray(q.mesh_vertices) + q.pose.xyz for q in unknown.parts])
        lo, hi = p.getAABB(bodies["clutter_0"], physicsClientId=client)
        # PyBullet pads a mesh's AABB by its collision margin (4 mm)
        np.testing.assert_allclose(lo, verts.min(axis=0), atol=5e-3)
        np.testing.assert_allclose(hi, verts.max(axis=0), atol=5e-3)
        # the exported twin settles: the block stays where it was estimated
        for _ in range(240):
            p.stepSimulation(physicsClientId=client)
        drift = _link_pose(bodies["red_block"], client).position - scene.object("red_block").pose.position
        assert np.linalg.norm(drift) < 0.003
    finally:
        p.disconnect(client)


def test_loader_script_runs_without_the_project(twin, tmp_path):
    scene, est, _ = twin
    export_scene(scene, str(tmp_path), est)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "load_scene.py"], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "loaded 3 objects" in proc.stdout


def test_export_without_an_estimate_keeps_every_part(twin, tmp_path):
    scene, _, unknown = twin
    export_scene(scene, str(tmp_path))
    doc = json.loads((tmp_path / "scene.json").read_text())
    names = {e["name"] for e in doc["objects"]}
    assert names == {"red_block", "tray", *[q.name for q in unknown.parts]} and "estimate" not in doc
