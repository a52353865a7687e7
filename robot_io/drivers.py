"""The vendor driver registry: a name (`ur`, `franka`, `xarm`) and a driver config file -> a connected-ready `Robot`.

Each entry is imported on use, so a missing extra (`pip install 'antigrounding[ur]'`) is reported for that
driver alone. Unknown names are answered with a "did you mean".
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass

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
        close = difflib.get_close_matches(name, list(DRIVERS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DriverConfigError(f"--robot: unknown driver '{name}'{hint} (known: {sorted(DRIVERS)})")
    return DRIVERS[name]


def make_driver(name: str, config_path: str | None = None, host: str | None = None,
                cameras: Sequence[Camera] = ()) -> Robot:
    """Build (not connect) the named driver from its config file (default: the one shipped next to the driver),
    with `host` overriding the file's."""
    entry = driver_entry(name)
    module = importlib.import_module(entry.module)
    config = getattr(module, entry.config_class).load(config_path, host=host)
    return getattr(module, entry.robot_class)(config, cameras=cameras)
