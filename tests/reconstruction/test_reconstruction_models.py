"""Object models from URDFs: primitives, meshes, origins, scale, the root link's frame (sim's object frame)."""

import numpy as np
import pybullet as p
import pytest

from reconstruction.models import ModelError, ObjectModel, load_geometry
from sim.geometry import Pose
from tests.fakes.recon_scenes import catalog


def _write(tmp_path, body: str) -> str:
    path = tmp_path / "obj.urdf"
    path.write_text(f'<?xml version="1.0"?>\n<robot name="t">{body}</robot>\n')
    return str(path)


def test_cube_from_catalog_is_a_5cm_cube():
    m = ObjectModel.from_catalog("red_block", catalog()["block_red"])
    np.testing.assert_allclose(m.geometry.bounds, [[-0.025] * 3, [0.025] * 3], atol=1e-9)
    pts, normals = m.points, m.normals
    assert pts.shape == (3000, 3) and normals.shape == (3000, 3)
    # every sample lies on a face: its largest coordinate is at the half size
    np.testing.assert_allclose(np.abs(pts).max(axis=1), 0.025, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-9)
    # face normals point outwards
    assert np.all(np.einsum("ij,ij->i", normals, pts) > 0)
    assert m.chromatic and m.symmetry == "cube"


def test_tray_scale_applies_on_top_of_the_mesh_scale():
    m = ObjectModel.from_catalog("tray", catalog()["tray"])
    extent = m.geometry.extent
    # traybox.urdf: the mesh is ~0.59 m wide at its own scale 0.5; the catalog halves it again
    assert 0.28 < extent[0] < 0.31 and 0.28 < extent[1] < 0.31 and 0.05 < extent[2] < 0.08
    assert not m.chromatic


def test_primitives_origins_in_the_link_frame(tmp_path):
    urdf = _write(tmp_path, """
      <link name="base">
        <inertial><origin xyz="0 0 0.1"/><mass value="1"/>
          <inertia ixx="1" ixy="0" ixz="0" iyy="1" iyz="0" izz="1"/></inertial>
        <visual><origin xyz="0 0 0.1" rpy="0 0 0"/><geometry><box size="0.2 0.1 0.04"/></geometry></visual>
        <visual><origin xyz="0.2 0 0.1" rpy="1.5707963 0 0"/>
          <geometry><cylinder radius="0.02" length="0.1"/></geometry></visual>
      </link>""")
    g = load_geometry(urdf, 2.0)
    # box: x in [-0.1, 0.1], z in [0.08, 0.12] in the link frame (the inertial origin does not move it);
    # cylinder along y (rolled), centred at x = 0.2; everything doubled by the scale
    np.testing.assert_allclose(g.bounds[0], [-0.2, -0.1, 0.16], atol=2e-3)
    np.testing.assert_allclose(g.bounds[1], [0.44, 0.1, 0.24], atol=2e-3)
    assert g.collision_mesh is None and g.support_mesh is g.mesh


def test_model_frame_is_the_frame_sim_poses_objects_in(client, tmp_path, panda_spec):
    """An offset, rotated inertial origin: the model posed at World.object_pose sits where the body is."""
    from sim.scene import ObjectSpec, SceneSpec
    from sim.world import World

    urdf = _write(tmp_path, """
      <link name="base">
        <inertial><origin xyz="0.03 0.01 0.0" rpy="0 0 0.5"/><mass value="0.2"/>
          <inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" iyz="0" izz="1e-4"/></inertial>
        <visual><origin xyz="0.02 0 0.02"/><geometry><box size="0.08 0.04 0.04"/></geometry></visual>
        <collision><origin xyz="0.02 0 0.02"/><geometry><box size="0.08 0.04 0.04"/></geometry></collision>
      </link>""")
    pose = Pose.from_xyz_rpy_deg((0.5, 0.1, 0.0), (0, 0, 30))
    world = World.from_scene(client, SceneSpec(panda_spec, (ObjectSpec("o", pose, urdf=urdf, fixed=True),)))
    m = ObjectModel("o", urdf)
    T = world.object_pose("o").matrix()
    pts = m.points @ T[:3, :3].T + T[:3, 3]
    lo, hi = world.object_aabb("o")
    # PyBullet's AABB of a rotated child shape is loose but centred on it; the model's centre must match it
    # (posed in the inertial frame instead, it would be ~3 cm off)
    np.testing.assert_allclose((pts.min(axis=0) + pts.max(axis=0)) / 2, (lo + hi) / 2, atol=2e-3)
    np.testing.assert_allclose(world.object_pose("o").position, pose.position, atol=1e-6)
    np.testing.assert_allclose(m.geometry.collision_mesh.bounds, m.geometry.bounds, atol=1e-9)


def test_tray_geometry_covers_its_pybullet_body(client):
    """The tray (visual mesh, collision boxes): our model, posed where it was loaded, covers its AABB."""
    m = ObjectModel.from_catalog("tray", catalog()["tray"])
    body = p.loadURDF(m.urdf, (0.3, 0.1, 0.0), globalScaling=m.scale, physicsClientId=client)
    pos, quat = p.getBasePositionAndOrientation(body, physicsClientId=client)
    T = Pose(pos, quat).matrix()
    pts = m.points @ T[:3, :3].T + T[:3, 3]
    lo, hi = p.getAABB(body, physicsClientId=client)
    # collision boxes (AABB) and visual mesh agree to a couple of centimetres in x, y
    np.testing.assert_allclose(pts.min(axis=0)[:2], np.asarray(lo)[:2], atol=0.02)
    np.testing.assert_allclose(pts.max(axis=0)[:2], np.asarray(hi)[:2], atol=0.02)


def test_errors_name_the_field(tmp_path):
    with pytest.raises(ModelError, match="file not found"):
        ObjectModel("x", str(tmp_path / "missing.urdf"))
    urdf = _write(tmp_path, '<link name="b"><visual><geometry><box size="0.1 0.1 0.1"/></geometry></visual></link>')
    with pytest.raises(ModelError, match="symmetry"):
        ObjectModel("x", urdf, symmetry="spherical")
    with pytest.raises(ModelError, match="scale"):
        ObjectModel("x", urdf, scale=0)
    with pytest.raises(ModelError, match="rgba"):
        ObjectModel("x", urdf, rgba=(1, 0, 0))
    empty = _write(tmp_path, '<link name="b"/>')
    with pytest.raises(ModelError, match="no visual or collision geometry"):
        _ = ObjectModel("x", empty).geometry
