"""Annealed, experience-guided sampling of candidate TCP trajectories around the gripper.

At MPC step t (counted from the last subtask transition) goals are drawn in a ball around the current TCP of
radius R_t = R_min + (R_0 - R_min) * exp(-lambda_R * t); the yaw spread decays the same way. Directions that
scored well in earlier steps bias new draws (experience), and a subtask transition resets t and the experience.
Given the twin and the subtask's goal, a share of the candidates are object-anchored (`planner.proposals`:
grasps on the target, placements over the goal, pushes for hard starts); the ball fills the rest and explores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from planner.proposals import AnchoredProposer, ProposalConfig
from sim.geometry import Pose
from sim.rollout import Candidate
from sim.world import World


@dataclass(frozen=True)
class SamplerConfig:
    n_candidates: int = 16
    radius0_m: float = 0.18
    radius_min_m: float = 0.02
    lambda_r: float = 0.2
    yaw0_deg: float = 45.0
    yaw_min_deg: float = 4.0
    p_gripper_toggle: float = 0.3     # share of candidates that end by opening/closing the gripper
    p_arc: float = 0.4                # share of candidates that arc upwards instead of a straight line
    experience_share: float = 0.4     # share of candidates drawn around remembered good directions
    experience_decay: float = 0.6
    min_tcp_z_m: float = 0.012
    anchored_share: float = 0.5       # share of the candidates (after 'stay') that are object-anchored, at most
    proposals: ProposalConfig = field(default_factory=ProposalConfig)

    def __post_init__(self) -> None:
        if self.n_candidates < 2:
            raise ValueError("SamplerConfig.n_candidates: expected at least 2")
        if not 0 < self.radius_min_m <= self.radius0_m:
            raise ValueError("SamplerConfig: expected 0 < radius_min_m <= radius0_m")
        if self.lambda_r < 0:
            raise ValueError("SamplerConfig.lambda_r: expected >= 0")
        for name in ("p_gripper_toggle", "p_arc", "experience_share", "experience_decay", "anchored_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SamplerConfig.{name}: expected a value in [0, 1]")

    def radius_m(self, t: int) -> float:
        return self.radius_min_m + (self.radius0_m - self.radius_min_m) * math.exp(-self.lambda_r * t)

    def yaw_spread_deg(self, t: int) -> float:
        return self.yaw_min_deg + (self.yaw0_deg - self.yaw_min_deg) * math.exp(-self.lambda_r * t)


def tcp_yaw(pose: Pose, tcp_down: Pose) -> float:
    """Yaw of a downward-pointing TCP: the rotation about world z that maps tcp_down onto the pose."""
    R = pose.rotation() @ tcp_down.rotation().T
    return math.atan2(R[1, 0], R[0, 0])


def downward(xyz, yaw: float, tcp_down: Pose) -> Pose:
    return Pose(tuple(xyz), (Pose.from_xyz_rpy_deg((0, 0, 0), (0, 0, math.degrees(yaw))) @ tcp_down).quat_xyzw)


class AnnealedSampler:
    """Proposes candidates; remember() feeds back the fused scores; reset() starts a new subtask."""

    def __init__(self, config: SamplerConfig, tcp_down: Pose, workspace_min_xyz, workspace_max_xyz,
                 rng: np.random.Generator) -> None:
        self.config = config
        self.tcp_down = tcp_down
        self.lo = np.asarray(workspace_min_xyz, dtype=float)
        self.hi = np.asarray(workspace_max_xyz, dtype=float)
        self.rng = rng
        self.t = 0
        self._memory: list[tuple[np.ndarray, float]] = []   # (unit direction * step fraction, weight)
        self.anchored = AnchoredProposer(config.proposals, rng)

    def reset(self) -> None:
        self.t = 0
        self._memory.clear()
        self.anchored.reset()

    def advance(self) -> None:
        self.t += 1

    def propose(self, tcp: Pose, gripper_open: bool, stay: bool = True, world: World | None = None,
                goal: dict | None = None) -> list[Candidate]:
        """K candidates; with `stay`, candidate 0 toggles the gripper where the TCP is. With the twin and the
        subtask's goal, up to anchored_share of the rest are object-anchored; the ball draws the others."""
        cfg = self.config
        radius = cfg.radius_m(self.t)
        yaw_spread = math.radians(cfg.yaw_spread_deg(self.t))
        start = tcp.position
        yaw0 = tcp_yaw(tcp, self.tcp_down)
        toggle = "close" if gripper_open else "open"
        out = []
        if stay:
            out.append(Candidate(0, (downward(start, yaw0, self.tcp_down),), toggle, label=f"stay and {toggle}"))
        if world is not None and goal is not None:
            n_anchor = int(round(cfg.anchored_share * (cfg.n_candidates - len(out))))
            out += self.anchored.propose(world, goal, tcp, gripper_open, len(out), n_anchor)
        first = len(out)
        n_exp = int(round(cfg.experience_share * (cfg.n_candidates - first))) if self._memory else 0
        for i in range(first, cfg.n_candidates):
            if i - first < n_exp:
                step = self._from_memory(radius)
            else:
                direction = self.rng.normal(size=3)
                direction /= np.linalg.norm(direction) + 1e-12
                step = direction * radius * self.rng.uniform(0.2, 1.0) ** (1.0 / 3.0)
            goal = np.clip(start + step, self.lo, self.hi)
            goal[2] = max(goal[2], cfg.min_tcp_z_m)
            yaw = yaw0 + self.rng.uniform(-yaw_spread, yaw_spread)
            gripper = toggle if self.rng.random() < cfg.p_gripper_toggle else "keep"
            end = downward(goal, yaw, self.tcp_down)
            if self.rng.random() < cfg.p_arc:
                mid = (start + goal) / 2.0
                mid[2] = min(self.hi[2], max(start[2], goal[2]) + self.rng.uniform(0.3, 0.6) * radius)
                via = downward(mid, (yaw0 + yaw) / 2.0, self.tcp_down)
                out.append(Candidate(i, (via, end), gripper, label="arc"))
            else:
                out.append(Candidate(i, (end,), gripper, label="line"))
        return out

    def _from_memory(self, radius: float) -> np.ndarray:
        steps = np.stack([m[0] for m in self._memory])
        weights = np.array([m[1] for m in self._memory])
        if weights.sum() <= 0:   # every memory has faded to nothing: draw a fresh direction
            direction = self.rng.normal(size=3)
            return direction / (np.linalg.norm(direction) + 1e-12) * radius * self.rng.uniform(0.4, 1.0)
        k = self.rng.choice(len(steps), p=weights / weights.sum())
        noise = self.rng.normal(scale=0.35, size=3)
        direction = steps[k] / (np.linalg.norm(steps[k]) + 1e-12) + noise
        direction /= np.linalg.norm(direction) + 1e-12
        return direction * radius * self.rng.uniform(0.4, 1.0)

    def remember(self, start: Pose, candidates: list[Candidate], scores: dict[int, float]) -> None:
        """Keep the directions of the best-scored moves, weighted by score; older memories fade. The anchored
        proposer narrows its grasps around its best-scored one."""
        self.anchored.remember(candidates, scores)
        self._memory = [(d, w * self.config.experience_decay) for d, w in self._memory if w > 0.05]
        ranked = sorted(((s, c) for c in candidates if (s := scores.get(c.id)) is not None and c.id != 0),
                        key=lambda x: -x[0])[:3]
        for score, cand in ranked:
            step = cand.goal.position - start.position
            if np.linalg.norm(step) > 1e-4 and score > 0:
                self._memory.append((step, float(score)))
