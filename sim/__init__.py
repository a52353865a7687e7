"""PyBullet twin: geometry types, scene description, world (IK/FK, collision, rollout), cameras, predicates.

Floor 1 of the package stack: imports nothing internal. Every function that touches PyBullet takes the
client id explicitly; there is no module-level client.
"""

from sim.geometry import Pose, rotation_error_deg, transform_points
from sim.scene import ObjectSpec, RobotSpec, SceneSpec

__all__ = ["ObjectSpec", "Pose", "RobotSpec", "SceneSpec", "rotation_error_deg", "transform_points"]
