"""The hardware boundary: `Robot` and its sim-lab driver, observations, trajectories, the safety envelope.

Floor 2 of the package stack: imports `sim` only. The light types are imported eagerly; the parts that
pull in PyBullet (envelope, lab spec, sim lab driver) load on first use, so `import robot_io` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from robot_io.errors import ConnectionLostError, NotConnectedError, ProtectiveStopError, RobotError, SafetyRejected
from robot_io.observation import CameraFrame, Observation
from robot_io.robot import ExecuteReport, Robot
from robot_io.trajectory import JointTrajectory

_LAZY = {
    "EnvelopeConfig": "robot_io.envelope",
    "SafetyEnvelope": "robot_io.envelope",
    "ControllerLimits": "robot_io.lab_limits",
    "LabSpec": "robot_io.labspec",
    "LabSpecError": "robot_io.labspec",
    "Randomize": "robot_io.labspec",
    "SimRobot": "robot_io.sim_robot",
    "LabEvaluator": "robot_io.sim_robot",
    "LabProcess": "robot_io.sim_robot",
    "LabStartError": "robot_io.sim_robot",
    "launch_lab": "robot_io.sim_robot",
}

__all__ = [
    "CameraFrame",
    "ConnectionLostError",
    "ExecuteReport",
    "JointTrajectory",
    "NotConnectedError",
    "Observation",
    "ProtectiveStopError",
    "Robot",
    "RobotError",
    "SafetyRejected",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robot_io' has no attribute {name!r}")
