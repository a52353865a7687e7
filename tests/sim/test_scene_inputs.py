"""Robot configs and asset paths at the input edge: confined paths, physical numbers, names the URDF has."""

import os

import pybullet_data
import pytest
import yaml

import configs
from sim.scene import RobotSpec, SpecError, resolve_asset_path


@pytest.mark.parametrize("path", ["pybullet_data:../../../../etc/passwd", "pybullet_data:../x.urdf",
                                  "/etc/passwd", "../../../../../../etc/hosts"])
def test_paths_stay_in_their_data_roots(tmp_path, path):
    with pytest.raises(SpecError, match="inside its data root") as info:
        resolve_asset_path(path, str(tmp_path), "task.yaml", "objects.a.asset.urdf")
    assert (info.value.file, info.value.field) == ("task.yaml", "objects.a.asset.urdf")


def test_paths_inside_their_roots_resolve(tmp_path):
    data = os.path.realpath(pybullet_data.getDataPath())
    assert resolve_asset_path("pybullet_data:cube_small.urdf") == os.path.join(data, "cube_small.urdf")
    assert resolve_asset_path("meshes/a.urdf", str(tmp_path)) == str(tmp_path / "meshes" / "a.urdf")


def _robot(tmp_path, **change):
    data = yaml.safe_load(configs.shipped("robots", "panda.yaml").read_text())
    data.update(change)
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("change, field", [
    ({"home_joint_pos_rad": [0.0, -0.4, 0.0, 0.5, 0.0, 1.8, 0.785]}, "home_joint_pos_rad[3]"),
    ({"max_joint_speed_rad_s": [2.0] * 6 + [1e6]}, "max_joint_speed_rad_s[6]"),
    ({"workspace_max_xyz": [0.8, 0.45, 1e9]}, "workspace_max_xyz[2]"),
    ({"arm_joints": "panda_joint1"}, "arm_joints"),
    ({"ee_link": "panda_tool"}, "ee_link"),
    ({"finger_joints": ["panda_finger_joint1", "panda_finger_jiont2"]}, "finger_joints[1]"),
    ({"gripper_max_width_m": "8 cm"}, "gripper_max_width_m"),
])
def test_robot_fields_are_physical_and_exist_in_the_urdf(tmp_path, change, field):
    path = _robot(tmp_path, **change)
    with pytest.raises(SpecError) as info:
        RobotSpec.from_yaml(path)
    assert (info.value.file, info.value.field) == (path, field), str(info.value)


def test_the_shipped_robots_load():
    for name in configs.names("robots"):
        assert RobotSpec.from_yaml(str(configs.find("robots", name))).dof >= 6
