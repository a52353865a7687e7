"""Observation -> SceneEstimate: frame checks, robot removal, fusion, table and segmentation, 6D pose of known
objects, convex meshes of unknown ones, confidence and issues, the twin's SceneSpec and its export.

Floor 3 of the package stack: imports `sim` and `robot_io` types only. Nothing here reads truth.
"""

from reconstruction.checks import FrameCheck, FrameError, check_frame
from reconstruction.clutter import ClutterConfig, UnknownMesher, UnknownObject
from reconstruction.config import ReconConfig
from reconstruction.estimate import EstimatedObject, Issue, SceneEstimate
from reconstruction.export import export_scene
from reconstruction.models import ModelError, ObjectModel
from reconstruction.pose import PoseConfig, PoseEstimator
from reconstruction.reconstructor import Reconstructor
from reconstruction.robot_filter import RobotFilter
from reconstruction.segmentation import (
    ColorDbscanSegmenter,
    ImageSegmenter,
    ProjectedMaskSegmenter,
    SegmentationContext,
    Segmenter,
    TablePlane,
)

__all__ = [
    "ClutterConfig",
    "ColorDbscanSegmenter",
    "EstimatedObject",
    "FrameCheck",
    "FrameError",
    "ImageSegmenter",
    "Issue",
    "ModelError",
    "ObjectModel",
    "PoseConfig",
    "PoseEstimator",
    "ProjectedMaskSegmenter",
    "ReconConfig",
    "Reconstructor",
    "RobotFilter",
    "SceneEstimate",
    "SegmentationContext",
    "Segmenter",
    "TablePlane",
    "UnknownMesher",
    "UnknownObject",
    "check_frame",
    "export_scene",
]
