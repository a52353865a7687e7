"""The identification probe: motions through `Robot` that weigh a named object and push it (and put it back),
recorded as joint-torque traces; the fits of its mass and friction on those traces are reconstruction's
(`reconstruction.identification`, which explains the method).

The probe leaves the scene as it found it, near enough: if the camera sees the object off where it stood after
the pushes, it is picked up and set down there, turned back within its symmetry; the gripper is left open and the
arm returns to its starting joints. Every motion goes through `Robot.execute(..., exact=True)`: the robot's safety
envelope judges it once, and a motion it would clamp, resample or cut short is refused before it moves (its
torque windows could not be found in the trace). A failure (unknown or absent object, no torque sensing, a missed
grasp, a push that met nothing) is reported as a miss in the returned `PhysicalEstimate`, never raised.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterable

import numpy as np
from scipy.spatial.transform import Rotation

from planner.probe_paths import Footprint, PathBuilder, footprint, segment_distance, wrap
from reconstruction.estimate import SceneEstimate
from reconstruction.identification import (
    IdentificationConfig,
    IdentificationMiss,
    PhysicalEstimate,
    PhysicsFit,
    RecordedMotion,
)
from reconstruction.models import ObjectModel
from robot_io.errors import ConnectionLostError, RobotError, SafetyRejected
from robot_io.observation import Observation
from robot_io.robot import Robot
from sim.geometry import Pose
from sim.grasp import GRASP_DEPTH_M, grasp_width_plausible
from sim.scene import RobotSpec, SceneSpec
from sim.world import TIMESTEP_S, World, private_world

log = logging.getLogger(__name__)

GRASP_MARGIN_M = 0.002       # the probe grasps this much deeper than the held-object rule asks


def identify_objects(robot: Robot, reconstructor, names: Iterable[str], *, observation: Observation | None = None,
                     estimate: SceneEstimate | None = None,
                     config: IdentificationConfig | None = None) -> dict[str, PhysicalEstimate]:
    """Probe each named object in turn and fit its mass and friction; one `PhysicalEstimate` per name.

    reconstructor: a `Reconstructor` (its `models`, `robot` and `update(obs)` are used). observation/estimate:
    the current ones, if the caller has them (else observed here); later objects are re-observed because the
    previous probe moved the arm. Misses are reported, never raised.
    """
    cfg = config or IdentificationConfig()
    names = list(dict.fromkeys(names))
    out: dict[str, PhysicalEstimate] = {}
    if not names:
        return out
    with private_world(SceneSpec(reconstructor.robot)) as kin:
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
                    raise IdentificationMiss("this robot reports no joint torques (Observation.joint_effort_nm is "
                                             "None); nothing to weigh or push with")
                if estimate is None:
                    estimate = reconstructor.update(observation)
                probe = _Probe(robot, reconstructor, kin, cfg, observation, estimate)
                out[name] = probe.identify(name)
                if probe.moved:       # the next object needs a fresh look at the scene
                    observation, estimate = None, None
            except IdentificationMiss as e:
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
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


class _Probe:
    """One object's probe: plans and executes the motions, hands the recorded traces to `PhysicsFit`."""

    def __init__(self, robot: Robot, reconstructor, kin: World, cfg: IdentificationConfig, obs: Observation,
                 estimate: SceneEstimate) -> None:
        self.robot, self.reconstructor, self.kin, self.cfg = robot, reconstructor, kin, cfg
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
        self.fit = PhysicsFit(kin, self.spec, cfg, self.notes)
        self.moved = False
        self.place_z: float | None = None   # while the hand holds the object: the TCP height that sets it down

    # -------------------------------------------------------------------- entry
    def identify(self, name: str) -> PhysicalEstimate:
        try:
            return self._identify(name)
        except IdentificationMiss as e:
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
            raise IdentificationMiss(f"'{name}' was not found in the current observation")
        model = self.models[name]
        fp = footprint(model.points, obj.pose)
        plan = self._plan(name, fp)
        self.notes.append(f"push direction {np.round(plan['d'], 3).tolist()}, clearance "
                          f"{plan['clearance_m'] * 100:.1f} cm, finger gap {plan['gap_m'] * 100:.1f} cm")

        # Approach from above with the fingers open around the object. A first squeeze with the hand turned a
        # quarter turn centres it across the jaw; the grasp then centres it along the jaw: its centre of mass is
        # then under the TCP (the weighing needs no grasp moment) and the twin's push replay starts from a pose
        # known to a millimetre, square to the pads.
        b = PathBuilder(self.kin, self.q, self.width, self.dt_s)
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
        if not grasp_width_plausible(width_held, jaw, self.open_m):
            raise IdentificationMiss(f"grasp failed: the fingers closed to {width_held * 100:.1f} cm on an object "
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
        mass = self.fit.fit_mass(run.trace, w_held, run_e.trace, w_empty, width_held)

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
            friction = self.fit.fit_friction(model, mass, pushes)
        except IdentificationMiss as e:
            # the weighing stands; the object may have been left nudged
            self.notes.append(f"friction not identified: {e}")
            self._recover()
            return self.fit.estimate(name, mass, None)
        last = pushes[-1]
        if last["seen"] is not None:
            self._put_back(last["seen"], fp, plan)
        else:
            self.notes.append("not seen after the pushes; left where they put it")
        if cfg.return_home:
            self._go_home()
        return self.fit.estimate(name, mass, friction)

    def _squared_pose(self, pose: Pose, fp: Footprint, plan: dict) -> Pose:
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
        b = PathBuilder(self.kin, self.q, self.width, self.dt_s)
        b.move(P(center, plan["z_turn"]), cfg.near_speed_mps)
        b.hold(cfg.grip_s, self.open_m)
        b.move(P(center, z_push), cfg.near_speed_mps)
        ref = b.hold(cfg.push_hold_s)
        push = b.move(P(center + d * (gap + cfg.push_contact_m), z_push), cfg.push_speed_mps)
        b.move(P(center + d * cfg.push_contact_m, z_push), cfg.push_speed_mps)    # let go
        b.move(P(center + d * cfg.push_contact_m, plan["z_above"]), cfg.near_speed_mps)
        run = self._execute(b)
        info = self.fit.push_window(run, ref, push, gap, cfg.push_contact_m, d)
        info.update(run=run, ref_wp=ref, pose_before=pose_before, d=d, seen=None, seen_pose=None, turn_deg=None)
        est = self.reconstructor.update(self.robot.observe()).objects.get(name)
        if est is not None and est.found:
            seen = footprint(model.points, est.pose)
            # how far it turned: the seen face axis nearest the push direction against the push direction
            turns = [math.degrees(wrap(math.atan2(a[1], a[0]) - math.atan2(d[1], d[0]))) for a in seen.axes_xy]
            turns = [((t + 90.0) % 180.0) - 90.0 for t in turns]
            info.update(seen=seen, seen_pose=est.pose, turn_deg=float(min(turns, key=abs)))
        return info

    def _put_back(self, now: Footprint, fp: Footprint, plan: dict) -> None:
        """If the pushes left the object off where it stood, pick it up and set it down there, turned back (within
        its symmetry: the jaw closes along the same face axis as before)."""
        cfg = self.cfg
        if abs(now.top_z - fp.top_z) > 0.01:
            self.notes.append(f"it no longer stands as it did (top {now.top_z * 100:.1f} cm, was "
                              f"{fp.top_z * 100:.1f} cm); left where the pushes put it")
            return
        k = int(np.argmax([abs(float(a @ fp.axes_xy[plan["axis_index"]])) for a in now.axes_xy]))
        a_now, a_was = now.axes_xy[k], fp.axes_xy[plan["axis_index"]]
        turn = wrap(math.atan2(a_was[1], a_was[0]) - math.atan2(a_now[1], a_now[0]))
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

        b = PathBuilder(self.kin, self.q, self.width, self.dt_s)
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

    def _plan(self, name: str, fp: Footprint) -> dict:
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
                    clear = float(np.min(segment_distance(obstacles, fp.center_xy, end)) - fp.radius_m)
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
            raise IdentificationMiss(f"'{name}' is too wide for the open gripper (extents "
                        f"{[round(e * 100, 1) for e in fp.extents_m]} cm) or every push leaves the workspace")
        plan = best[1]
        if plan["clearance_m"] < cfg.clearance_m:
            raise IdentificationMiss(f"no clear push direction: another object is {plan['clearance_m'] * 100:.1f} cm "
                                     f"from the probe's swept area (need {cfg.clearance_m * 100:.1f} cm)")
        orient = self._down(plan["yaw"])
        # the quarter-turned hand (within +-90 degrees of the default, the jaw being symmetric) for centring the
        # object across the jaw; only when the object fits the open fingers that way too
        yaw_across = plan["yaw"] - math.copysign(math.pi / 2, plan["yaw"]) if plan["yaw"] else math.pi / 2
        orient_across = self._down(yaw_across)
        k_other = 1 - plan["axis_index"]
        across_ok = (self.open_m - fp.extents_m[k_other]) / 2 >= cfg.min_finger_gap_m
        drop = self._fingertip_drop(orient)
        z_push = fp.bottom_z + drop + cfg.fingertip_clearance_m
        z_grasp = min(max(fp.center_z, z_push), fp.top_z - (GRASP_DEPTH_M + GRASP_MARGIN_M))
        if z_grasp < z_push - 1e-6:
            raise IdentificationMiss(f"'{name}' is too flat to grasp ({(fp.top_z - fp.bottom_z) * 100:.1f} cm tall)")

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
        return self.kin.finger_reach_below_tcp_m(q, self.open_m)

    # -------------------------------------------------------------------- execution
    def _execute(self, b: PathBuilder, need_trace: bool = True) -> RecordedMotion:
        traj = b.take()
        moved, self.moved = self.moved, True
        try:
            # exact: the envelope judges the motion once, and refuses one it would change before it moves
            report = self.robot.execute(traj, exact=True)
        except SafetyRejected as e:
            self.moved = moved
            raise IdentificationMiss(f"the safety envelope rejects a probe motion: {e}") from e
        self.q = np.asarray(report.final_joint_pos_rad, dtype=float)
        self.width = float(report.sent.gripper_width_m[-1])
        if not report.completed:
            raise IdentificationMiss(f"a probe motion stopped early: {report.stopped_reason}")
        sent = report.sent
        b.q, b.pose, b.width_m = self.q, self.kin.fk(self.q), self.width
        if not need_trace:
            return RecordedMotion(traj, report, 0, 1, None)
        offset = sent.n_waypoints - traj.n_waypoints     # the envelope's bridge in front, nothing else
        trace = self.robot.last_trace()
        if trace is None:
            raise IdentificationMiss("this robot records no joint-state trace during motions "
                                     "(Robot.last_trace() is None)")
        spw = max(1, math.ceil(sent.dt_s / TIMESTEP_S - 1e-9))
        if trace.n_samples < sent.n_waypoints * spw:
            raise IdentificationMiss(f"the joint trace has {trace.n_samples} samples, expected "
                                     f"{sent.n_waypoints * spw}")
        return RecordedMotion(traj, report, offset, spw, trace)

    def _go_home(self) -> None:
        b = PathBuilder(self.kin, self.q, self.width, self.dt_s)
        b.move(self.tcp0, self.cfg.move_speed_mps)
        b.joint_move(self.q0)
        self._execute(b, need_trace=False)

    def _recover(self) -> None:
        """After a miss mid-probe: set down what the hand holds, open it, rise clear of the table and go back to
        the start (best effort: a failure here is logged, the miss is what gets reported)."""
        if not self.moved:
            return
        try:
            b = PathBuilder(self.kin, self.q, self.width, self.dt_s)
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
        except (RobotError, IdentificationMiss) as e:
            log.warning("could not bring the arm back after a failed probe: %s", e)
