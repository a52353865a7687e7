"""The converter's textured export (robot_io/libero/textured.py): MuJoCo's texture convention (row = v * height of
tex_data, row 0 first) must come out of the written OBJ + MTL + PNG where an OBJ reader (trimesh, as the planner's
appearance model reads it) finds it, also after decimation. Runs without LIBERO: the part is built here the way
prepare.py builds it from a compiled MjModel."""

import numpy as np
import pytest
import trimesh

from reconstruction.appearance import model_surface_look
from robot_io.libero.textured import TexturedPart, write_textured_obj

H_M = 0.1


def _part(subdivisions: int = 0) -> TexturedPart:
    """A 6 x 6 x 10 cm box, unwelded (MuJoCo's mesh_vert per face corner), v = height fraction; the texture's
    first third of rows (v < 1/3, the bottom third in MuJoCo) red, the rest white."""
    box = trimesh.creation.box(extents=(0.06, 0.06, H_M))
    for _ in range(subdivisions):
        box = box.subdivide()
    corners = np.asarray(box.vertices)[np.asarray(box.faces)]                   # (F, 3, 3)
    mesh = trimesh.Trimesh(corners.reshape(-1, 3), np.arange(3 * len(corners)).reshape(-1, 3), process=False)
    uv = np.stack([np.full(corners.shape[:2], 0.5), corners[:, :, 2] / H_M + 0.5], axis=2)
    image = np.full((60, 4, 3), 235, np.uint8)
    image[:20] = (200, 20, 20)
    return TexturedPart(mesh, uv, image, (1.0, 1.0, 1.0))


def _look(tmp_path, part: TexturedPart, max_faces: int):
    n = write_textured_obj([part], tmp_path, "textured", max_faces)
    assert n == 1 and (tmp_path / "textured_0.png").is_file()
    (tmp_path / "model.urdf").write_text('<robot name="t"><link name="b"><visual><geometry>'
                                         '<mesh filename="textured.obj"/></geometry></visual></link></robot>')
    look = model_surface_look(str(tmp_path / "model.urdf"))
    assert look.textured
    red = (look.albedo[:, 0] > 0.6) & (look.albedo[:, 1] < 0.3)
    z = look.points[:, 2] / H_M + 0.5                                          # height fraction
    side = np.abs(np.abs(look.points[:, :2]).max(axis=1) - 0.03) < 1e-4
    return red, z, side


def test_mujoco_rows_come_out_where_mujoco_draws_them(tmp_path):
    red, z, side = _look(tmp_path, _part(), 10000)
    assert np.all(red[side & (z < 0.3)]) and not np.any(red[side & (z > 0.36)])
    assert np.all(red[z < 1e-4]) and not np.any(red[z > 1 - 1e-4])            # bottom face v = 0, top face v = 1


def test_decimation_keeps_the_print(tmp_path):
    pytest.importorskip("fast_simplification", reason="trimesh's decimation needs it (the LIBERO venv has it)")
    part = _part(subdivisions=3)                                                # 768 faces
    red, z, side = _look(tmp_path, part, 300)
    faces = sum(1 for line in (tmp_path / "textured.obj").read_text().splitlines() if line.startswith("f "))
    assert faces <= 400
    # away from the band's edge the print is where it was (the decimated faces take their UVs from the nearest
    # original face)
    assert red[side & (z < 0.2)].mean() > 0.9 and red[side & (z > 0.5)].mean() < 0.1
