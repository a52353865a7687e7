"""The converter's fixture support (robot_io/libero/fixtures.py): LIBERO's flat_stove.xml repeats the texture name
'tex-stove_knob', which MuJoCo refuses in a model of its own; robosuite's scene keeps the first asset of each name.
The XML rewrite runs without LIBERO; compiling needs mujoco (LIBERO's virtual environment has it)."""

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from robot_io.libero.fixtures import articulation, dedupe_assets

# flat_stove.xml's asset block and a slice of its body, trimmed; texture files are written by the test
STOVE = """<mujoco model="flat_stove">
  <compiler angle="radian" meshdir="./" />
  <asset>
    <texture file="flat_stove/metal.png" name="tex-stove_knob" type="2d"/>
    <material name="stove_knob_base" texture="tex-stove_knob"/>
    <texture file="flat_stove/button_dark_texture.png" name="tex-stove_knob" type="2d"/>
    <material name="stove_knob_button" texture="tex-stove_knob"/>
    <texture file="flat_stove/metal.png" name="tex-stove_metal" type="2d"/>
    <material name="stove_knob_metal" texture="tex-stove_metal"/>
  </asset>
  <worldbody>
    <body><body name="object"><body name="base">
      <body name="burner" pos="0.15 0 0">
        <site type="box" pos="0 0 0" size="0.075 0.075 0.0025" name="cook_region"/>
        <geom size="0.095 0.095 0.02" type="box" material="stove_knob_metal" group="0" name="base"/>
      </body>
      <body name="cabinet_top">
        <joint name="top_level" type="slide" axis="0 1 0" limited="true" range="-0.16 0.01"/>
        <site type="box" pos="0 0.01 0.18" quat="0.70711 0 0.70711 0" size="0.03 0.075 0.1" name="top_region"/>
        <geom size="0.05 0.05 0.01" pos="0 0 0.15" type="box"/>
      </body>
    </body></body></body>
  </worldbody>
</mujoco>"""


def test_repeated_asset_names_keep_the_first_as_robosuite_does(tmp_path):
    text, dropped = dedupe_assets(STOVE, str(tmp_path))
    root = ET.fromstring(text)
    textures = [(t.get("name"), t.get("file")) for t in root.iter("texture")]
    assert dropped == ["texture tex-stove_knob"]
    assert textures == [("tex-stove_knob", "flat_stove/metal.png"), ("tex-stove_metal", "flat_stove/metal.png")]
    assert [m.get("name") for m in root.iter("material")] == ["stove_knob_base", "stove_knob_button",
                                                               "stove_knob_metal"]
    compiler = root.find("compiler")
    # the rewritten text compiles from anywhere: its files resolve under the XML's own folder
    assert compiler.get("meshdir") == compiler.get("texturedir") == os.path.normpath(str(tmp_path))


def test_a_model_without_repeats_is_left_alone(tmp_path):
    unique = STOVE.replace('file="flat_stove/button_dark_texture.png" name="tex-stove_knob"',
                           'file="flat_stove/button_dark_texture.png" name="tex-stove_button"')
    assert dedupe_assets(unique, str(tmp_path))[1] == []


def test_articulation_keeps_the_numeric_ranges():
    class Cabinet:
        object_properties = {"articulation": {"default_open_ranges": [-0.16, -0.14], "note": "x"},
                             "vis_site_names": {}}

    assert articulation(Cabinet()) == {"default_open_ranges": [-0.16, -0.14]}
    assert articulation(object()) == {}


def test_the_stove_compiles_and_its_sites_are_in_the_object_frame(tmp_path):
    """With mujoco (LIBERO's environment): the repeated name no longer stops the compile; the cook region sits
    15 cm off the origin on top, the drawer's site rides its slide joint."""
    mujoco = pytest.importorskip("mujoco")
    from PIL import Image

    from robot_io.libero.fixtures import compile_model, region_sites

    (tmp_path / "flat_stove").mkdir()
    for name in ("metal.png", "button_dark_texture.png"):
        Image.new("RGB", (4, 4), (90, 90, 90)).save(tmp_path / "flat_stove" / name)
    xml = tmp_path / "flat_stove.xml"
    xml.write_text(STOVE)
    with pytest.raises(ValueError, match="repeated name"):
        mujoco.MjModel.from_xml_path(str(xml))
    model, dropped = compile_model(str(xml))
    assert dropped == ["texture tex-stove_knob"]
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    sites = region_sites(model, data, np.eye(4))
    assert sites["cook_region"]["pos_m"] == pytest.approx([0.15, 0.0, 0.0])
    assert sites["cook_region"]["half_m"] == pytest.approx([0.075, 0.075, 0.0025])
    assert sites["top_region"]["half_m"] == pytest.approx([0.1, 0.075, 0.03], abs=1e-4)
    assert sites["top_region"]["slide"] == {"axis": pytest.approx([0.0, 1.0, 0.0]), "range_m": [-0.16, 0.01]}
    assert "slide" not in sites["cook_region"]
