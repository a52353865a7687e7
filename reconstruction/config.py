"""Reconstruction settings: one frozen dataclass, validated."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconstruction.clutter import ClutterConfig
from reconstruction.pose import PoseConfig
from reconstruction.supports import SupportConfig


@dataclass(frozen=True)
class ReconConfig:
    voxel_m: float = 0.004                       # fused cloud resolution
    edge_jump_per_m: float = 0.012               # drop flying pixels: see fusion.jump_edges (0: keep every pixel)
    crop_min_xyz: tuple[float, float, float] | None = None   # None: the robot's workspace box + crop_margin_m
    crop_max_xyz: tuple[float, float, float] | None = None
    crop_margin_m: float = 0.15
    robot_depth_tol_m: float = 0.015             # observed depth this close to (or behind) the rendered robot: robot
    robot_dilate_px: int = 2                     # robot silhouette grown by this many pixels
    robot_proxy: str = "collision"               # render the arm's collision shapes (fast) or "visual" meshes
    # "tiny": TinyRenderer. "egl" is faster for visual meshes but the EGL plugin serves one client per process:
    # loading it here breaks every other EGL client of the process (a twin, the renderer, a test's lab world).
    robot_renderer: str = "tiny"
    robot_render_downscale: int = 2              # render the arm at 1/n resolution (masks match at n = 2)
    table_max_tilt_deg: float = 5.0              # fitted table plane accepted only this close to z = 0
    table_max_offset_m: float = 0.03
    table_inlier_m: float = 0.004
    table_clearance_m: float = 0.006             # points this close above the table (or below) are table ...
    table_clearance_sigma: float = 3.0           # ... or within this many times the table's measured depth noise
    table_sample_stride: int = 24                # every n-th pixel near z = 0 votes in the plane fit
    cluster_eps_m: float = 0.01                  # DBSCAN neighbourhood
    cluster_min_points: int = 6
    min_cluster_points: int = 15
    max_color_dist: float = 0.08                 # chromaticity distance accepted as an object's color
    min_fitness: float = 0.5                     # below: the object is reported not found
    full_coverage: float = 0.5                   # confidence = fitness x min(1, coverage / full_coverage)
    low_confidence: float = 0.6                  # found objects below this confidence are reported
    ambiguous_rival: float = 0.9                 # a clearly different pose ranked this close to the best (ratio)
                                                 # lowers the confidence, to half of it at half the remaining gap
    explain_m: float = 0.015                     # points this close to a found model (and its edge artefacts) are it
    clutter_min_points: int = 20
    phantom_tol_m: float = 0.008                 # an unknown cluster the cameras see this far through ...
    phantom_max_seen_through: float = 0.35       # ... at more than this fraction of its points is dropped
    clutter: ClutterConfig = field(default_factory=ClutterConfig)   # meshing of unknown objects
    # segments cut at the top of what an object stands on (supports.py); None: not cut
    supports: SupportConfig | None = field(default_factory=SupportConfig)
    held_max_gap_m: float = 0.005                # gripper this much narrower than fully open may hold something
    warm_up: bool = True                         # render each known camera once at construction
    track: bool = True                           # start from last step's pose; skip the global search if it fits
    pose: PoseConfig = field(default_factory=PoseConfig)

    def __post_init__(self) -> None:
        for name in ("voxel_m", "crop_margin_m", "robot_depth_tol_m", "table_inlier_m", "table_clearance_m",
                     "cluster_eps_m", "explain_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ReconConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.robot_proxy not in ("collision", "visual"):
            raise ValueError(f"ReconConfig.robot_proxy {self.robot_proxy!r}: expected 'collision' or 'visual'")
        if self.robot_renderer not in ("tiny", "egl"):
            raise ValueError(f"ReconConfig.robot_renderer {self.robot_renderer!r}: expected 'tiny' or 'egl'")
        for name in ("min_fitness", "low_confidence", "full_coverage", "ambiguous_rival"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ReconConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.full_coverage <= 0 or self.edge_jump_per_m < 0 or self.table_clearance_sigma < 0:
            raise ValueError("ReconConfig: full_coverage must be > 0, edge_jump_per_m and table_clearance_sigma >= 0")
        if (self.crop_min_xyz is None) != (self.crop_max_xyz is None):
            raise ValueError("ReconConfig: give both crop_min_xyz and crop_max_xyz, or neither")
        if self.crop_min_xyz is not None:
            lo, hi = tuple(map(float, self.crop_min_xyz)), tuple(map(float, self.crop_max_xyz))
            if len(lo) != 3 or len(hi) != 3 or any(a >= b for a, b in zip(lo, hi)):
                raise ValueError(f"ReconConfig: crop box {lo} .. {hi} is not a box")
            object.__setattr__(self, "crop_min_xyz", lo)
            object.__setattr__(self, "crop_max_xyz", hi)
