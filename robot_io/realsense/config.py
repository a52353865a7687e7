"""`RealSenseConfig`: which RealSense to open (or which recording to play) and where it sits in the world."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from robot_io.driver_config import DriverConfigError, load_driver_config

DEFAULT_CONFIG = Path(__file__).with_name("d435.yaml")
_IDENTITY = tuple(float(v) for v in np.eye(4).flatten())


@dataclass(frozen=True)
class RealSenseConfig:
    """serial: pick one device (None: the only one); recording: play a .db3/.bag file instead (not in real time:
    from then on every frame is delivered); width/height/fps: requested streams (live only); align_depth_to_color:
    reproject depth into the colour camera so both share the colour intrinsics; timeout_s: deadline of one frame;
    T_world_camera: the camera pose (OpenCV optical frame), or `calibration`: a camera config YAML (the format of
    configs/cameras/, written by `antigrounding calibrate`) whose T_world_camera is used instead."""

    name: str = "realsense"
    serial: str | None = None
    recording: str | None = None
    width: int = 640
    height: int = 480
    fps: int = 30
    align_depth_to_color: bool = True
    timeout_s: float = 1.0
    T_world_camera: tuple[float, ...] = _IDENTITY
    calibration: str | None = None

    def __post_init__(self) -> None:
        for name in ("width", "height", "fps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RealSenseConfig.{name} must be > 0, got {getattr(self, name)}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"RealSenseConfig.timeout_s must be > 0, got {self.timeout_s}")
        T = np.asarray(self.T_world_camera, float)
        if T.size != 16:
            raise ValueError(f"RealSenseConfig.T_world_camera needs 16 numbers (row-major 4x4), got {T.size}")
        T = T.reshape(4, 4)
        if not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-4) or not np.allclose(T[3], [0, 0, 0, 1]):
            raise ValueError("RealSenseConfig.T_world_camera is not a rigid transform")

    def pose(self) -> np.ndarray:
        """T_world_camera (4, 4): from the calibration file when one is named, else the config's own."""
        if self.calibration is None:
            return np.asarray(self.T_world_camera, float).reshape(4, 4)
        where = f"RealSenseConfig.calibration {self.calibration}"
        try:
            with open(self.calibration) as f:
                data = yaml.safe_load(f)
        except OSError as e:
            raise DriverConfigError(f"{where}: cannot read: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise DriverConfigError(f"{where}: not valid YAML: {e}") from None
        if not isinstance(data, dict) or "T_world_camera" not in data:
            raise DriverConfigError(f"{where}: expected a camera config with field 'T_world_camera', got "
                                    f"{type(data).__name__}")
        try:
            T = np.asarray(data["T_world_camera"], float).reshape(4, 4)
        except (TypeError, ValueError):
            raise DriverConfigError(f"{where}: field 'T_world_camera': expected 16 numbers, got "
                                    f"{data['T_world_camera']!r}") from None
        return T

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides) -> RealSenseConfig:
        """From a YAML file (default: d435.yaml next to this module), with non-None keyword overrides."""
        return load_driver_config(cls, path if path is not None else DEFAULT_CONFIG, **overrides)
