"""Top-down pinch grasps across a thin wall or rim (a bowl too wide for the gripper's opening).

`GraspFinder.contact` measures the whole object along the closing direction; a 112 mm bowl never fits a 78 mm
opening, yet the Panda holds it by pinching the rim wall: one finger inside the bowl, one outside. For N directions
around the object's axis (with `max_tilt_deg` set, its own z where it leans less than that, so a bowl resting tilted
is pinched along its axis; by default the world's vertical; the axis's place from the mesh's bounds, not its
origin), the closing direction is radial. At the grasp height the outer finger, closing inwards from outside the
object, stops at the first surface its pad meets; the inner finger, starting inside the opening, stops at the first
surface it meets closing outwards. Several TCP heights are tried (the shallowest 16 mm below the top, then deeper);
a pinch at least `min_hold_width_m` across ranks first, because the tracker's held rule reads fingers stopped closer
than sim.grasp.HELD_MIN_WIDTH_M (8 mm) as shut on nothing: LIBERO's bowl wall (its collision boxes) measures 7-8 mm
across 12-16 mm below the rim and 10 mm at 20-28 mm. A flared wall's normals are far from the horizontal closing
direction (27-49 degrees on the LIBERO bowl) but nearly opposite each other, and the wall is squeezed along them:
the pair is antipodal when the two contact normals oppose each other within the friction cone. A grasp is kept when
both open fingers descend without touching the object and the closed fingers sit on the contacts without cutting
into the rest of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import trimesh

from planner.grasps import UP, GraspPoint, ray_hits, surface_samples, tcp_pose
from sim.geometry import Pose
from sim.grasp import HELD_MIN_WIDTH_M


@dataclass(frozen=True)
class RimGraspConfig:
    max_width_m: float = 0.078          # the gripper's full opening (both fingers open)
    pad_width_m: float = 0.018          # the pads' width across the closing direction
    pad_height_m: float = 0.018         # the pads reach this far above the TCP
    pad_below_m: float = 0.006          # and this far below it (the fingertips' floor)
    finger_thickness_m: float = 0.012   # a finger's depth along the closing direction
    depth_below_rim_m: float = 0.016    # TCP this far below the object's top (the shallowest tried)
    extra_depths_m: tuple[float, ...] = (0.004, 0.008, 0.012)   # and these much deeper
    min_hold_width_m: float = HELD_MIN_WIDTH_M + 0.002   # a pinch narrower reads as a shut gripper to the held rule
    min_tcp_z_m: float = 0.011          # fingertips off the table (world z of the TCP)
    friction_mu: float = 0.5            # the contact normals must oppose within atan(mu)
    min_width_m: float = 0.002
    max_wall_m: float = 0.04            # a pinch wider than this is not a wall
    contact_band_m: float = 0.0015      # how far from a pad's touch the surface still counts as pressed
    pregrasp_height_m: float = 0.06
    n_rays: int = 5                     # rays per pad side (across x up)
    # the object's own axis is the rim's axis up to this lean from vertical; 0: the world's vertical always (on
    # LIBERO-Spatial task 5, following the doubtful fit's tilt lost the episode the vertical won: docs/bowl_grasp.md)
    max_tilt_deg: float = 0.0
    high_side_weight: float = 0.3       # quality per unit of the closing direction's rise (a tilted rim's high side)

    def __post_init__(self) -> None:
        for name in ("max_width_m", "pad_width_m", "finger_thickness_m", "friction_mu", "max_wall_m"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RimGraspConfig.{name}: expected > 0, got {getattr(self, name)}")
        if any(d < 0 for d in self.extra_depths_m):
            raise ValueError(f"RimGraspConfig.extra_depths_m: expected >= 0 each, got {self.extra_depths_m}")
        for name in ("pad_height_m", "pad_below_m", "depth_below_rim_m", "contact_band_m", "pregrasp_height_m",
                     "min_hold_width_m"):
            if getattr(self, name) < 0:
                raise ValueError(f"RimGraspConfig.{name}: expected >= 0, got {getattr(self, name)}")
        if self.n_rays < 2:
            raise ValueError(f"RimGraspConfig.n_rays: expected >= 2, got {self.n_rays}")


@dataclass(frozen=True)
class RimContact:
    """The pinch across the wall in one direction (world frame): both contacts, their normals (each facing its
    finger), the width between them and the angle by which the normals miss being opposite."""

    outer_xyz: np.ndarray
    inner_xyz: np.ndarray
    outer_normal: np.ndarray
    inner_normal: np.ndarray
    width_m: float
    opposition_deg: float


def world_mesh(mesh_obj: trimesh.Trimesh, T_world_obj: Pose) -> trimesh.Trimesh:
    mesh = mesh_obj.copy()
    mesh.apply_transform(T_world_obj.matrix())
    return mesh


def rim_contact(mesh: trimesh.Trimesh, axis_xy: np.ndarray, phi_rad: float, z_tcp: float,
                config: RimGraspConfig, triangles: np.ndarray | None = None) -> RimContact | None:
    """The pinch across the wall at azimuth phi (radial closing direction) with the TCP at height z_tcp, or None
    when either pad meets nothing or the pinch is not a wall."""
    cfg = config
    tris = np.asarray(mesh.triangles) if triangles is None else triangles
    normals = np.asarray(mesh.face_normals)
    d = np.array([math.cos(phi_rad), math.sin(phi_rad), 0.0])
    perp = np.array([-d[1], d[0], 0.0])
    lo, hi = np.asarray(mesh.bounds)
    top = min(z_tcp + cfg.pad_height_m, hi[2] - 1e-4)
    zs = np.linspace(z_tcp - cfg.pad_below_m, top, cfg.n_rays)
    across = np.linspace(-cfg.pad_width_m / 2, cfg.pad_width_m / 2, cfg.n_rays)
    grid = np.array([(a, z) for a in across for z in zs])
    base = np.column_stack([axis_xy[0] + grid[:, 0] * perp[0], axis_xy[1] + grid[:, 0] * perp[1], grid[:, 1]])
    reach = float(np.linalg.norm(hi[:2] - lo[:2])) + 0.05
    # only triangles near the pads' strip can be hit: the rest would cost the vectorised ray test its memory
    cen = tris.mean(axis=1)
    size = np.max(np.linalg.norm(tris - cen[:, None, :], axis=2), axis=1)
    near = (np.abs((cen[:, :2] - axis_xy) @ perp[:2]) <= cfg.pad_width_m / 2 + size) \
        & (cen[:, 2] >= zs[0] - size) & (cen[:, 2] <= zs[-1] + size)
    keep = np.flatnonzero(near)
    if len(keep) == 0:
        return None
    tris, normals = tris[keep], normals[keep]
    # outer pad: from far outside, closing inwards (-d); it stops where the first ray hits
    out_dist, out_idx = ray_hits(base + d * reach, np.tile(-d, (len(base), 1)), tris)
    if not np.any(out_idx >= 0):
        return None
    s_out = reach - float(np.min(out_dist))                  # radial position of the outer pad's touch
    # inner pad: starts a full opening inside the outer touch, closing outwards (+d)
    s_start = s_out - cfg.max_width_m
    in_dist, in_idx = ray_hits(base + d * s_start, np.tile(d, (len(base), 1)), tris)
    if not np.any(in_idx >= 0):
        return None
    s_in = s_start + float(np.min(in_dist))
    width = s_out - s_in
    if not cfg.min_width_m <= width <= cfg.max_wall_m:
        return None
    n_out, p_out = _pad_contact(out_dist, out_idx, base + d * reach, -d, normals, cfg.contact_band_m)
    n_in, p_in = _pad_contact(in_dist, in_idx, base + d * s_start, d, normals, cfg.contact_band_m)
    opposition = math.degrees(math.acos(float(np.clip(-(n_out @ n_in), -1.0, 1.0))))
    return RimContact(p_out, p_in, n_out, n_in, float(width), opposition)


def _pad_contact(dist, idx, origins, direction, normals, band):
    """Mean point and mean normal (turned to face the pad) of the rays that hit within `band` of the touch."""
    hit = idx >= 0
    near = hit & (dist <= float(np.min(dist[hit])) + band)
    n = normals[idx[near]]
    n = n * np.where(n @ direction < 0, 1.0, -1.0)[:, None]   # winding is not always consistent
    n = n.mean(axis=0)
    n /= max(float(np.linalg.norm(n)), 1e-12)
    points = origins[near] + dist[near, None] * direction
    return n, points.mean(axis=0)


def _box_hits(points: np.ndarray, center: np.ndarray, d: np.ndarray, perp: np.ndarray,
              half_d: float, half_p: float, z_lo: float, z_hi: float) -> int:
    rel = points - center
    inside = (np.abs(rel @ d) < half_d) & (np.abs(rel @ perp) < half_p) & (points[:, 2] > z_lo) \
        & (points[:, 2] < z_hi)
    return int(np.count_nonzero(inside))


def fingers_free(surface: np.ndarray, contact: RimContact, tcp_xyz: np.ndarray, d: np.ndarray,
                 config: RimGraspConfig, top_z: float) -> bool:
    """Both open fingers descend to the grasp, and both closed fingers sit on their contacts, without touching
    the object elsewhere (surface samples inside a finger's box)."""
    cfg = config
    perp = np.array([-d[1], d[0], 0.0])
    half_t, half_p = cfg.finger_thickness_m / 2, cfg.pad_width_m / 2 - 1e-3
    z_lo = tcp_xyz[2] - cfg.pad_below_m
    for sign in (1.0, -1.0):
        # open: the pad's face at half the opening, the box swept from above the object down to the fingertips
        open_c = tcp_xyz + sign * d * (cfg.max_width_m / 2 + half_t)
        if _box_hits(surface, open_c, d, perp, half_t, half_p, z_lo, top_z + 0.01):
            return False
    # closed: each pad's face on its contact, the pad's box may only graze the contact band
    s_out = (contact.outer_xyz - tcp_xyz) @ d
    s_in = (contact.inner_xyz - tcp_xyz) @ d
    band = cfg.contact_band_m + 1e-3
    for s, sign in ((s_out, 1.0), (s_in, -1.0)):
        c = tcp_xyz + d * (s + sign * (half_t + band))
        if _box_hits(surface, c, d, perp, half_t, half_p, z_lo, tcp_xyz[2] + cfg.pad_height_m):
            return False
    return True


def rim_grasps(name: str, mesh_obj: trimesh.Trimesh, T_world_obj: Pose, finger_axis_tcp, n_dirs: int = 16,
               config: RimGraspConfig = RimGraspConfig()) -> list[GraspPoint]:
    """Pinch grasps across the object's rim wall in `n_dirs` directions around its axis, best first. mesh_obj is in the
    object frame; T_world_obj places it. The axis is the object's own z (the fitted pose's) where it leans less than
    config.max_tilt_deg from the vertical, else the world's (the default): a bowl resting tilted on a ramekin is
    then pinched along its own axis, the approach down that axis and the pads across its wall; among equally good
    pinches the higher side of its rim first. psi_rad is the closing direction relative to the object's yaw;
    offset_m is 0 (the pinch is on the radial line); approach is 'top'."""
    if n_dirs < 1:
        raise ValueError(f"rim_grasps: n_dirs expected >= 1, got {n_dirs}")
    cfg = config
    R = T_world_obj.rotation()
    yaw = math.atan2(R[1, 0], R[0, 0])
    if R[2, 2] >= math.cos(math.radians(cfg.max_tilt_deg)):
        T_world_u, mesh, psi0 = T_world_obj, mesh_obj, 0.0      # the object's frame: its axis up, phi is psi
    else:
        T_world_u, mesh, psi0 = Pose(), world_mesh(mesh_obj, T_world_obj), yaw   # the world's vertical
    M = T_world_u.matrix()
    lo, hi = np.asarray(mesh.bounds)
    axis_xy = (lo[:2] + hi[:2]) / 2.0       # the bowl's axis from its geometry, not the model's origin
    floor_z = lo[2] + cfg.pad_below_m
    heights = [z for z in (hi[2] - cfg.depth_below_rim_m - extra for extra in (0.0, *cfg.extra_depths_m))
               if z >= floor_z]
    if not heights:
        return []                           # too shallow for the pads below the rim
    tris = np.asarray(mesh.triangles)
    surface, _ = surface_samples(mesh)
    cone_deg = math.degrees(math.atan(cfg.friction_mu))
    out = []
    for k in range(n_dirs):
        phi = 2 * math.pi * k / n_dirs
        d = np.array([math.cos(phi), math.sin(phi), 0.0])
        best = None
        for z_tcp in heights:
            c = rim_contact(mesh, axis_xy, phi, z_tcp, cfg, tris)
            if c is None or c.opposition_deg > cone_deg:
                continue
            s_mid = ((c.outer_xyz + c.inner_xyz) / 2 - np.array([*axis_xy, 0.0])) @ d
            center = np.array([axis_xy[0], axis_xy[1], z_tcp]) + d * s_mid
            if (M @ np.append(center, 1.0))[2] < cfg.min_tcp_z_m or not fingers_free(surface, c, center, d, cfg,
                                                                                       hi[2]):
                continue                    # fingertips on the table, or a finger in the object
            # a pinch the held rule can tell from a shut gripper first (the fingers stop on the wall as wide as
            # it is: an 8 mm wall reads as closed on nothing), then the one whose normals oppose best, then the
            # higher side of a tilted rim (the lower one leans towards what the bowl rests on)
            quality = float(0.6 * (1.0 - c.opposition_deg / cone_deg) + 0.4 * (1.0 - c.width_m / cfg.max_wall_m)
                            + cfg.high_side_weight * (M[2, :3] @ d))
            holds = c.width_m >= cfg.min_hold_width_m
            if best is None or (holds, quality) > (best[0], best[1]):
                best = (holds, quality, c, center)
        if best is None:
            continue
        holds, quality, c, center = best
        tcp = T_world_u @ tcp_pose(center, d, -UP, finger_axis_tcp)
        pre = T_world_u @ Pose(tuple(center + UP * (hi[2] - center[2] + cfg.pregrasp_height_m)), tcp_pose(
            center, d, -UP, finger_axis_tcp).quat_xyzw)
        out.append(GraspPoint(name, tcp, pre, c.width_m, (phi - psi0) % (2 * math.pi), 0.0,
                              quality + (1.0 if holds else 0.0)))
    out.sort(key=lambda g: -g.quality)
    return out
