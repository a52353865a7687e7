"""Physical parameters of named objects: a short probe through the `Robot` that weighs an object and pushes
it, then a fit of its mass and lateral friction in a PyBullet twin. Nothing here reads the lab's truth.

Why the probe identifies both parameters (a stiff position-controlled arm shows neither in the object's final
pose, so the observed motion used here is the arm's measured joint-torque trace, checked by the cameras):

- Mass: squeeze the object once with the hand turned a quarter turn and grasp it (the two squeezes centre it
  under the TCP), lift it a few centimetres and hold still; put it down, open, and hold the very same joints
  empty. The torque difference is the object's weight seen through the arm:
  delta_tau = J_v(q)^T (0, 0, m g) + J_w(q)^T M, solved by weighted least squares over the joints with the
  twin's Jacobian (M: a small moment, with a prior of zero for the centred grasp). The per-joint sensor offset
  cancels in the difference; the twin's gravity model removes what a tiny difference in the joints would add.
- Friction: stand the open fingers around the object, low over the table, and push it a few centimetres with
  the inner pad of one finger at a slow constant speed; look; push it back along the face the camera now sees
  with the other finger; look again. While it slides quasi-statically, the horizontal force the pad applies is
  the table's friction mu * N, where N is the weight plus whatever the pad presses down (the pad's own static
  friction can wedge the block: that force is measured too). The force comes from the torque change between the
  still hold before the push and its steady part, less the change of the arm's own gravity torques (twin model at
  the measured joints), through the Jacobian of the pad's contact point: mu = |F_xy| / (m g - F_z), averaged
  over the pushes under which the camera saw the object go straight (one that turned reads low).
  The twin then replays the same commanded pushes with the fitted mass, and scipy's bounded scalar search finds
  the friction at which the twin's statistic matches the measured one; that absorbs what the quasi-static
  formula ignores, chiefly that PyBullet's friction pyramid resists some sliding directions less than others
  (up to ~6 % at 45 degrees). If the twin's object turns where the real one did not, the formula is kept.
- "friction" is the object's lateral friction coefficient as PyBullet (and the task's `physics.friction`) define
  it: PyBullet multiplies the two bodies' coefficients and the table plane's is 1.0, so the coefficient the twin
  fits is the one the lab set.

The probe leaves the scene as it found it, near enough: if the camera sees the object off where it stood after
the pushes, it is picked up and set down there, turned back within its symmetry; the gripper is left open and the
arm returns to its starting joints. Every motion goes through `Robot.execute` (the robot's safety envelope; an
optional envelope here pre-checks each one so a probe that would be truncated is skipped before it moves). A
failure (unknown or absent object, no torque sensing, a missed grasp, a push that met nothing) is reported as a
miss in the returned `PhysicalEstimate`, never raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pybullet as p
import scipy.linalg
from scipy.optimize import minimize_scalar
from scipy.spatial.transform import Rotation, Slerp

from reconstruction.estimate import SceneEstimate
from reconstruction.models import ObjectModel
from robot_io.envelope import SafetyEnvelope
from robot_io.errors import ConnectionLostError, RobotError, SafetyRejected
from robot_io.observation import JointStateTrace, Observation
from robot_io.robot import ExecuteReport, Robot
from robot_io.trajectory import JointTrajectory
from sim.geometry import Pose
from sim.scene import ObjectSpec, RobotSpec, SceneSpec
from sim.world import TIMESTEP_S, World

log = logging.getLogger(__name__)

GRAVITY_MPS2 = 9.81
GRASP_DEPTH_M = 0.012        # the TCP must be this far below the object's top for the grasp to hold it
IK_TOL_M = 0.002             # an IK knot further than this from its target makes the probe unreachable
MAX_KNOT_JUMP_RAD = 0.5      # a larger joint change between 1 cm knots is an IK branch flip
KNOT_M = 0.01                # IK knots along a straight TCP segment (joints interpolated between them)
KNOT_RAD = 0.1
TURN_SPEED_RAD_S = 0.8       # TCP rotation speed of probe moves
COM_OFFSET_PRIOR_M = 0.01    # the weighing's prior spread of the centre of mass about the TCP
PAD_BELOW_TCP_M = 0.005      # where a pushing finger pad meets the object, below the TCP (panda: 4-7 mm)
FORMULA_MODEL_ERROR = 0.06   # relative error of the quasi-static formula alone (PyBullet's friction pyramid)


class _Miss(Exception):
    """The probe cannot (or could not) identify this object; the message says why."""


@dataclass(frozen=True)
class IdentificationConfig:
    """Probe and fit settings. Speeds in m/s of the TCP; heights in metres; times in seconds."""

    lift_m: float = 0.05                 # the weighing height above the grasp
    weigh_hold_s: float = 1.0            # hold still this long for each weighing ...
    weigh_window_s: float = 0.8          # ... and average the torques of its last part
    grip_s: float = 0.4                  # time given to the fingers to close or open
    approach_clearance_m: float = 0.06   # approach from this far above the object's top
    move_speed_mps: float = 0.25           # free-space moves, high over the table
    near_speed_mps: float = 0.05         # moves next to the object
    push_speed_mps: float = 0.025        # slow: quasi-static sliding
    push_contact_m: float = 0.04         # push travel after the pad meets the object (longer: less torque noise)
    push_hold_s: float = 1.2             # still before the push (the reference torques)
    carry_m: float = 0.02                # lift while carrying the object back
    put_back_tol_m: float = 0.004        # seen further than this (or turned more than put_back_tol_deg) from
    put_back_tol_deg: float = 4.0        # where it stood after the pushes, the object is picked up and put back
    fingertip_clearance_m: float = 0.004  # fingertips this far above the table while pushing
    min_finger_gap_m: float = 0.006      # open fingers must clear the object's sides by this much
    clearance_m: float = 0.02            # other objects must stay this far from the probe's swept area
    friction_bounds: tuple[float, float] = (0.02, 3.0)
    mass_bounds_kg: tuple[float, float] = (0.005, 5.0)
    refine_in_twin: bool = True          # replay the pushes in the twin and fit friction there
    twin_rel_tol: float = 0.01           # friction search tolerance, relative to the first estimate
    twin_max_rel_residual: float = 0.05  # twin statistic further than this from the measured one: keep the formula
    max_turn_deg: float = 2.5            # a push under which the camera saw the object turn more is not used
    min_push_force_n: float = 0.02       # a smaller horizontal force: the pad missed the object
    return_home: bool = True             # bring the arm back to the joints it started from

    def __post_init__(self) -> None:
        for name in ("lift_m", "weigh_hold_s", "weigh_window_s", "grip_s", "approach_clearance_m", "move_speed_mps",
                     "near_speed_mps", "push_speed_mps", "push_contact_m", "push_hold_s", "fingertip_clearance_m",
                     "min_finger_gap_m", "carry_m", "put_back_tol_m", "put_back_tol_deg", "max_turn_deg",
                     "twin_rel_tol", "twin_max_rel_residual", "min_push_force_n"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"IdentificationConfig.{name}: expected a number > 0, got {v!r}")
        if not (isinstance(self.clearance_m, int | float) and self.clearance_m >= 0):
            raise ValueError(f"IdentificationConfig.clearance_m: expected a number >= 0, got {self.clearance_m!r}")
        if self.weigh_window_s > self.weigh_hold_s:
            raise ValueError(f"IdentificationConfig.weigh_window_s ({self.weigh_window_s}) must not exceed "
                             f"weigh_hold_s ({self.weigh_hold_s})")
        for name in ("friction_bounds", "mass_bounds_kg"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not 0 < lo < hi:
                raise ValueError(f"IdentificationConfig.{name}: expected (low, high) with 0 < low < high, "
                                 f"got {getattr(self, name)!r}")
            object.__setattr__(self, name, (lo, hi))


@dataclass(frozen=True)
class PhysicalEstimate:
    """What identification found for one object. mass_kg / friction are None when not identified (a miss).

    mass_std_kg / friction_std: one-sigma uncertainty from the torque noise and the fit residuals.
    mass_residual_nm: RMS joint-torque residual of the weighing fit. friction_residual: |twin - measured| of the
    friction statistic at the fitted value (0 when the twin refinement is off). confidence in [0, 1]:
    1 - (largest relative one-sigma uncertainty) / 0.3, so 0 means +-30 % or worse, and 0 for a miss.
    n_samples: torque samples the fit used. notes: why a value is missing, and what the probe noticed.
    """

    name: str
    mass_kg: float | None = None
    friction: float | None = None
    mass_std_kg: float = math.nan
    friction_std: float = math.nan
    mass_residual_nm: float = math.nan
    friction_residual: float = math.nan
    confidence: float = 0.0
    n_samples: int = 0
    time_s: float = 0.0
    notes: tuple[str, ...] = ()
    details: dict = field(default_factory=dict)

    @property
    def identified(self) -> bool:
        return self.mass_kg is not None and self.friction is not None

    def priors(self) -> dict[str, float]:
        """The identified values as twin physics ({mass_kg, friction}, only those found)."""
        out = {}
        if self.mass_kg is not None:
            out["mass_kg"] = self.mass_kg
        if self.friction is not None:
            out["friction"] = self.friction
        return out

    def to_dict(self) -> dict:
        def num(v):
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        return {"name": self.name, "mass_kg": self.mass_kg, "friction": self.friction,
                "mass_std_kg": num(self.mass_std_kg), "friction_std": num(self.friction_std),
                "mass_residual_nm": num(self.mass_residual_nm), "friction_residual": num(self.friction_residual),
                "confidence": self.confidence, "n_samples": self.n_samples, "time_s": self.time_s,
                "notes": list(self.notes), "details": dict(self.details)}


def merge_priors(priors: dict[str, dict], estimates: dict[str, PhysicalEstimate],
                 min_confidence: float = 0.0) -> dict[str, dict]:
    """The planner's physics priors with every identified mass/friction put in their place (a copy); estimates
    below min_confidence leave the prior as it was."""
    out = {name: dict(v) for name, v in priors.items()}
    for name, est in estimates.items():
        if est.confidence >= min_confidence:
            out.setdefault(name, {}).update(est.priors())
    return out


def identify_objects(robot: Robot, reconstructor, names: Iterable[str], *, observation: Observation | None = None,
                     estimate: SceneEstimate | None = None, config: IdentificationConfig | None = None,
                     envelope: SafetyEnvelope | None = None) -> dict[str, PhysicalEstimate]:
    """Probe each named object in turn and fit its mass and friction; one `PhysicalEstimate` per name.

    reconstructor: a `Reconstructor` (its `models`, `robot` and `update(obs)` are used). observation/estimate:
    the current ones, if the caller has them (else observed here); later objects are re-observed because the
    previous probe moved the arm. envelope: pre-checks every probe motion (default: the robot's own, if it
    exposes one as `robot.envelope`). Misses are reported, never raised.
    """
    cfg = config or IdentificationConfig()
    names = list(dict.fromkeys(names))
    out: dict[str, PhysicalEstimate] = {}
    if not names:
        return out
    envelope = envelope if envelope is not None else getattr(robot, "envelope", None)
    client = p.connect(p.DIRECT)
    try:
        kin = World.from_scene(client, SceneSpec(reconstructor.robot))
        lost: str | None = None
        for name in names:
            t0 = time.perf_counter()
            if lost is not None:
                out[name] = PhysicalEstimate(name, notes=(f"not probed: {lost}",))
                continue
            if name not in reconstructor.models:
                out[name] = PhysicalEstimate(name, notes=(f"'{name}' is not a known object (known: "
                                                          f"{sorted(reconstructor.models)})",))
                continue
            try:
                if observation is None:
                    observation, estimate = robot.observe(), None
                if observation.joint_effort_nm is None:
                    raise _Miss("this robot reports no joint torques (Observation.joint_effort_nm is None); "
                                "nothing to weigh or push with")
                if estimate is None:
                    estimate = reconstructor.update(observation)
                probe = _Probe(robot, reconstructor, kin, cfg, envelope, observation, estimate)
                out[name] = probe.identify(name)
                if probe.moved:       # the next object needs a fresh look at the scene
                    observation, estimate = None, None
            except _Miss as e:
                out[name] = PhysicalEstimate(name, notes=(str(e),))
            except ConnectionLostError as e:
                lost = f"robot connection lost: {e}"
                out[name] = PhysicalEstimate(name, notes=(lost,))
            except (RobotError, ValueError) as e:
                out[name] = PhysicalEstimate(name, notes=(f"probe failed: {type(e).__name__}: {e}",))
            out[name] = dataclasses.replace(out[name], time_s=round(time.perf_counter() - t0, 3))
            est = out[name]
            log.info("identify %s: mass %s kg, friction %s (confidence %.2f, %.1f s)%s", name,
                     _fmt(est.mass_kg), _fmt(est.friction), est.confidence, est.time_s,
                     "" if est.identified else f"; {'; '.join(est.notes)}")
    finally:
        p.disconnect(client)
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


# ---------------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Footprint:
    """An object's extent on the table: centre (x, y), its two horizontal body axes with the extents along
    them, and its lowest / highest z."""

    center_xy: np.ndarray
    axes_xy: tuple[np.ndarray, np.ndarray]
    extents_m: tuple[float, float]
    bottom_z: float
    top_z: float
    center_z: float
    radius_m: float


def _footprint(points_obj: np.ndarray, pose: Pose) -> _Footprint:
    R = pose.rotation()
    pts = np.asarray(points_obj) @ R.T + pose.position
    up = int(np.argmax(np.abs(R[2, :])))
    axes = []
    for k in range(3):
        if k == up:
            continue
        a = np.array([R[0, k], R[1, k]])
        axes.append(a / max(np.linalg.norm(a), 1e-9))
    proj = [pts[:, :2] @ a for a in axes]
    extents = tuple(float(np.ptp(s)) for s in proj)
    mids = [(s.max() + s.min()) / 2 for s in proj]
    center = mids[0] * axes[0] + mids[1] * axes[1]
    radius = float(np.max(np.linalg.norm(pts[:, :2] - center, axis=1)))
    return _Footprint(center, (axes[0], axes[1]), extents, float(pts[:, 2].min()), float(pts[:, 2].max()),
                      float((pts[:, 2].min() + pts[:, 2].max()) / 2), radius)


def _segment_distance(points_xy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points_xy - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points_xy - (a + t[:, None] * ab), axis=1)


def _slerp_pose(a: Pose, b: Pose, s: float) -> Pose:
    rot = Slerp([0.0, 1.0], Rotation.from_quat([a.quat_xyzw, b.quat_xyzw]))([s])
    return Pose(tuple((1 - s) * a.position + s * b.position), tuple(rot.as_quat()[0]))


def _wrap(angle_rad: float) -> float:
    return (angle_rad + math.pi) % (2 * math.pi) - math.pi


def _angle_of(F: np.ndarray) -> float:
    return math.atan2(float(F[1]), float(F[0]))


def _angle_rad(a: Pose, b: Pose) -> float:
    return float((Rotation.from_quat(a.quat_xyzw).inv() * Rotation.from_quat(b.quat_xyzw)).magnitude())


# ---------------------------------------------------------------------------------------------- paths
class _PathBuilder:
    """Joint waypoints one controller period apart, built from straight TCP segments (IK in the kinematic twin)
    and holds; remembers index ranges so torque windows can be found in the trace afterwards."""

    def __init__(self, kin: World, q: np.ndarray, width_m: float, dt_s: float) -> None:
        self.kin, self.dt_s = kin, dt_s
        self.q = np.asarray(q, dtype=float)
        self.pose = kin.fk(self.q)
        self.width_m = float(width_m)
        self.rows: list[np.ndarray] = []
        self.widths: list[float] = []

    def move(self, target: Pose, speed_mps: float) -> tuple[int, int]:
        start = len(self.rows)
        dist = float(np.linalg.norm(target.position - self.pose.position))
        ang = _angle_rad(self.pose, target)
        n_knots = max(1, math.ceil(dist / KNOT_M), math.ceil(ang / KNOT_RAD))
        knots = [self.q]
        q = self.q
        for k in range(1, n_knots + 1):
            goal = _slerp_pose(self.pose, target, k / n_knots)
            q, err = self.kin.ik(goal, q_seed=q)
            if err > IK_TOL_M:
                raise _Miss(f"probe pose {np.round(goal.xyz, 3).tolist()} is out of reach (IK error "
                            f"{err * 1000:.1f} mm)")
            if np.max(np.abs(q - knots[-1])) > MAX_KNOT_JUMP_RAD:
                raise _Miss(f"IK jumps to another arm configuration near {np.round(goal.xyz, 3).tolist()}")
            knots.append(q)
        knots = np.asarray(knots)
        duration = max(dist / speed_mps, ang / TURN_SPEED_RAD_S, self.dt_s)
        n = max(1, math.ceil(duration / self.dt_s))
        s = np.arange(1, n + 1) / n * n_knots
        i = np.minimum(np.floor(s).astype(int), n_knots - 1)
        f = (s - i)[:, None]
        rows = knots[i] * (1 - f) + knots[i + 1] * f
        self.rows.extend(rows)
        self.widths.extend([self.width_m] * n)
        self.q, self.pose = knots[-1], target
        return start, len(self.rows)

    def hold(self, seconds: float, width_m: float | None = None) -> tuple[int, int]:
        start = len(self.rows)
        if width_m is not None:
            self.width_m = float(width_m)
        n = max(1, math.ceil(seconds / self.dt_s))
        self.rows.extend([self.q] * n)
        self.widths.extend([self.width_m] * n)
        return start, len(self.rows)

    def replay(self, rows: np.ndarray) -> tuple[int, int]:
        """Append joint waypoints exactly (e.g. to come back to the very joints of an earlier hold)."""
        start = len(self.rows)
        rows = np.asarray(rows, dtype=float)
        self.rows.extend(rows)
        self.widths.extend([self.width_m] * len(rows))
        self.q = rows[-1]
        self.pose = self.kin.fk(self.q)
        return start, len(self.rows)

    def joint_move(self, q_goal: np.ndarray, max_speed_rad_s: float = 0.5) -> tuple[int, int]:
        q_goal = np.asarray(q_goal, dtype=float)
        n = max(1, math.ceil(float(np.max(np.abs(q_goal - self.q))) / (max_speed_rad_s * self.dt_s)))
        return self.replay(self.q + (q_goal - self.q) * (np.arange(1, n + 1) / n)[:, None])

    def take(self) -> JointTrajectory:
        traj = JointTrajectory(np.asarray(self.rows), np.asarray(self.widths), self.dt_s)
        self.rows, self.widths = [], []
        return traj


@dataclass
class _Run:
    """One executed probe motion: what was sent, where the planned waypoints start in it, and the trace."""

    traj: JointTrajectory
    report: ExecuteReport
    offset: int               # sent waypoint index of the planned waypoint 0 (the envelope may bridge in front)
    steps_per_wp: int
    trace: JointStateTrace | None

    def samples(self, rng: tuple[int, int], skip_fraction: float = 0.0) -> np.ndarray:
        """Trace sample indices of the planned waypoint range [a, b), optionally dropping its first part."""
        a, b = rng
        a = a + int(round(skip_fraction * (b - a)))
        n = 0 if self.trace is None else self.trace.n_samples
        return np.arange(max(0, (self.offset + a) * self.steps_per_wp), min(n, (self.offset + b) * self.steps_per_wp))


# ---------------------------------------------------------------------------------------------- the probe
class _Probe:
    def __init__(self, robot: Robot, reconstructor, kin: World, cfg: IdentificationConfig,
                 envelope: SafetyEnvelope | None, obs: Observation, estimate: SceneEstimate) -> None:
        self.robot, self.reconstructor, self.kin, self.cfg, self.envelope = robot, reconstructor, kin, cfg, envelope
        self.spec: RobotSpec = reconstructor.robot
        self.models: dict[str, ObjectModel] = reconstructor.models
        self.obs, self.estimate = obs, estimate
        self.q0 = np.asarray(obs.joint_pos_rad, dtype=float)
        self.tcp0 = Pose.from_matrix(obs.T_world_tcp)
        self.q = self.q0.copy()
        self.width = float(obs.gripper_width_m)
        self.open_m = self.spec.gripper_max_width_m
        self.dt_s = TIMESTEP_S
        self.notes: list[str] = []
        self.moved = False
        self.place_z: float | None = None   # while the hand holds the object: the TCP height that sets it down

    # -------------------------------------------------------------------- entry
    def identify(self, name: str) -> PhysicalEstimate:
        try:
            return self._identify(name)
        except _Miss as e:
            why = str(e)
        except ConnectionLostError:
            raise
        except RobotError as e:
            why = f"robot refused a probe motion: {e}"
        except Exception as e:  # noqa: BLE001 - a bug in the probe must not end the run; the arm is brought back
            log.exception("identification of '%s' failed", name)
            why = f"internal error: {type(e).__name__}: {e}"
        self._recover()
        return PhysicalEstimate(name, notes=(*self.notes, why))

    def _identify(self, name: str) -> PhysicalEstimate:
        cfg = self.cfg
        obj = self.estimate.objects.get(name)
        if obj is None or not obj.found:
            raise _Miss(f"'{name}' was not found in the current observation")
        model = self.models[name]
        fp = _footprint(model.points, obj.pose)
        plan = self._plan(name, fp)
        self.notes.append(f"push direction {np.round(plan['d'], 3).tolist()}, clearance "
                          f"{plan['clearance_m'] * 100:.1f} cm, finger gap {plan['gap_m'] * 100:.1f} cm")

        # Approach from above with the fingers open around the object. A first squeeze with the hand turned a
        # quarter turn centres it across the jaw; the grasp then centres it along the jaw: its centre of mass is
        # then under the TCP (the weighing needs no grasp moment) and the twin's push replay starts from a pose
        # known to a millimetre, square to the pads.
        b = _PathBuilder(self.kin, self.q, self.width, self.dt_s)
        P = plan["P"]
        c, z_grasp, z_lift = fp.center_xy, plan["z_grasp"], plan["z_lift"]
        b.hold(cfg.grip_s, self.open_m)
        if plan["across"]:
            b.move(P(c, plan["z_above"], across=True), cfg.move_speed_mps)
            b.move(P(c, z_grasp, across=True), cfg.near_speed_mps)
            b.hold(cfg.grip_s, 0.0)
            b.hold(cfg.grip_s, self.open_m)
            b.move(P(c, plan["z_turn"], across=True), cfg.near_speed_mps)
            b.move(P(c, plan["z_turn"]), cfg.near_speed_mps)
        else:
            b.move(P(c, plan["z_above"]), cfg.move_speed_mps)
        b.move(P(c, z_grasp), cfg.near_speed_mps)
        b.hold(cfg.grip_s, 0.0)
        lift = b.move(P(c, z_lift), cfg.near_speed_mps)
        lift_rows = np.asarray(b.rows[lift[0]:lift[1]])
        held = b.hold(cfg.weigh_hold_s)
        self.place_z = z_grasp
        run = self._execute(b)
        width_held = float(run.trace.gripper_width_m[-1])
        jaw = plan["jaw_extent_m"]
        if width_held < 0.5 * jaw or width_held > min(jaw + 0.015, 0.95 * self.open_m):
            raise _Miss(f"grasp failed: the fingers closed to {width_held * 100:.1f} cm on an object "
                        f"{jaw * 100:.1f} cm wide")
        skip = 1.0 - cfg.weigh_window_s / cfg.weigh_hold_s
        w_held = run.samples(held, skip)
        b.replay(lift_rows[::-1])                      # down the same joints
        b.hold(cfg.grip_s, self.open_m)
        b.replay(lift_rows)                            # and up again to the very joints of the held weighing
        empty = b.hold(cfg.weigh_hold_s)
        run_e = self._execute(b)
        self.place_z = None
        w_empty = run_e.samples(empty, skip)
        mass = self._fit_mass(run.trace, w_held, run_e.trace, w_empty, width_held)

        # Friction: push it across the table with one finger's pad and look; push it back along the face the camera
        # now sees with the other finger's pad and look again. A push under which the object turned reads low (and
        # the twin cannot replay it), so only the pushes the camera saw go straight count.
        try:
            pushes = [self._push(name, model, plan, c, plan["yaw"], plan["d"], plan["gap_m"], self._squared_pose(
                obj.pose, fp, plan))]
            first = pushes[0]["seen"]
            if first is not None:
                k = int(np.argmax([abs(float(a @ plan["d"])) for a in first.axes_xy]))
                axis = first.axes_xy[k]
                gap2 = (self.open_m - first.extents_m[k]) / 2
                if gap2 >= cfg.min_finger_gap_m:
                    d2 = -np.sign(float(axis @ plan["d"])) * axis
                    pushes.append(self._push(name, model, plan, first.center_xy, self._yaw_for_axis(axis), d2, gap2,
                                             pushes[0]["seen_pose"]))
            friction = self._fit_friction(name, model, mass, pushes)
        except _Miss as e:
            # the weighing stands; the object may have been left nudged
            self.notes.append(f"friction not identified: {e}")
            self._recover()
            return self._estimate(name, mass, None)
        last = pushes[-1]
        if last["seen"] is not None:
            self._put_back(last["seen"], fp, plan)
        else:
            self.notes.append("not seen after the pushes; left where they put it")
        if cfg.return_home:
            self._go_home()
        return self._estimate(name, mass, friction)

    def _squared_pose(self, pose: Pose, fp: _Footprint, plan: dict) -> Pose:
        """The object's pose after the squeezes: centred under the TCP at the footprint's centre and turned about z
        so that the face axis the jaw closed along lies along the jaw."""
        jaw_axis = plan["orient"].rotation()[:2, 1]
        a = fp.axes_xy[plan["axis_index"]]
        a = a * np.sign(float(a @ jaw_axis))
        turn = Rotation.from_euler("z", math.atan2(jaw_axis[1], jaw_axis[0]) - math.atan2(a[1], a[0]))
        centre = np.array([*fp.center_xy, pose.position[2]])
        xyz = centre + turn.apply(pose.position - centre)
        return Pose(tuple(xyz), tuple((turn * Rotation.from_quat(pose.quat_xyzw)).as_quat()))

    def _push(self, name: str, model: ObjectModel, plan: dict, center: np.ndarray, yaw: float, d: np.ndarray,
              gap: float, pose_before: Pose) -> dict:
        """One push: down between the open fingers at `center`, hold still (the reference torques), slide the
        object push_contact_m along d with the trailing finger's pad, let go, rise, and look where it went."""
        cfg = self.cfg
        orient = self._down(yaw)

        def P(xy: np.ndarray, z: float) -> Pose:
            return Pose((float(xy[0]), float(xy[1]), float(z)), orient.quat_xyzw)

        z_push = plan["z_push"]
        b = _PathBuilder(self.kin, self.q, self.width, self.dt_s)
        b.move(P(center, plan["z_turn"]), cfg.near_speed_mps)
        b.hold(cfg.grip_s, self.open_m)
        b.move(P(center, z_push), cfg.near_speed_mps)
        ref = b.hold(cfg.push_hold_s)
        push = b.move(P(center + d * (gap + cfg.push_contact_m), z_push), cfg.push_speed_mps)
        b.move(P(center + d * cfg.push_contact_m, z_push), cfg.push_speed_mps)    # let go
        b.move(P(center + d * cfg.push_contact_m, plan["z_above"]), cfg.near_speed_mps)
        run = self._execute(b)
        info = self._push_window(run, ref, push, gap, cfg.push_contact_m, d)
        info.update(run=run, ref_wp=ref, pose_before=pose_before, d=d, seen=None, seen_pose=None, turn_deg=None)
        est = self.reconstructor.update(self.robot.observe()).objects.get(name)
        if est is not None and est.found:
            seen = _footprint(model.points, est.pose)
            # how far it turned: the seen face axis nearest the push direction against the push direction
            turns = [math.degrees(_wrap(math.atan2(a[1], a[0]) - math.atan2(d[1], d[0]))) for a in seen.axes_xy]
            turns = [((t + 90.0) % 180.0) - 90.0 for t in turns]
            info.update(seen=seen, seen_pose=est.pose, turn_deg=float(min(turns, key=abs)))
        return info

    def _put_back(self, now: _Footprint, fp: _Footprint, plan: dict) -> None:
        """If the pushes left the object off where it stood, pick it up and set it down there, turned back (within
        its symmetry: the jaw closes along the same face axis as before)."""
        cfg = self.cfg
        if abs(now.top_z - fp.top_z) > 0.01:
            self.notes.append(f"it no longer stands as it did (top {now.top_z * 100:.1f} cm, was "
                              f"{fp.top_z * 100:.1f} cm); left where the pushes put it")
            return
        k = int(np.argmax([abs(float(a @ fp.axes_xy[plan["axis_index"]])) for a in now.axes_xy]))
        a_now, a_was = now.axes_xy[k], fp.axes_xy[plan["axis_index"]]
        turn = _wrap(math.atan2(a_was[1], a_was[0]) - math.atan2(a_now[1], a_now[0]))
        turn = (turn + math.pi / 2) % math.pi - math.pi / 2       # axes have no sign
        off = float(np.linalg.norm(now.center_xy - fp.center_xy))
        self.notes.append(f"after the pushes: {off * 1000:.0f} mm and {math.degrees(turn):.0f} deg from where it "
                          "stood")
        if off < cfg.put_back_tol_m and abs(math.degrees(turn)) < cfg.put_back_tol_deg:
            return
        # of the two hand yaws the symmetric jaw allows, the one that keeps pick and place yaws nearest the default
        pick = self._yaw_for_axis(a_now)
        pick = min((pick, pick - math.copysign(math.pi, pick)), key=lambda y: max(abs(y), abs(y + turn)))
        q_pick, q_place = self._down(pick).quat_xyzw, self._down(pick + turn).quat_xyzw
        z_grasp, z_carry = plan["z_grasp"], plan["z_grasp"] + cfg.carry_m

        def at(xy: np.ndarray, z: float, quat) -> Pose:
            return Pose((float(xy[0]), float(xy[1]), float(z)), quat)

        b = _PathBuilder(self.kin, self.q, self.width, self.dt_s)
        b.move(at(now.center_xy, plan["z_above"], q_pick), cfg.near_speed_mps)
        b.move(at(now.center_xy, z_grasp, q_pick), cfg.near_speed_mps)
        b.hold(cfg.grip_s, 0.0)
        self.place_z = z_grasp
        b.move(at(now.center_xy, z_carry, q_pick), cfg.near_speed_mps)
        b.move(at(fp.center_xy, z_carry, q_place), cfg.near_speed_mps)
        b.move(at(fp.center_xy, z_grasp, q_place), cfg.near_speed_mps)
        b.hold(cfg.grip_s, self.open_m)
        b.move(at(fp.center_xy, plan["z_above"], q_place), cfg.near_speed_mps)
        self._execute(b, need_trace=False)
        self.place_z = None
        self.notes.append("put back where it stood")

    # -------------------------------------------------------------------- planning
    def _down(self, yaw_rad: float) -> Pose:
        return Pose.from_xyz_rpy_deg((0, 0, 0), (0, 0, math.degrees(yaw_rad))) @ self.spec.tcp_down

    def _yaw_for_axis(self, axis_xy: np.ndarray) -> float:
        """The turn of the hand about z that lays its jaw (the hand's y axis) along axis_xy; the jaw being
        symmetric, the one within +-90 degrees of the default, to spare the wrist."""
        hand_y = self.spec.tcp_down.rotation()[:2, 1]
        yaw = math.atan2(axis_xy[1], axis_xy[0]) - math.atan2(hand_y[1], hand_y[0])
        return (yaw + math.pi / 2) % math.pi - math.pi / 2

    def _plan(self, name: str, fp: _Footprint) -> dict:
        """Jaw axis, push direction and heights; the direction whose swept area is clearest of other objects."""
        cfg = self.cfg
        obstacles = self._obstacle_points(name)
        best = None
        for k, axis in enumerate(fp.axes_xy):
            jaw = fp.extents_m[k]
            gap = (self.open_m - jaw) / 2
            if gap < cfg.min_finger_gap_m:
                continue
            yaw = self._yaw_for_axis(axis)
            for sign in (1.0, -1.0):
                d = sign * axis
                end = fp.center_xy + d * (cfg.push_contact_m + gap + self.open_m / 2)
                lo, hi = np.asarray(self.spec.workspace_min_xyz[:2]), np.asarray(self.spec.workspace_max_xyz[:2])
                if np.any(end < lo) or np.any(end > hi):
                    continue
                if len(obstacles):
                    clear = float(np.min(_segment_distance(obstacles, fp.center_xy, end)) - fp.radius_m)
                else:
                    clear = math.inf
                # Among clear directions prefer pushing across the line from the arm's base: the base joint then
                # feels the push with the whole reach as lever, which makes the force the least noisy.
                radial = fp.center_xy - np.asarray(self.spec.base_pose.xyz[:2])
                across = abs(float(d @ np.array([-radial[1], radial[0]]))) / max(float(np.linalg.norm(radial)), 1e-9)
                score = (clear >= cfg.clearance_m, round(across, 1), min(clear, 0.2))
                if best is None or score > best[0]:
                    best = (score, dict(d=d, yaw=yaw, gap_m=gap, jaw_extent_m=jaw, clearance_m=clear, axis_index=k))
        if best is None:
            raise _Miss(f"'{name}' is too wide for the open gripper (extents "
                        f"{[round(e * 100, 1) for e in fp.extents_m]} cm) or every push leaves the workspace")
        plan = best[1]
        if plan["clearance_m"] < cfg.clearance_m:
            raise _Miss(f"no clear push direction: another object is {plan['clearance_m'] * 100:.1f} cm from the "
                        f"probe's swept area (need {cfg.clearance_m * 100:.1f} cm)")
        orient = self._down(plan["yaw"])
        # the quarter-turned hand (within +-90 degrees of the default, the jaw being symmetric) for centring the
        # object across the jaw; only when the object fits the open fingers that way too
        yaw_across = plan["yaw"] - math.copysign(math.pi / 2, plan["yaw"]) if plan["yaw"] else math.pi / 2
        orient_across = self._down(yaw_across)
        k_other = 1 - plan["axis_index"]
        across_ok = (self.open_m - fp.extents_m[k_other]) / 2 >= cfg.min_finger_gap_m
        drop = self._fingertip_drop(orient)
        z_push = fp.bottom_z + drop + cfg.fingertip_clearance_m
        z_grasp = min(max(fp.center_z, z_push), fp.top_z - GRASP_DEPTH_M)
        if z_grasp < z_push - 1e-6:
            raise _Miss(f"'{name}' is too flat to grasp ({(fp.top_z - fp.bottom_z) * 100:.1f} cm tall)")

        def P(xy: np.ndarray, z: float, across: bool = False) -> Pose:
            return Pose((float(xy[0]), float(xy[1]), float(z)), (orient_across if across else orient).quat_xyzw)

        plan.update(P=P, z_push=z_push, z_grasp=z_grasp, z_lift=z_grasp + cfg.lift_m, across=across_ok,
                    z_turn=max(z_grasp + cfg.lift_m, fp.top_z + drop + 0.01),
                    z_above=fp.top_z + cfg.approach_clearance_m, orient=orient)
        return plan

    def _obstacle_points(self, name: str) -> np.ndarray:
        """xy of every other found object's surface and of the unknown clutter's hull vertices."""
        pts = []
        for other, est in self.estimate.objects.items():
            if other != name and est.found and other in self.models:
                R, t = est.pose.rotation(), est.pose.position
                pts.append((self.models[other].points @ R.T + t)[:, :2])
        for u in self.estimate.unknown:
            if u.mesh_vertices is not None:
                R, t = u.pose.rotation(), u.pose.position
                pts.append((np.asarray(u.mesh_vertices) @ R.T + t)[:, :2])
            else:
                pts.append(np.asarray(u.pose.xyz[:2])[None])
        return np.concatenate(pts) if pts else np.zeros((0, 2))

    def _fingertip_drop(self, orient: Pose) -> float:
        """How far the open fingers reach below the TCP with the hand in this orientation (from the twin)."""
        q, _ = self.kin.ik(Pose((0.5, 0.0, 0.3), orient.quat_xyzw), q_seed=self.q)
        with _kinematic(self.kin):
            self.kin.set_joint_pos(q)
            self.kin.set_gripper_width(self.open_m)
            tcp_z = self.kin.tcp_pose().position[2]
            low = min(p.getAABB(self.kin.robot_id, j, physicsClientId=self.kin.client)[0][2]
                      for j in self.kin.finger_idx)
        return float(tcp_z - low)

    # -------------------------------------------------------------------- execution
    def _execute(self, b: _PathBuilder, need_trace: bool = True) -> _Run:
        traj = b.take()
        if self.envelope is not None:
            try:
                _, notes = self.envelope.filter(traj, self.q, self.width)
            except SafetyRejected as e:
                raise _Miss(f"the safety envelope rejects a probe motion: {e}") from e
            cut = [n for n in notes if n.startswith("truncated")]
            if cut:
                raise _Miss(f"the safety envelope would cut a probe motion short: {cut[0]}")
        self.moved = True
        report = self.robot.execute(traj)
        self.q = np.asarray(report.final_joint_pos_rad, dtype=float)
        self.width = float(report.sent.gripper_width_m[-1])
        if not report.completed:
            raise _Miss(f"a probe motion stopped early: {report.stopped_reason}")
        sent = report.sent
        b.q, b.pose, b.width_m = self.q, self.kin.fk(self.q), self.width
        if not need_trace:
            return _Run(traj, report, 0, 1, None)
        offset = sent.n_waypoints - traj.n_waypoints
        if offset < 0 or not np.allclose(sent.joint_pos_rad[offset:], traj.joint_pos_rad, atol=1e-6):
            raise _Miss("the safety envelope changed a probe motion (clamped or resampled it); its torque windows "
                        "cannot be located")
        trace = self.robot.last_trace()
        if trace is None:
            raise _Miss("this robot records no joint-state trace during motions (Robot.last_trace() is None)")
        spw = max(1, math.ceil(sent.dt_s / TIMESTEP_S - 1e-9))
        if trace.n_samples < sent.n_waypoints * spw:
            raise _Miss(f"the joint trace has {trace.n_samples} samples, expected {sent.n_waypoints * spw}")
        return _Run(traj, report, offset, spw, trace)

    def _go_home(self) -> None:
        b = _PathBuilder(self.kin, self.q, self.width, self.dt_s)
        b.move(self.tcp0, self.cfg.move_speed_mps)
        b.joint_move(self.q0)
        self._execute(b, need_trace=False)

    def _recover(self) -> None:
        """After a miss mid-probe: set down what the hand holds, open it, rise clear of the table and go back to
        the start (best effort: a failure here is logged, the miss is what gets reported)."""
        if not self.moved:
            return
        try:
            b = _PathBuilder(self.kin, self.q, self.width, self.dt_s)
            here = self.kin.fk(self.q)
            if self.place_z is not None:
                b.move(Pose((here.xyz[0], here.xyz[1], self.place_z), here.quat_xyzw), self.cfg.near_speed_mps)
            b.hold(self.cfg.grip_s, self.open_m)
            self.place_z = None
            b.move(Pose((here.xyz[0], here.xyz[1], max(here.xyz[2], 0.12)), here.quat_xyzw), self.cfg.near_speed_mps)
            self._execute(b, need_trace=False)
            self._go_home()
        except ConnectionLostError:
            raise
        except (RobotError, _Miss) as e:
            log.warning("could not bring the arm back after a failed probe: %s", e)

    # -------------------------------------------------------------------- fits
    @contextlib.contextmanager
    def _posed(self, q: np.ndarray, width_m: float):
        """The twin's arm at q with the gripper at width_m; yields every movable joint's position, in order."""
        kin = self.kin
        with _kinematic(kin):
            kin.set_joint_pos(q)
            kin.set_gripper_width(width_m)
            yield [s[0] for s in p.getJointStates(kin.robot_id, kin.movable_idx, physicsClientId=kin.client)]

    def _arm_columns(self) -> list[int]:
        """Where the arm joints sit among the movable joints (Jacobian and torque columns)."""
        return [self.kin.movable_idx.index(j) for j in self.kin.arm_idx]

    def _jacobian6(self, q: np.ndarray, width_m: float) -> np.ndarray:
        """(6, dof) Jacobian of the TCP (linear; angular) in the world frame, from the twin's arm model."""
        kin = self.kin
        with self._posed(q, width_m) as pos:
            zeros = [0.0] * len(pos)
            jv, jw = p.calculateJacobian(kin.robot_id, kin.ee_idx, list(self.spec.tcp_offset_xyz), pos, zeros, zeros,
                                         physicsClientId=kin.client)
        cols = self._arm_columns()
        return np.vstack([np.asarray(jv)[:, cols], np.asarray(jw)[:, cols]])

    def _point_jacobian(self, q: np.ndarray, width_m: float, point_world: np.ndarray) -> np.ndarray:
        """(3, dof) linear Jacobian of a point fixed to the hand (given in the world frame at q)."""
        kin = self.kin
        with self._posed(q, width_m) as pos:
            ls = p.getLinkState(kin.robot_id, kin.ee_idx, computeForwardKinematics=True, physicsClientId=kin.client)
            local = (Pose(ls[4], ls[5]).inverse() @ Pose(tuple(point_world))).xyz
            zeros = [0.0] * len(pos)
            jv, _ = p.calculateJacobian(kin.robot_id, kin.ee_idx, list(local), pos, zeros, zeros,
                                        physicsClientId=kin.client)
        return np.asarray(jv)[:, self._arm_columns()]

    def _gravity(self, q: np.ndarray, width_m: float) -> np.ndarray:
        """The twin's gravity torques of the arm itself at q."""
        kin = self.kin
        with self._posed(q, width_m) as pos:
            zeros = [0.0] * len(pos)
            tau = p.calculateInverseDynamics(kin.robot_id, pos, zeros, zeros, physicsClientId=kin.client)
        return np.asarray(tau)[self._arm_columns()]

    def _fit_mass(self, tr_h: JointStateTrace, w_h: np.ndarray, tr_e: JointStateTrace, w_e: np.ndarray,
                  width_held: float) -> dict:
        if len(w_h) < 5 or len(w_e) < 5:
            raise _Miss("too few torque samples to weigh the object")
        q_h, q_e = tr_h.joint_pos_rad[w_h].mean(0), tr_e.joint_pos_rad[w_e].mean(0)
        tau_h, tau_e = tr_h.joint_effort_nm[w_h].mean(0), tr_e.joint_effort_nm[w_e].mean(0)
        # torque sensor noise of one sample, from the spread in the still windows (never below 1 mNm)
        sigma = np.maximum(np.sqrt((tr_h.joint_effort_nm[w_h].var(0) + tr_e.joint_effort_nm[w_e].var(0)) / 2), 1e-3)
        sigma_mean = sigma * np.sqrt(1.0 / len(w_h) + 1.0 / len(w_e))
        dtau = (tau_h - tau_e) - (self._gravity(q_h, width_held) - self._gravity(q_e, self.open_m))
        J = self._jacobian6((q_h + q_e) / 2, width_held)
        # Unknowns: m (the weight, straight down at the TCP) and the moment (Mx, My, Mz) about the TCP. The squeezes
        # put the centre of mass under the TCP, so Mx, My get a prior of zero with the spread of a 1 cm offset (a
        # ridge: free moments would triple the noise on m); Mz (a twist of the held fingers) is left free.
        basis = np.zeros((6, 4))
        basis[2, 0] = GRAVITY_MPS2
        basis[3:, 1:] = np.eye(3)
        A = J.T @ basis
        W = 1.0 / sigma_mean
        Aw, bw = A * W[:, None], dtau * W
        m0 = float(scipy.linalg.lstsq(Aw[:, [0, 3]], bw)[0][0])
        sigma_moment = max(abs(m0), 0.01) * GRAVITY_MPS2 * COM_OFFSET_PRIOR_M
        prior = np.zeros((2, 4))
        prior[0, 1] = prior[1, 2] = 1.0 / sigma_moment
        Ap, bp = np.vstack([Aw, prior]), np.concatenate([bw, np.zeros(2)])
        x, *_ = scipy.linalg.lstsq(Ap, bp)
        resid = dtau - A @ x
        dof = max(1, len(dtau) - 2)
        chi2 = float(np.sum((resid * W) ** 2) / dof)
        cov = np.linalg.pinv(Ap.T @ Ap) * max(1.0, chi2)
        m = float(x[0])
        lo, hi = self.cfg.mass_bounds_kg
        if not lo <= m <= hi:
            raise _Miss(f"weighing gave {m * 1000:.1f} g, outside [{lo * 1000:.0f} g, {hi:.1f} kg]: the object "
                        "slipped or was not held")
        return {"mass_kg": m, "std_kg": float(math.sqrt(max(cov[0, 0], 0.0))),
                "residual_nm": float(np.sqrt(np.mean(resid ** 2))), "n": int(len(w_h) + len(w_e)),
                "moment_nm": np.round(x[1:], 4).tolist(), "held_minus_empty_nm": np.round(dtau, 4).tolist()}

    def _push_force(self, tau: np.ndarray, q: np.ndarray, i_ref: np.ndarray, i_sub: np.ndarray,
                    J: np.ndarray) -> np.ndarray:
        """The force (3,) the pad applies to the object over samples i_sub: the torque change from the still
        reference hold, less the change of the arm's own gravity torques between the two (the twin's model at the
        measured joints: the arm moved a few centimetres and sags a little under the load), mapped through the
        Jacobian of the pad's contact point (a force there and no moment: three unknowns from seven joints, half
        the noise of a free wrench)."""
        q_sub, q_ref = q[i_sub].mean(0), q[i_ref].mean(0)
        dtau = (tau[i_sub].mean(0) - tau[i_ref].mean(0)) - (self._gravity(q_sub, self.open_m)
                                                           - self._gravity(q_ref, self.open_m))
        return scipy.linalg.lstsq(J.T, dtau)[0]

    def _push_window(self, run: _Run, ref: tuple[int, int], push: tuple[int, int], gap: float,
                     contact: float, d: np.ndarray) -> dict:
        """Trace samples of the push's still reference and of its steady part (after the pad has met the object,
        before the end of the travel), the Jacobian there, the sensor noise and the measured force."""
        tr = run.trace
        n = push[1] - push[0]
        travel = gap + contact
        win = (push[0] + int(n * (gap + min(0.01, 0.35 * contact)) / travel),
               push[0] + int(n * (travel - min(0.003, 0.1 * contact)) / travel))
        i_ref, i_win = run.samples(ref, 0.2), run.samples(win)
        if len(i_ref) < 10 or len(i_win) < 10:
            raise _Miss("too few torque samples in the push windows")
        q_win = tr.joint_pos_rad[i_win].mean(0)
        # the trailing pad's contact: half the open jaw behind the TCP, a little below it (measured contacts)
        pad = self.kin.fk(q_win).position - np.array([d[0], d[1], 0.0]) * self.open_m / 2
        pad[2] -= PAD_BELOW_TCP_M
        J = self._point_jacobian(q_win, self.open_m, pad)
        F = self._push_force(tr.joint_effort_nm, tr.joint_pos_rad, i_ref, i_win, J)
        f_xy = float(np.hypot(F[0], F[1]))
        if f_xy < self.cfg.min_push_force_n:
            raise _Miss(f"a push met no resistance ({f_xy * 1000:.0f} mN): the pad missed the object")
        return {"ref": i_ref, "win": i_win, "J": J, "F": F, "sigma": np.maximum(tr.joint_effort_nm[i_ref].std(0), 1e-3)}

    def _fit_friction(self, name: str, model: ObjectModel, mass: dict, pushes: list[dict]) -> dict:
        """Friction from the pushes: each gives the quasi-static statistic |F_xy| / (m g - F_z) over its window;
        the pushes the camera saw go straight are averaged, and the twin replays them to find the friction at
        which its statistic over the same windows is the same."""
        cfg = self.cfg
        m = mass["mass_kg"]
        turns = [p_["turn_deg"] for p_ in pushes]
        straight = [p_ for p_ in pushes if p_["turn_deg"] is None or abs(p_["turn_deg"]) <= cfg.max_turn_deg]
        used = [(p_, p_["win"]) for p_ in straight]
        if not used:
            p_ = min(pushes, key=lambda x: abs(x["turn_deg"]))
            used = [(p_, p_["win"][:len(p_["win"]) // 2])]      # before it had turned much
            self.notes.append(f"the object turned under every push ({[round(t, 1) for t in turns]} deg); friction "
                              "from the first half of the straightest one")
        elif len(used) < len(pushes):
            self.notes.append(f"pushes that turned the object ({[round(t, 1) for t in turns if t is not None]} deg) "
                              "left out")

        def stat(F: np.ndarray, mass_kg: float = m) -> float:
            return float(np.hypot(F[0], F[1]) / max(mass_kg * GRAVITY_MPS2 - F[2], 1e-6))

        lab_F = [self._push_force(p_["run"].trace.joint_effort_nm, p_["run"].trace.joint_pos_rad, p_["ref"], sub,
                                  p_["J"]) for p_, sub in used]
        mu_hat = float(np.mean([stat(F) for F in lab_F]))
        lo_b, hi_b = cfg.friction_bounds
        if not lo_b <= mu_hat <= hi_b:
            raise _Miss(f"the pushes gave a friction of {mu_hat:.3f}, outside {cfg.friction_bounds}")
        # uncertainty of the statistic from the sensor noise (white, per sample) and from the mass
        var = 0.0
        for (p_, sub), F in zip(used, lab_F):
            pinv = np.linalg.pinv(p_["J"].T)
            cov_F = pinv @ np.diag(p_["sigma"] ** 2 * (1.0 / len(sub) + 1.0 / len(p_["ref"]))) @ pinv.T
            N = m * GRAVITY_MPS2 - F[2]
            f_xy = max(float(np.hypot(F[0], F[1])), 1e-9)
            grad = np.array([F[0] / (f_xy * N), F[1] / (f_xy * N), f_xy / N ** 2])
            var += float(grad @ cov_F @ grad) / len(used) ** 2
        dm = max(mass["std_kg"], 1e-4)
        var += ((float(np.mean([stat(F, m + dm) for F in lab_F])) - mu_hat) / dm * mass["std_kg"]) ** 2
        out = {"friction": mu_hat, "formula": mu_hat, "std": math.sqrt(var), "residual": 0.0,
               "n": int(sum(len(sub) + len(p_["ref"]) for p_, sub in used)), "pushes_used": len(used),
               "per_push": [round(stat(F), 4) for F in lab_F],
               "turn_deg": [None if t is None else round(t, 1) for t in turns],
               "push_force_n": [np.round(p_["F"], 4).tolist() for p_ in pushes], "twin_runs": 0}
        if not cfg.refine_in_twin:
            out["std"] = math.hypot(out["std"], FORMULA_MODEL_ERROR * mu_hat)
            return out
        twins = []
        try:
            for p_, sub in used:
                twins.append(_PushTwin(self.spec, name, model, p_["pose_before"], m, p_["run"], p_["ref_wp"][0],
                                       int(sub[-1])))
            cache: dict[float, tuple[float, float]] = {}

            def cost(mu: float) -> float:
                vals, turn = [], 0.0
                for twin, (p_, sub) in zip(twins, used):
                    tau_t, q_t, turned = twin.replay(mu)
                    shift = twin.first_sample
                    vals.append(stat(self._push_force(tau_t, q_t, p_["ref"] - shift, sub - shift, p_["J"])))
                    turn = max(turn, turned)
                cache[mu] = (float(np.mean(vals)), turn)
                return (cache[mu][0] - mu_hat) ** 2

            lo, hi = max(lo_b, 0.8 * mu_hat), min(hi_b, 1.3 * mu_hat)
            res = minimize_scalar(cost, bounds=(lo, hi), method="bounded",
                                  options={"xatol": cfg.twin_rel_tol * mu_hat})
            mu_fit = float(res.x)
            s_fit, turn_fit = cache.get(mu_fit, (math.nan, math.nan))
            resid = abs(s_fit - mu_hat) if math.isfinite(s_fit) else math.inf
            out.update(twin_runs=len(cache) * len(twins), twin_fit=mu_fit, twin_turn_deg=round(turn_fit, 2))
            if resid > cfg.twin_max_rel_residual * mu_hat or turn_fit > 2 * cfg.max_turn_deg:
                why = (f"its statistic stays {resid:.3f} off" if resid > cfg.twin_max_rel_residual * mu_hat
                       else f"its object turned {turn_fit:.1f} deg under the pad")
                self.notes.append(f"the twin could not reproduce the pushes ({why}); friction from the "
                                  "quasi-static formula")
                out["std"] = math.hypot(out["std"], FORMULA_MODEL_ERROR * mu_hat)
                out["residual"] = resid
            else:
                out.update(friction=mu_fit, residual=resid, std=math.hypot(out["std"], abs(mu_fit - mu_hat) / 4))
        finally:
            for twin in twins:
                twin.close()
        return out

    def _estimate(self, name: str, mass: dict, friction: dict | None) -> PhysicalEstimate:
        friction = friction or {}
        rel = [mass["std_kg"] / mass["mass_kg"]]
        if friction:
            rel.append(friction["std"] / friction["friction"])
        details = {**{f"mass_{k}": v for k, v in mass.items() if k != "mass_kg"},
                   **{f"friction_{k}": v for k, v in friction.items() if k != "friction"}}
        return PhysicalEstimate(
            name, mass_kg=round(mass["mass_kg"], 5),
            friction=round(friction["friction"], 4) if friction else None,
            mass_std_kg=mass["std_kg"], friction_std=friction.get("std", math.nan),
            mass_residual_nm=mass["residual_nm"], friction_residual=friction.get("residual", math.nan),
            confidence=float(np.clip(1.0 - max(rel) / 0.3, 0.0, 1.0)),
            n_samples=mass["n"] + friction.get("n", 0), notes=tuple(self.notes), details=details)


@contextlib.contextmanager
def _kinematic(world: World):
    """Restore the twin's arm and finger joints after a kinematic query (no physics runs in between)."""
    idx = list(world.arm_idx) + list(world.finger_idx)
    states = p.getJointStates(world.robot_id, idx, physicsClientId=world.client)
    try:
        yield
    finally:
        for j, s in zip(idx, states):
            p.resetJointState(world.robot_id, j, s[0], s[1], physicsClientId=world.client)


class _PushTwin:
    """One push replayed in a twin: the object at its pose before the push, the arm at the start of the push's
    still hold, the same commanded waypoints as the lab up to the last compared sample."""

    def __init__(self, robot: RobotSpec, name: str, model: ObjectModel, pose: Pose, mass_kg: float, run: _Run,
                 start_wp: int, end_sample: int) -> None:
        self.client = p.connect(p.DIRECT)
        try:
            obj = ObjectSpec(name, pose, urdf=model.urdf, scale=model.scale, rgba=model.rgba, mass_kg=mass_kg,
                             friction=1.0, symmetry=model.symmetry)
            sent = run.report.sent
            start = run.offset + start_wp
            self.world = World.from_scene(self.client, SceneSpec(robot, (obj,), joint_pos_rad=tuple(
                sent.joint_pos_rad[start]), gripper_width_m=float(sent.gripper_width_m[start])))
            self.world.step(int(0.2 / TIMESTEP_S))      # the object settles on the table
            self.body = self.world.body_ids[name]
            stop = min(sent.n_waypoints, end_sample // run.steps_per_wp + 1)
            self.q_path = sent.joint_pos_rad[start:stop]
            self.g_path = sent.gripper_width_m[start:stop]
            self.dt_s = sent.dt_s
            self.first_sample = start * run.steps_per_wp   # lab trace sample of the twin's first step
        except Exception:
            p.disconnect(self.client)
            raise

    def close(self) -> None:
        self.world.close()
        p.disconnect(self.client)

    def replay(self, friction: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Motor torques and joint positions (one row per physics step) of a replay with this friction, and how
        far (degrees) the twin's object turned."""
        w = self.world
        tau: list[np.ndarray] = []
        q: list[np.ndarray] = []
        with w.saved_state():
            p.changeDynamics(self.body, -1, lateralFriction=float(friction), physicsClientId=self.client)
            before = Rotation.from_quat(p.getBasePositionAndOrientation(self.body, physicsClientId=self.client)[1])

            def record() -> None:
                states = p.getJointStates(w.robot_id, w.arm_idx, physicsClientId=self.client)
                tau.append(np.array([s[3] for s in states]))
                q.append(np.array([s[0] for s in states]))

            w.execute_joint_path(self.q_path, self.g_path, self.dt_s, on_step=record, settle_s=0.0)
            after = Rotation.from_quat(p.getBasePositionAndOrientation(self.body, physicsClientId=self.client)[1])
            turned = math.degrees((after * before.inv()).magnitude())
        return np.asarray(tau), np.asarray(q), turned
