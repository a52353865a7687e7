"""Grasp points on an object from its mesh at the twin's estimated pose (after GraspCorrect's grasp candidates).

A grasp closes the fingers along a horizontal direction through a line across the object: rays from both sides
find the outermost surface the fingers meet over the height of the finger pads; the pair is antipodal when
both contact normals lie within a friction cone of the closing direction, and fits when the width plus a
clearance on each side is within the gripper's opening. Closing directions are searched over one period of the
object's symmetry about the vertical (a cube repeats every 90 degrees, a box every 180) and, of the equivalent
yaws, the one nearest the current TCP is taken (the least wrist turn). Offsets across the object are spaced by
its size. A grasp is kept when the arm, posed by IK at the grasp and at its pre-grasp, clears everything but
the object (`sim.reach`).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import pybullet as p
import trimesh

from reconstruction.models import load_geometry
from sim.geometry import Pose
from sim.grasp import GRASP_DEPTH_M
from sim.reach import clearance_at
from sim.symmetry import MeshSymmetry, mesh_symmetry, named_symmetry
from sim.world import World

UP = np.array([0.0, 0.0, 1.0])
# How much farther the twin's fingers reach past the TCP than the real robot's, per robot config. The LIBERO lab's
# Panda is robosuite's: its finger joints sit 52.4 mm past the hand (panda_gripper.xml), pybullet_data's 58.4 mm,
# so the twin's fingertips hang 6 mm below LIBERO's (15.4 against 9.4 mm below the TCP). A grasp low on a flat
# object (TCP at 11 mm: LIBERO's fingertips 1.6 mm above the floor) would put the twin's 4 mm into it and be vetoed
# for a contact the real fingers never make; such a twin lets its fingers pass through the table (the TCP floors,
# `GraspConfig.min_tcp_z_m` and the sampler's, keep the real fingertips above it).
TWIN_FINGERS_LONGER_M = {"panda_libero": 0.006}


@dataclass(frozen=True)
class GraspConfig:
    finger_clearance_m: float = 0.008   # free space wanted between each open finger and the object
    friction_cone_deg: float = 25.0     # contact normals this close to the closing direction are antipodal
    flat_friction_cone_deg: float = 30.0  # the same for a flat object (lower than the usual window), whose short
                                          # scanned sides lean a few degrees (LIBERO's butter: 28 deg face-on)
    wide_friction_cone_deg: float = 35.0  # where no pair is antipodal within those: a rounded bottle (LIBERO's
                                          # salad dressing: 33-39 deg at mid-height; its pads' friction is 2)
    min_width_m: float = 0.004
    pad_height_m: float = 0.018         # the height of the finger pads above the TCP: contacts are sought there
    pad_below_m: float = 0.006          # and below it, down to the fingertips' rounded ends
    pad_width_m: float = 0.018          # the pads' width across the closing direction
    contact_band_m: float = 0.0015      # surface this close to a pad's outermost touch is where the pad presses
    grasp_min_height_m: float = 0.012   # TCP above the object's bottom (fingertips off the table)
    grasp_min_depth_m: float = 0.016    # TCP below the object's top (sim.grasp.GRASP_DEPTH_M plus a margin)
    min_tcp_z_m: float = 0.011          # the Panda's fingertips touch the table at TCP z 8 mm (closest points)
    pregrasp_height_m: float = 0.06     # pre-grasp: this far above the object's top
    n_yaws: int = 6                     # closing directions per symmetry period
    min_free_m: float = 0.003           # the posed arm's clearance to everything but the target
    max_ik_error_m: float = 0.005
    side_standoff_m: float = 0.07       # side approach: pre-grasp this far out from the grasp

    def __post_init__(self) -> None:
        for name in ("finger_clearance_m", "pad_height_m", "pad_below_m", "pregrasp_height_m", "min_free_m",
                     "max_ik_error_m", "contact_band_m"):
            if getattr(self, name) < 0:
                raise ValueError(f"GraspConfig.{name}: expected >= 0")
        if self.pad_width_m <= 0:
            raise ValueError("GraspConfig.pad_width_m: expected > 0")
        if not 0 < self.friction_cone_deg < 90:
            raise ValueError("GraspConfig.friction_cone_deg: expected an angle in (0, 90)")
        if not 0 < self.wide_friction_cone_deg < 90:
            raise ValueError("GraspConfig.wide_friction_cone_deg: expected an angle in (0, 90)")
        if not 0 < self.flat_friction_cone_deg < 90:
            raise ValueError("GraspConfig.flat_friction_cone_deg: expected an angle in (0, 90)")
        if self.n_yaws < 1:
            raise ValueError("GraspConfig.n_yaws: expected >= 1")


@dataclass(frozen=True)
class GraspPoint:
    """One grasp: the TCP pose at the grasp and before it (world), the width between the contacts, where on the
    object it is (psi: closing direction relative to the object's yaw; offset_m: across the object) for the
    narrowing, and a quality in [0, 1] (contact normals, width margin, centredness)."""

    object: str
    tcp: Pose
    pregrasp: Pose
    width_m: float
    psi_rad: float
    offset_m: float
    quality: float
    approach: str = "top"
    clearance_m: float = math.inf


@dataclass(frozen=True)
class ObjectGeometry:
    """An object's collision mesh in the world at the twin's pose, its world pose and its yaw period."""

    name: str
    mesh: trimesh.Trimesh
    T_world_obj: Pose
    yaw_period_rad: float        # symmetry about the vertical, combined with the gripper's half turn
    continuous_yaw: bool         # a solid of revolution standing upright

    @property
    def bounds(self) -> np.ndarray:
        return np.asarray(self.mesh.bounds)

    @property
    def center(self) -> np.ndarray:
        lo, hi = self.bounds
        return (lo + hi) / 2.0

    @property
    def yaw_rad(self) -> float:
        R = self.T_world_obj.rotation()
        return math.atan2(R[1, 0], R[0, 0])

    def support_m(self, direction) -> float:
        """How far the mesh reaches from `center` along a unit direction."""
        return float(np.max(self.mesh.vertices @ np.asarray(direction, dtype=float)) - self.center @ direction)


def fit_twin_fingers(world: World) -> bool:
    """Let the twin's fingers pass through the table where they are longer than the real robot's
    (`TWIN_FINGERS_LONGER_M`); True when it did. Idempotent: call it on every rebuilt or updated twin."""
    if TWIN_FINGERS_LONGER_M.get(world.spec.robot.name, 0.0) <= 0.0:
        return False
    for link in world.finger_idx:
        p.setCollisionFilterPair(world.robot_id, world.table_id, link, -1, 0, physicsClientId=world.client)
    return True


@functools.lru_cache(maxsize=32)
def _inferred_symmetry(urdf: str, scale: float) -> MeshSymmetry:
    return mesh_symmetry(load_geometry(urdf, scale).mesh)


def _symmetry(spec) -> tuple[list[np.ndarray], list[np.ndarray]]:
    kind = getattr(spec, "symmetry", "none")
    sym = _inferred_symmetry(spec.urdf, spec.scale) if kind == "auto" else named_symmetry(kind or "none")
    return list(sym.rotations), list(sym.axes)


def object_geometry(world: World, name: str) -> ObjectGeometry:
    """The named object's collision mesh posed where the twin has it, and its symmetry about the vertical."""
    spec = next(o for o in world.spec.objects if o.name == name)
    geom = load_geometry(spec.urdf, spec.scale)
    T = world.object_pose(name)
    mesh = geom.support_mesh.copy()
    mesh.apply_transform(T.matrix())
    R = T.rotation()
    rotations, axes = _symmetry(spec)
    continuous = any(abs((R @ a) @ UP) > 0.99 for a in axes)
    period = math.pi
    for g in rotations:
        M = R @ g @ R.T
        if M[2, 2] > 0.99:   # a turn about the vertical maps the object onto itself
            a = math.atan2(M[1, 0], M[0, 0]) % math.pi
            if 1e-3 < a < period - 1e-3:
                period = a
    return ObjectGeometry(name, mesh, T, period, continuous)


def surface_samples(mesh: trimesh.Trimesh, spacing_m: float = 0.0015, max_points: int = 20000
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Points spread over the mesh surface about `spacing_m` apart (a fixed seed: the same grasps every time)
    with their faces' normals."""
    n = int(np.clip(mesh.area / spacing_m ** 2, 500, max_points))
    points, faces = trimesh.sample.sample_surface(mesh, n, seed=0)
    return np.asarray(points), np.asarray(mesh.face_normals)[faces]


def ray_hits(origins: np.ndarray, dirs: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit of each ray on the triangles (Moller-Trumbore, vectorised): (distance, triangle index); a ray
    that hits nothing has distance inf and index -1."""
    v0, v1, v2 = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    e1, e2 = v1 - v0, v2 - v0
    pvec = np.cross(dirs[:, None, :], e2[None])                     # (R, T, 3)
    det = np.einsum("tk,rtk->rt", e1, pvec)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    tvec = origins[:, None, :] - v0[None]
    u = np.einsum("rtk,rtk->rt", tvec, pvec) * inv
    qvec = np.cross(tvec, e1[None])
    v = np.einsum("rk,rtk->rt", dirs, qvec) * inv
    t = np.einsum("tk,rtk->rt", e2, qvec) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-9)
    t = np.where(hit, t, np.inf)
    idx = np.argmin(t, axis=1)
    dist = t[np.arange(len(t)), idx]
    return dist, np.where(np.isfinite(dist), idx, -1)


def tcp_pose(center, closing_dir, approach_dir, finger_axis_tcp) -> Pose:
    """The TCP pose at `center` whose z axis points along the approach and whose finger axis along closing_dir."""
    a = np.asarray(approach_dir, float) / np.linalg.norm(approach_dir)
    d = np.asarray(closing_dir, float)
    d = d - (d @ a) * a
    d /= np.linalg.norm(d)
    f = np.asarray(finger_axis_tcp, float)
    z = np.array([0.0, 0.0, 1.0])
    f = f - (f @ z) * z
    f /= np.linalg.norm(f)
    B_tcp = np.column_stack([f, z, np.cross(f, z)])
    B_world = np.column_stack([d, a, np.cross(d, a)])
    T = np.eye(4)
    T[:3, :3] = B_world @ B_tcp.T
    T[:3, 3] = center
    return Pose.from_matrix(T)


def _rotation_angle(R: np.ndarray) -> float:
    return float(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)))


class GraspFinder:
    """Antipodal grasps on one object in one twin world."""

    def __init__(self, world: World, name: str, config: GraspConfig, finger_axis_tcp: np.ndarray,
                 max_width_m: float) -> None:
        self.world = world
        self.config = config
        self.geo = object_geometry(world, name)
        self.finger_axis = np.asarray(finger_axis_tcp, float)
        self.max_width_m = max_width_m
        lo, hi = self.geo.bounds
        low = max(lo[2] + config.grasp_min_height_m, config.min_tcp_z_m)
        high = hi[2] - config.grasp_min_depth_m
        if low > high:
            # a flat object (a cream cheese box lying down, 18-19 mm): the TCP as low as the fingertips allow and
            # no lower than its middle; high enough below its top for the held-object rule, which measures that
            # top on the twin's own bounding box (`World._update_grasp`), so the same box decides it here
            low = max(lo[2] + 0.5 * (hi[2] - lo[2]), config.min_tcp_z_m)
            high = float(world.object_aabb(name)[1][2]) - GRASP_DEPTH_M - 0.0005
        self.flat = lo[2] + config.grasp_min_height_m + config.grasp_min_depth_m > hi[2]
        self.z_grasp = float(np.clip(lo[2] + 0.5 * (hi[2] - lo[2]), low, max(low, high)))
        self.shallow = low > high
        self.cone_deg = config.flat_friction_cone_deg if self.flat else config.friction_cone_deg
        self.tris = np.asarray(self.geo.mesh.triangles)
        self.face_normals = np.asarray(self.geo.mesh.face_normals)
        self.surface, self.surface_normals = surface_samples(self.geo.mesh)
        # PyBullet reports a body's position at its centre of mass (the URDF's inertial origin): a long object
        # (a 15 cm ketchup bottle) held far from it swings down in a two-pad grip
        self.com = np.asarray(p.getBasePositionAndOrientation(world.body_ids[name], physicsClientId=world.client)[0])
        self.reach_m = float(np.linalg.norm(hi - lo)) + 0.05
        self.n_antipodal = 0   # antipodal grasps the last free_grasps found before the reach checks
        self._rim: list[GraspPoint] | None = None   # pinches across a rim wall, found once (rim_grasps)

    def shifted(self, offset_xyz) -> GraspFinder:
        """The same finder for the object moved by offset_xyz (where a push is predicted to leave it)."""
        offset = np.asarray(offset_xyz, dtype=float)
        other = copy.copy(self)
        mesh = self.geo.mesh.copy()
        mesh.apply_translation(offset)
        T = Pose(tuple(self.geo.T_world_obj.position + offset), self.geo.T_world_obj.quat_xyzw)
        other.geo = replace(self.geo, mesh=mesh, T_world_obj=T)
        other.tris = np.asarray(mesh.triangles)
        other.face_normals = np.asarray(mesh.face_normals)
        other.surface = self.surface + offset
        other.com = self.com + offset
        other._rim = None   # found again on the moved mesh
        return other

    def _span(self, perp: np.ndarray) -> float:
        return max(0.0, min(self.geo.support_m(perp), self.geo.support_m(-perp)) - 0.01)

    def spacing_m(self, psi_world: float) -> tuple[float, float]:
        """(half span of usable offsets, spacing) across the object for this closing direction."""
        perp = np.array([-math.sin(psi_world), math.cos(psi_world), 0.0])
        span = self._span(perp)
        return span, float(np.clip((span + 0.01) / 2.0, 0.008, 0.03))

    def contact(self, psi_world: float, offset_m: float) -> GraspPoint | None:
        """The antipodal pair across the object along closing direction psi (world yaw) through the line offset
        by offset_m across it at the grasp height, or None when it is not antipodal or too wide."""
        cfg = self.config
        if self.shallow:
            return None
        d = np.array([math.cos(psi_world), math.sin(psi_world), 0.0])
        perp = np.array([-d[1], d[0], 0.0])
        c = self.geo.center.copy()
        c[2] = self.z_grasp
        c = c + perp * offset_m
        # the surface the pads can meet: within the pads' width across, between fingertip and pad top in height
        rel = self.surface - c
        window = (np.abs(rel @ perp) <= cfg.pad_width_m / 2) & (rel[:, 2] >= -cfg.pad_below_m) \
            & (rel[:, 2] <= cfg.pad_height_m)
        if np.count_nonzero(window) < 4:
            return None   # the line at grasp height misses the object
        s = rel[window] @ d
        normals = self.surface_normals[window]
        s_plus, s_minus = float(s.max()), float(s.min())
        width = s_plus - s_minus
        if not cfg.min_width_m <= width <= self.max_width_m - 2 * cfg.finger_clearance_m:
            return None
        # a flat pad closing along d presses where the surface is outermost; there the surface must face the pad
        # (within the friction cone), or the object squeezes out. Winding is not always consistent: a normal
        # counts by its line, not its sign.
        c_plus = float(np.mean(np.abs(normals[s >= s_plus - cfg.contact_band_m] @ d)))
        c_minus = float(np.mean(np.abs(normals[s <= s_minus + cfg.contact_band_m] @ d)))
        cos_cone = math.cos(math.radians(self.cone_deg))
        if c_plus < cos_cone or c_minus < cos_cone:
            return None
        center = c + d * (s_plus + s_minus) / 2.0
        span = self._span(perp)
        # centred on the centre of mass across the object (the grip's lever arm), not on its bounding box
        centred = 1.0 - min(1.0, abs(float((c - self.com) @ perp)) / max(0.5 * span, 1e-3))
        margin = (self.max_width_m - 2 * cfg.finger_clearance_m - width) / self.max_width_m
        quality = float(0.4 * (c_plus + c_minus) / 2 + 0.3 * centred + 0.3 * min(1.0, 8 * margin))
        psi_obj = (psi_world - self.geo.yaw_rad) % self.geo.yaw_period_rad
        tcp = tcp_pose(center, d, -UP, self.finger_axis)
        pre = Pose(tuple(center + UP * (self.geo.bounds[1][2] - center[2] + cfg.pregrasp_height_m)), tcp.quat_xyzw)
        return GraspPoint(self.geo.name, tcp, pre, width, psi_obj, offset_m, quality)

    def nearest_equivalent(self, g: GraspPoint, tcp_now: Pose) -> GraspPoint:
        """Of the grasps the object's symmetry (and the gripper's half turn) make equal to g, the one whose TCP
        turns least from tcp_now."""
        axis_point = self.geo.T_world_obj.position
        period = self.geo.yaw_period_rad
        n = max(1, int(round(2 * math.pi / period)))
        R_now = tcp_now.rotation()
        R_g = g.tcp.rotation()
        best, best_angle = None, math.inf
        for k in range(n):
            for flip in (0.0, math.pi):
                Rz = _rot_z(k * period)
                R = Rz @ R_g @ _rot_z(flip)   # the half turn of the gripper about its own approach axis
                ang = _rotation_angle(R_now.T @ R)
                if ang < best_angle - 1e-6:
                    best, best_angle = (Rz, R), ang
        Rz, R = best
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = axis_point + Rz @ (g.tcp.position - axis_point)
        tcp = Pose.from_matrix(T)
        pre = Pose(tuple(tcp.position + (g.pregrasp.position - g.tcp.position)), tcp.quat_xyzw)
        return replace(g, tcp=tcp, pregrasp=pre)

    def search(self, tcp_now: Pose, focus: tuple[float, float, float] | None = None) -> list[GraspPoint]:
        """Antipodal top-down grasps over one symmetry period, best first; with focus (psi_obj, offset_m, spread
        in (0, 1]), only directions and offsets within `spread` of that earlier choice (the narrowing)."""
        cfg = self.config
        period = self.geo.yaw_period_rad
        yaw0 = self.geo.yaw_rad
        if focus is not None:
            psi_f, off_f, spread = focus
            dpsi = 0.5 * period / cfg.n_yaws * spread * 2
            psis = [yaw0 + psi_f + k * dpsi for k in (-1.0, -0.5, 0.0, 0.5, 1.0)]
        elif self.geo.continuous_yaw:
            R = tcp_now.rotation()
            f = R @ self.finger_axis
            base = math.atan2(f[1], f[0])
            psis = [base + k * period / (2 * cfg.n_yaws) for k in (-1, 0, 1)]
        else:   # a flat object is cheap to search and has few good sides: twice the directions
            n = 2 * cfg.n_yaws if self.flat else cfg.n_yaws
            psis = [yaw0 + period * k / n for k in range(n)]
        out = []
        for psi in psis:
            span, step = self.spacing_m(psi)
            if focus is not None:
                offs = [off_f + k * step * focus[2] for k in (-1.0, -0.5, 0.0, 0.5, 1.0)]
                offs = [o for o in offs if abs(o) <= span + 1e-9] or [0.0]
            else:   # across the object at its spacing, and through its centre of mass
                n = int(span // step)
                com_off = float((self.com - self.geo.center) @ np.array([-math.sin(psi), math.cos(psi), 0.0]))
                offs = [k * step for k in range(-n, n + 1)]
                for k in (-2, -1, 0, 1, 2):   # every centimetre near it: a bottle's body may start 1-2 cm off
                    o = com_off + 0.01 * k
                    if abs(o) <= span and min(abs(o - x) for x in offs) > 0.004:
                        offs.append(o)
            for off in offs:
                g = self.contact(psi, off)
                if g is not None:
                    out.append(g)
        if not out and focus is None and self.cone_deg < cfg.wide_friction_cone_deg:
            narrow, self.cone_deg = self.cone_deg, cfg.wide_friction_cone_deg
            try:   # nothing antipodal: a wider cone before pushing it about or giving up
                out = self.search(tcp_now)
            finally:
                self.cone_deg = narrow
        out.sort(key=lambda g: -g.quality)
        return out

    def free(self, g: GraspPoint, q_seed=None) -> GraspPoint | None:
        """g with its clearance when the arm at the grasp and at the pre-grasp clears all but the object."""
        cfg = self.config
        ignore = (self.geo.name, "table")
        c1, e1, q = clearance_at(self.world, g.pregrasp, ignore, q_seed)
        if e1 > cfg.max_ik_error_m or c1 < cfg.min_free_m:
            return None
        c2, e2, _ = clearance_at(self.world, g.tcp, ignore, q)
        if e2 > cfg.max_ik_error_m or c2 < cfg.min_free_m:
            return None
        return replace(g, clearance_m=min(c1, c2))

    def side_grasps(self, tcp_now: Pose, n_dirs: int = 8) -> list[GraspPoint]:
        """Horizontal approaches (fingers closing horizontally, across the approach) where the top is blocked."""
        cfg = self.config
        out = []
        for k in range(n_dirs):
            psi = self.geo.yaw_rad + 2 * math.pi * k / n_dirs
            g = self.contact(psi, 0.0)
            if g is None:
                continue
            d = np.array([math.cos(psi), math.sin(psi), 0.0])
            approach = np.cross(UP, d)   # horizontal, across the closing direction
            tcp = tcp_pose(g.tcp.position, d, approach, self.finger_axis)
            pre = Pose(tuple(g.tcp.position - approach * cfg.side_standoff_m), tcp.quat_xyzw)
            out.append(replace(g, tcp=tcp, pregrasp=pre, approach="side", quality=0.8 * g.quality))
        return out

    def rim(self) -> list[GraspPoint]:
        """Pinches across the object's rim wall (a bowl wider than the opening), in the world, best first."""
        if self._rim is None:
            from planner.rim_grasps import RimGraspConfig, rim_grasps  # here: rim_grasps imports this module
            cfg = self.config
            rim_cfg = RimGraspConfig(max_width_m=self.max_width_m, pad_width_m=cfg.pad_width_m,
                                     pad_height_m=cfg.pad_height_m, pad_below_m=cfg.pad_below_m,
                                     depth_below_rim_m=cfg.grasp_min_depth_m, min_tcp_z_m=cfg.min_tcp_z_m,
                                     pregrasp_height_m=cfg.pregrasp_height_m, friction_mu=1.0)
            # geo.mesh is posed in the world; rim_grasps takes it in the object's frame, to pinch along its axis
            mesh_obj = self.geo.mesh.copy()
            mesh_obj.apply_transform(np.linalg.inv(self.geo.T_world_obj.matrix()))
            self._rim = rim_grasps(self.geo.name, mesh_obj, self.geo.T_world_obj, self.finger_axis, config=rim_cfg)
        return self._rim

    def free_grasps(self, tcp_now: Pose, limit: int, focus=None, q_seed=None) -> list[GraspPoint]:
        """Up to `limit` free grasps, spread over the object: top-down first; where none is antipodal (a bowl wider
        than the opening), pinches across its rim wall; side approaches where neither is."""
        found = self.search(tcp_now, focus)
        if not found and self.rim():
            found = self.rim()
            if focus is not None:   # the narrowing: rim pinches near the earlier direction
                found = [g for g in found if _angle_close(g.psi_rad, focus[0], max(0.2, math.pi * focus[2]),
                                                          2 * math.pi)] or found
            self.n_antipodal = len(found)
            # no nearest_equivalent: it turns about the model origin, which is off a bowl's axis
            return [f for f in (self.free(g, q_seed) for g in found) if f is not None][:limit]
        self.n_antipodal = len(found)
        out = self._first_free(found, limit, q_seed, tcp_now)
        if not out and focus is None:
            out = self._first_free(self.side_grasps(tcp_now), limit, q_seed, None)
        return out

    def _first_free(self, found: list[GraspPoint], limit: int, q_seed, tcp_now: Pose | None) -> list[GraspPoint]:
        out: list[GraspPoint] = []
        for g in found:
            # object-aware spacing: skip a grasp too like one already kept
            if any(abs(g.offset_m - h.offset_m) < 0.004 and _angle_close(g.psi_rad, h.psi_rad, 0.2,
                                                                        self.geo.yaw_period_rad) for h in out):
                continue
            if tcp_now is not None:
                g = self.nearest_equivalent(g, tcp_now)
            free = self.free(g, q_seed)
            if free is not None:
                out.append(free)
            if len(out) >= limit:
                break
        return out


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _angle_close(a: float, b: float, tol: float, period: float) -> bool:
    d = (a - b) % period
    return min(d, period - d) < tol
