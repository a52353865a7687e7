"""Observation -> SceneEstimate: robot removal, fusion, table and segmentation, 6D pose of known objects,
convex hulls of unknown ones, and the twin's SceneSpec.

Floor 3 of the package stack: imports `sim` and `robot_io` types only. Nothing here reads truth.
"""

from reconstruction.config import ReconConfig
from reconstruction.estimate import EstimatedObject, SceneEstimate
from reconstruction.models import ModelError, ObjectModel
from reconstruction.pose import PoseConfig, PoseEstimator
from reconstruction.reconstructor import Reconstructor
from reconstruction.robot_filter import RobotFilter
from reconstruction.segmentation import ColorDbscanSegmenter, Segmenter, TablePlane

__all__ = [
    "ColorDbscanSegmenter",
    "EstimatedObject",
    "ModelError",
    "ObjectModel",
    "PoseConfig",
    "PoseEstimator",
    "ReconConfig",
    "Reconstructor",
    "RobotFilter",
    "SceneEstimate",
    "Segmenter",
    "TablePlane",
]
