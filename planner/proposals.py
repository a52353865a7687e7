"""Object-anchored proposals: grasps on the current subtask's target, placements over its goal, pushes for hard
starts, and GraspCorrect's iterative narrowing, as ordinary `Candidate`s that join the annealed ball.

What the current subtask asks decides what is proposed: `grasped: X` (or a placement whose object is not in the
hand: a re-grasp) gives grasps on X, each a path to its pre-grasp, down to the grasp, and 'close'; a target with
no free grasp gives push moves; `on_top` / `inside` / `near` with the object in the hand give placements.

Narrowing (GraspCorrect) runs across MPC steps, not as extra scoring rounds inside one step: the scorers pick
among numbered grasps like among any candidates, `remember` keeps the best-scored grasp (in the object's own
frame: psi about its yaw and an offset across it), and the next step of the same subtask samples its grasps
around that choice with the spread halved each round, beside a few from the whole object. A subtask change
(`reset`) forgets the focus. Any scorer, simjudge included, goes through it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from planner.grasps import GraspConfig, GraspFinder, GraspPoint
from planner.placements import PlaceConfig, place_moves
from planner.pushes import PushConfig, push_moves
from sim.geometry import Pose
from sim.reach import finger_axis_tcp
from sim.rollout import Candidate
from sim.world import World

ANCHOR_KINDS = ("grasped", "on_top", "inside", "near")


@dataclass(frozen=True)
class ProposalConfig:
    grasp: GraspConfig = field(default_factory=GraspConfig)
    place: PlaceConfig = field(default_factory=PlaceConfig)
    push: PushConfig = field(default_factory=PushConfig)
    n_grasps: int = 4                 # distinct free grasps made into candidates per step
    n_focused: int = 3                # of them, sampled around the last choice while narrowing
    max_rounds: int = 4               # narrowing rounds before the spread stops shrinking
    deeper_m: float = 0.006           # a variant of the best grasp this much lower
    lift_margin_m: float = 0.02       # a hand this far below the pre-grasp first lifts in place
    pregrasp_reached_m: float = 0.03  # a hand this near a pre-grasp is offered the grasp, not the pre-grasp again

    def __post_init__(self) -> None:
        if self.n_grasps < 1 or self.n_focused < 0 or self.max_rounds < 1 or self.pregrasp_reached_m < 0:
            raise ValueError("ProposalConfig: expected n_grasps >= 1, n_focused >= 0, max_rounds >= 1, "
                             "pregrasp_reached_m >= 0")


def anchor_goal(pred) -> tuple[str, object] | None:
    """The first leaf of a predicate tree that anchors proposals: (kind, argument), or None."""
    if not isinstance(pred, dict) or len(pred) != 1:
        return None
    (key, arg), = pred.items()
    if key in ("all", "any"):
        for sub in arg:
            found = anchor_goal(sub)
            if found is not None:
                return found
        return None
    return (key, arg) if key in ANCHOR_KINDS else None


@dataclass
class _Focus:
    object: str
    psi_rad: float
    offset_m: float
    round: int


class AnchoredProposer:
    """Proposes anchored candidates for one subtask at a time; `remember` feeds back the scores."""

    def __init__(self, config: ProposalConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.focus: _Focus | None = None
        self._grasp_of: dict[int, GraspPoint] = {}   # candidate id -> its grasp, for the last proposal

    def reset(self) -> None:
        self.focus = None
        self._grasp_of = {}

    def propose(self, world: World, goal: dict, tcp: Pose, gripper_open: bool, first_id: int,
                limit: int) -> list[Candidate]:
        """Up to `limit` candidates numbered from first_id (empty when the goal anchors nothing)."""
        self._grasp_of = {}
        found = anchor_goal(goal)
        if found is None or limit <= 0:
            return []
        kind, arg = found
        held = world.grasped()
        if kind == "grasped":
            target, ref = arg, None
        elif kind in ("on_top", "inside"):
            target, ref = arg
        else:   # near: carry whichever of the two is in the hand next to the other
            a, b = arg["objects"]
            target, ref = (b, a) if held == b else (a, b)
        if not (world.has_object(target) and (ref is None or world.has_object(ref))):
            return []
        if ref is not None and held == target:
            near_m = arg.get("within_m") if isinstance(arg, dict) else None
            moves = place_moves(world, target, ref, kind, tcp, self.config.place, self.rng, limit, near_m)
            return [Candidate(first_id + i, m.waypoints, m.gripper, label=m.label) for i, m in enumerate(moves)]
        if held is not None or not gripper_open:
            return []   # a closed or occupied hand cannot grasp: the ball's open-in-place covers it
        return self._grasps(world, target, tcp, first_id, limit)

    def _grasps(self, world: World, target: str, tcp: Pose, first_id: int, limit: int) -> list[Candidate]:
        cfg = self.config
        finder = GraspFinder(world, target, cfg.grasp, finger_axis_tcp(world), world.spec.robot.gripper_max_width_m)
        q = world.joint_pos_rad()
        grasps: list[tuple[GraspPoint, str]] = []
        focus = self.focus if self.focus is not None and self.focus.object == target else None
        if focus is not None:
            spread = 0.5 ** min(focus.round, cfg.max_rounds)
            for g in finder.free_grasps(tcp, cfg.n_focused, (focus.psi_rad, focus.offset_m, spread), q):
                grasps.append((g, f"round {focus.round + 1}"))
        for g in finder.free_grasps(tcp, cfg.n_grasps, None, q):
            if len(grasps) >= cfg.n_grasps:
                break
            if not any(_same(g, h) for h, _ in grasps):
                grasps.append((g, ""))
        out: list[Candidate] = []
        if not grasps:
            if finder.n_antipodal:   # graspable, but not where it stands: push it clear
                for m in push_moves(finder, tcp, world.gripper_width_m(), cfg.push, limit):
                    out.append(Candidate(first_id + len(out), m.waypoints, "close" if m.regrasp else "keep",
                                         label=m.label))
            return out[:limit]
        for k, (g, note) in enumerate(grasps):
            path = self._approach(tcp, g)
            label = f"grasp {k} ({g.approach}, {1000 * g.width_m:.0f} mm{', ' + note if note else ''})"
            self._grasp_of[first_id + len(out)] = g
            out.append(Candidate(first_id + len(out), path, "close", label=label))
        best = grasps[0][0]
        lo_z = finder.geo.bounds[0][2] + cfg.grasp.grasp_min_height_m
        if best.approach == "top" and best.tcp.position[2] - cfg.deeper_m >= lo_z:
            deeper = Pose(tuple(best.tcp.position - np.array([0, 0, cfg.deeper_m])), best.tcp.quat_xyzw)
            self._grasp_of[first_id + len(out)] = best
            out.append(Candidate(first_id + len(out), (*self._approach(tcp, best)[:-1], deeper), "close",
                                 label="grasp 0, deeper"))
        for g, _ in grasps[:2]:   # to the pre-grasp only: a choice a VLM can make before committing
            if np.linalg.norm(tcp.position - g.pregrasp.position) < cfg.pregrasp_reached_m:
                # already there: a scorer that finds the hover safer than the grasp would pick it again and again
                # (LIBERO-Object task 1 spent 6 of its 8 steps on pre-grasps 1 cm apart)
                continue
            self._grasp_of[first_id + len(out)] = g
            out.append(Candidate(first_id + len(out), self._approach(tcp, g)[:-1], "keep", label="pre-grasp"))
        return out[:limit]

    def _approach(self, tcp: Pose, g: GraspPoint) -> tuple[Pose, ...]:
        """Lift in place when the hand is below the pre-grasp, then pre-grasp, then the grasp."""
        path = []
        low = tcp.position[2] < g.pregrasp.position[2] - self.config.lift_margin_m
        far = np.linalg.norm(tcp.position[:2] - g.pregrasp.position[:2]) > 0.03
        if low and far:
            path.append(Pose((tcp.xyz[0], tcp.xyz[1], g.pregrasp.xyz[2]), tcp.quat_xyzw))
        return (*path, g.pregrasp, g.tcp)

    def remember(self, candidates: list[Candidate], scores: dict[int, float]) -> None:
        """Narrow around the best-scored grasp: the next step's grasps are sampled closer to it."""
        scored = [(s, cid) for cid in self._grasp_of if (s := scores.get(cid)) is not None]
        if not scored:
            return
        _, cid = max(scored)
        g = self._grasp_of[cid]
        f = self.focus
        same = (f is not None and f.object == g.object and abs(f.offset_m - g.offset_m) < 0.02
                and abs(math.remainder(f.psi_rad - g.psi_rad, math.pi)) < 0.5)
        self.focus = _Focus(g.object, g.psi_rad, g.offset_m, f.round + 1 if same and f is not None else 1)


def _same(a: GraspPoint, b: GraspPoint) -> bool:
    return abs(a.offset_m - b.offset_m) < 0.004 and abs(math.remainder(a.psi_rad - b.psi_rad, math.pi)) < 0.1
