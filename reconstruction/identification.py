"""Physical parameters of named objects from the recorded traces of a probe: the fit of an object's mass and
lateral friction. Pure estimation: the probe motions that record the traces are the planner's
(`planner.probe`, through `Robot`); the kinematics come from the twin (`sim.World`). Nothing here reads the lab's
truth or moves the arm.

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
  The twin then replays the same commanded pushes with the fitted mass (`reconstruction.push_replay`), and
  scipy's bounded scalar search finds the friction at which the twin's statistic matches the measured one; that
  absorbs what the quasi-static formula ignores, chiefly that PyBullet's friction pyramid resists some sliding
  directions less than others (up to ~6 % at 45 degrees). If the twin's object turns where the real one did
  not, the formula is kept.
- "friction" is the object's lateral friction coefficient as PyBullet (and the task's `physics.friction`) define
  it: PyBullet multiplies the two bodies' coefficients and the table plane's is 1.0, so the coefficient the twin
  fits is the one the lab set.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy.optimize import minimize_scalar

from reconstruction.models import ObjectModel
from reconstruction.push_replay import PushTwin
from robot_io.observation import JointStateTrace
from robot_io.robot import ExecuteReport
from robot_io.trajectory import JointTrajectory
from sim.scene import RobotSpec
from sim.world import World

GRAVITY_MPS2 = 9.81
COM_OFFSET_PRIOR_M = 0.01    # the weighing's prior spread of the centre of mass about the TCP
PAD_BELOW_TCP_M = 0.005      # where a pushing finger pad meets the object, below the TCP (panda: 4-7 mm)
FORMULA_MODEL_ERROR = 0.06   # relative error of the quasi-static formula alone (PyBullet's friction pyramid)


class IdentificationMiss(Exception):
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

    def to_dict(self) -> dict:
        def num(v):
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        return {"name": self.name, "mass_kg": self.mass_kg, "friction": self.friction,
                "mass_std_kg": num(self.mass_std_kg), "friction_std": num(self.friction_std),
                "mass_residual_nm": num(self.mass_residual_nm), "friction_residual": num(self.friction_residual),
                "confidence": self.confidence, "n_samples": self.n_samples, "time_s": self.time_s,
                "notes": list(self.notes), "details": dict(self.details)}


def with_identified_physics(models: dict[str, ObjectModel], estimates: dict[str, PhysicalEstimate],
                            min_confidence: float = 0.0) -> dict[str, ObjectModel]:
    """The twin's object models with every identified mass/friction put in place (a new dict); estimates below
    min_confidence, and misses, leave a model as it was."""
    out = dict(models)
    for name, est in estimates.items():
        if name in out and est.confidence >= min_confidence:
            out[name] = out[name].with_physics(est.mass_kg, est.friction)
    return out


@dataclass
class RecordedMotion:
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


class PhysicsFit:
    """The fits of one object's probe: mass from the weighing, friction from the pushes, on recorded traces.

    kin: a kinematics twin of the robot (Jacobians, gravity torques). notes: remarks are appended here (shared
    with the probe that recorded the traces).
    """

    def __init__(self, kin: World, robot: RobotSpec, cfg: IdentificationConfig, notes: list[str]) -> None:
        self.kin, self.spec, self.cfg, self.notes = kin, robot, cfg, notes
        self.open_m = robot.gripper_max_width_m

    def fit_mass(self, tr_h: JointStateTrace, w_h: np.ndarray, tr_e: JointStateTrace, w_e: np.ndarray,
                  width_held: float) -> dict:
        if len(w_h) < 5 or len(w_e) < 5:
            raise IdentificationMiss("too few torque samples to weigh the object")
        q_h, q_e = tr_h.joint_pos_rad[w_h].mean(0), tr_e.joint_pos_rad[w_e].mean(0)
        tau_h, tau_e = tr_h.joint_effort_nm[w_h].mean(0), tr_e.joint_effort_nm[w_e].mean(0)
        # torque sensor noise of one sample, from the spread in the still windows (never below 1 mNm)
        sigma = np.maximum(np.sqrt((tr_h.joint_effort_nm[w_h].var(0) + tr_e.joint_effort_nm[w_e].var(0)) / 2), 1e-3)
        sigma_mean = sigma * np.sqrt(1.0 / len(w_h) + 1.0 / len(w_e))
        gravity = self.kin.gravity_torques
        dtau = (tau_h - tau_e) - (gravity(q_h, width_held) - gravity(q_e, self.open_m))
        J = self.kin.tcp_jacobian((q_h + q_e) / 2, width_held)
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
            raise IdentificationMiss(f"weighing gave {m * 1000:.1f} g, outside [{lo * 1000:.0f} g, {hi:.1f} kg]: "
                                     "the object slipped or was not held")
        return {"mass_kg": m, "std_kg": float(math.sqrt(max(cov[0, 0], 0.0))),
                "residual_nm": float(np.sqrt(np.mean(resid ** 2))), "n": int(len(w_h) + len(w_e)),
                "moment_nm": np.round(x[1:], 4).tolist(), "held_minus_empty_nm": np.round(dtau, 4).tolist()}

    def push_force(self, tau: np.ndarray, q: np.ndarray, i_ref: np.ndarray, i_sub: np.ndarray,
                    J: np.ndarray) -> np.ndarray:
        """The force (3,) the pad applies to the object over samples i_sub: the torque change from the still
        reference hold, less the change of the arm's own gravity torques between the two (the twin's model at the
        measured joints: the arm moved a few centimetres and sags a little under the load), mapped through the
        Jacobian of the pad's contact point (a force there and no moment: three unknowns from seven joints, half
        the noise of a free wrench)."""
        q_sub, q_ref = q[i_sub].mean(0), q[i_ref].mean(0)
        dtau = (tau[i_sub].mean(0) - tau[i_ref].mean(0)) - (self.kin.gravity_torques(q_sub, self.open_m)
                                                           - self.kin.gravity_torques(q_ref, self.open_m))
        return scipy.linalg.lstsq(J.T, dtau)[0]

    def push_window(self, run: RecordedMotion, ref: tuple[int, int], push: tuple[int, int], gap: float,
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
            raise IdentificationMiss("too few torque samples in the push windows")
        q_win = tr.joint_pos_rad[i_win].mean(0)
        # the trailing pad's contact: half the open jaw behind the TCP, a little below it (measured contacts)
        pad = self.kin.fk(q_win).position - np.array([d[0], d[1], 0.0]) * self.open_m / 2
        pad[2] -= PAD_BELOW_TCP_M
        J = self.kin.point_jacobian(q_win, self.open_m, pad)
        F = self.push_force(tr.joint_effort_nm, tr.joint_pos_rad, i_ref, i_win, J)
        f_xy = float(np.hypot(F[0], F[1]))
        if f_xy < self.cfg.min_push_force_n:
            raise IdentificationMiss(f"a push met no resistance ({f_xy * 1000:.0f} mN): the pad missed the object")
        return {"ref": i_ref, "win": i_win, "J": J, "F": F, "sigma": np.maximum(tr.joint_effort_nm[i_ref].std(0), 1e-3)}

    def fit_friction(self, model: ObjectModel, mass: dict, pushes: list[dict]) -> dict:
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

        lab_F = [self.push_force(p_["run"].trace.joint_effort_nm, p_["run"].trace.joint_pos_rad, p_["ref"], sub,
                                  p_["J"]) for p_, sub in used]
        mu_hat = float(np.mean([stat(F) for F in lab_F]))
        lo_b, hi_b = cfg.friction_bounds
        if not lo_b <= mu_hat <= hi_b:
            raise IdentificationMiss(f"the pushes gave a friction of {mu_hat:.3f}, outside {cfg.friction_bounds}")
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
        with contextlib.ExitStack() as stack:
            twins = [stack.enter_context(PushTwin(self.spec, model, p_["pose_before"], m, p_["run"].report.sent,
                                                  p_["run"].offset + p_["ref_wp"][0], p_["run"].steps_per_wp,
                                                  int(sub[-1])))
                     for p_, sub in used]
            cache: dict[float, tuple[float, float]] = {}

            def cost(mu: float) -> float:
                vals, turn = [], 0.0
                for twin, (p_, sub) in zip(twins, used):
                    tau_t, q_t, turned = twin.replay(mu)
                    shift = twin.first_sample
                    vals.append(stat(self.push_force(tau_t, q_t, p_["ref"] - shift, sub - shift, p_["J"])))
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
        return out

    def estimate(self, name: str, mass: dict, friction: dict | None) -> PhysicalEstimate:
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
