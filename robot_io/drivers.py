"""The vendor driver registry: a name (`ur`, `franka`, `xarm`) and a driver config file -> a connected-ready `Robot`.

Each entry is imported on use, so a missing extra (`pip install 'antigrounding[ur]'`) is reported for that
driver alone. Unknown names are answered with a "did you mean".
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

from configs.errors import Said, did_you_mean
from robot_io.camera import Camera
from robot_io.driver_config import DriverConfigError
from robot_io.robot import Robot


@dataclass(frozen=True)
class DriverEntry:
    module: str
    robot_class: str
    config_class: str
    extra: str
    vendor: str


DRIVERS = {
    "ur": DriverEntry("robot_io.ur", "URRobot", "URConfig", "ur", "Universal Robots (ur_rtde)"),
    "franka": DriverEntry("robot_io.franka", "FrankaRobot", "FrankaConfig", "franka", "Franka Research 3 (franky)"),
    "xarm": DriverEntry("robot_io.xarm", "XArmRobot", "XArmConfig", "xarm", "UFACTORY xArm (xArm Python SDK)"),
}


def driver_entry(name: str) -> DriverEntry:
    if name not in DRIVERS:
        raise DriverConfigError(None, "--robot", f"a driver name ({', '.join(DRIVERS)})", name,
                                hint=did_you_mean(name, DRIVERS, list_choices=False))
    return DRIVERS[name]


def make_driver(name: str, config_path: str | None = None, host: str | None = None,
                cameras: Sequence[Camera] = ()) -> Robot:
    """Build (not connect) the named driver from its config file (default: the one shipped next to the driver),
    with `host` overriding the file's. A bad config raises DriverConfigError naming the file and field."""
    entry = driver_entry(name)
    try:
        module = importlib.import_module(entry.module)
    except ImportError as e:
        raise DriverConfigError(None, "--robot", f"an installed driver: pip install 'antigrounding[{entry.extra}]'",
                                Said(f"{name} ({e})")) from None
    config_class = getattr(module, entry.config_class)
    try:
        config = config_class.load(config_path, host=host)
        return getattr(module, entry.robot_class)(config, cameras=cameras)
    except DriverConfigError as e:   # the robot spec it names: place the error in the config file
        file = config_path or getattr(importlib.import_module(f"{entry.module}.config"), "DEFAULT_CONFIG", None)
        raise e.located(file) from None


def load_cameras(config_paths: Sequence[str]) -> list[Camera]:
    """One RealSense camera per config file (`RealSenseConfig`: a device serial or a recording, and its pose, or
    the camera config `antigrounding calibrate` wrote in `calibration`). Built, not connected: the robot connects
    them with itself."""
    if not config_paths:
        return []
    try:
        from robot_io.realsense.camera import RealSenseCamera
        from robot_io.realsense.config import RealSenseConfig
    except ImportError as e:
        raise DriverConfigError(None, "--camera-config", "pyrealsense2: pip install 'antigrounding[realsense]'",
                                Said(str(e))) from None
    cams = []
    for path in config_paths:
        cfg = RealSenseConfig.load(path)
        try:
            cfg.pose()
        except DriverConfigError as e:
            raise e.located(path) from None
        cams.append(RealSenseCamera(cfg))
    names = [c.name for c in cams]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DriverConfigError(config_paths[names.index(dup[0], names.index(dup[0]) + 1)], "name",
                                "a camera name not used by another --camera-config", dup[0])
    return cams
