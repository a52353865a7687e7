"""simjudge: answers the agents' questions from twin rollout metrics instead of pictures.

It is the embedded default (no key, no GPU) and the "without VLM" baseline. It writes its answer as JSON
text, like a VLM, and the scorer parses it with ``schema.parse_answer`` like every other backend.

Mapping from ``CandidateEvidence`` to scores (all in [0, 10]):

- feasibility = 0 if the rollout is infeasible, else ``10 * ik_term * (0.5 + 0.5 * margin_term)`` with
  ``margin_term = clip(joint_limit_margin_rad / 0.3 rad, 0, 1)`` and ``ik_term = clip(1 - ik_error_m / 0.02 m,
  0, 1)``. An IK error of 2 cm or more zeroes it (the arm would not follow the curve); a feasible path that
  runs close to a joint limit keeps half marks, because it is still executable, just less robust.
- safety = 0 if the rollout has any unexpected contact (collisions > 0); otherwise
  ``10 * clip(min_clearance_m / 0.05 m, 0, 1)``, floored at 5 while the clearance is positive (clearance
  excludes the target object, so a small positive clearance is a near miss, not a crash), 0 at zero
  clearance, 10 when nothing is in range (infinite clearance); then scaled down linearly for a released
  object's fall height between 1 cm (no penalty) and 4 cm (zero).
- task_alignment = 10 if the rollout completes the task or the current subtask, else ``10 * progress``.
- efficiency = ``10 * exp(-path_length_m / 0.6 m)``.
- the rotation question (``scoring.rotation_question.RotationRequest``): the turn among the twin's tried turns
  that leaves the goal's orientation error smallest (``twin_answer``); no turn when none improves it.
- view_clarity = ``10 * inside_fraction * spread_term``: ``inside_fraction`` is the share of requested
  candidates whose drawn end point lies inside the image; ``spread_term = min(1, d / 40 px)`` with ``d``
  the median nearest-neighbour distance between those visible end points (1 with a single visible end point,
  nothing can overlap it). Overlapping end points make numbers unreadable, so clarity drops.

Per-agent parameters (``AgentConfig.params``): ``noise_std`` (default 0: the exact mapping) adds Gaussian
noise of that standard deviation to every number, clipped back to [0, 10], so an ensemble of simjudges
disagrees a little; ``seed`` (default: derived from the agent name) makes the noise reproducible. The noise
is a pure function of (seed, view name, request content): the same request always gets the same answer.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from scoring.backend import AgentConfig, Backend
from scoring.errors import AgentParamError, BackendError, did_you_mean
from scoring.request import CandidateEvidence, ScoreRequest, ViewImage
from scoring.rotation_question import RotationRequest, twin_answer
from scoring.schema import DIMENSIONS, SCORE_MAX, SCORE_MIN

MARGIN_FULL_RAD = 0.3
IK_ERROR_ZERO_M = 0.02
CLEARANCE_FULL_M = 0.05
SAFETY_FLOOR_NEAR_MISS = 5.0
DROP_SAFE_M = 0.01
DROP_SPAN_M = 0.03
PATH_LENGTH_SCALE_M = 0.6
ENDPOINT_SPREAD_FULL_PX = 40.0
DECIMALS = 3  # a VLM writes short numbers too; also keeps the JSON readable in the run log

AGENT_PARAMS = ("noise_std", "seed")


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


def feasibility_score(ev: CandidateEvidence) -> float:
    if not ev.feasible:
        return 0.0
    margin_term = _clip01(ev.joint_limit_margin_rad / MARGIN_FULL_RAD)
    ik_term = _clip01(1.0 - ev.ik_error_m / IK_ERROR_ZERO_M)
    return 10.0 * ik_term * (0.5 + 0.5 * margin_term)


def safety_score(ev: CandidateEvidence) -> float:
    if ev.collisions > 0 or ev.min_clearance_m <= 0.0:
        return 0.0
    score = max(SAFETY_FLOOR_NEAR_MISS, 10.0 * _clip01(ev.min_clearance_m / CLEARANCE_FULL_M))
    # Letting an object fall is a hazard (it bounces, topples, and the twin cannot predict where it lands):
    # no penalty up to DROP_SAFE_M, none left of the score at DROP_SAFE_M + DROP_SPAN_M.
    return score * (1.0 - _clip01((ev.drop_height_m - DROP_SAFE_M) / DROP_SPAN_M))


def task_alignment_score(ev: CandidateEvidence) -> float:
    if ev.task_success or ev.subtask_done:
        return 10.0
    return 10.0 * ev.progress


def efficiency_score(ev: CandidateEvidence) -> float:
    return 10.0 * math.exp(-ev.path_length_m / PATH_LENGTH_SCALE_M)


def view_clarity_score(view: ViewImage, candidate_ids: tuple[int, ...]) -> float:
    """10 * (share of end points inside the image) * min(1, median nearest-neighbour distance / 40 px)."""
    if not candidate_ids:
        return 0.0
    visible = [view.endpoints_px[cid] for cid in candidate_ids if view.contains(view.endpoints_px.get(cid))]
    if not visible:
        return 0.0
    inside_fraction = len(visible) / len(candidate_ids)
    if len(visible) == 1:
        return 10.0 * inside_fraction
    pts = np.asarray(visible, dtype=float)
    dist = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=-1)
    np.fill_diagonal(dist, np.inf)
    median_nn_px = float(np.median(dist.min(axis=1)))
    return 10.0 * inside_fraction * min(1.0, median_nn_px / ENDPOINT_SPREAD_FULL_PX)


def _request_digest(request: ScoreRequest, view: ViewImage) -> bytes:
    # Everything simjudge reads, in a canonical form, so the noise depends on the question and nothing else.
    content = {
        "view": view.name,
        "size": [view.width, view.height],
        "endpoints": sorted((k, v) for k, v in view.endpoints_px.items()),
        "instruction": request.instruction,
        "subtask": request.subtask,
        "ids": list(request.candidate_ids),
        "evidence": sorted((k, sorted(ev.to_dict().items())) for k, ev in (request.evidence or {}).items()),
    }
    return hashlib.sha256(json.dumps(content, default=str).encode()).digest()


class SimJudgeBackend(Backend):
    """Scores candidates from ScoreRequest.evidence and view clarity from the drawn end points."""

    name: ClassVar[str] = "simjudge"

    @classmethod
    def check_agent_params(cls, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            if key not in AGENT_PARAMS:
                raise AgentParamError(key, f"unknown simjudge parameter{did_you_mean(key, AGENT_PARAMS)}")
            if key == "noise_std" and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise AgentParamError(key, f"expected a number >= 0, got {value!r}")
            bad_seed = isinstance(value, bool) or not isinstance(value, int)
            if key == "seed" and value is not None and bad_seed:
                raise AgentParamError(key, f"expected an integer or null, got {value!r}")

    def answer(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> str:
        try:
            self.check_agent_params(agent.params)
        except AgentParamError as err:
            raise BackendError(f"agent {agent.name!r}: params.{err}") from None
        if isinstance(request, RotationRequest):   # the rotation question: the turn the twin found best
            if request.evidence is None:
                raise BackendError("simjudge: the rotation question carries no twin evidence "
                                   "(RotationRequest.evidence)")
            return json.dumps(twin_answer(request).to_dict())
        if request.evidence is None:
            raise BackendError(
                "simjudge needs rollout evidence (ScoreRequest.evidence: CandidateEvidence per candidate); "
                "the request has none"
            )
        missing = [cid for cid in request.candidate_ids if cid not in request.evidence]
        if missing:
            raise BackendError(f"simjudge: no CandidateEvidence for candidate(s) {missing}")

        clarity = view_clarity_score(view, request.candidate_ids)
        rows = []
        for cid in request.candidate_ids:
            ev = request.evidence[cid]
            rows.append(
                {
                    "id": cid,
                    "safety": safety_score(ev),
                    "task_alignment": task_alignment_score(ev),
                    "efficiency": efficiency_score(ev),
                    "feasibility": feasibility_score(ev),
                }
            )

        noise_std = float(agent.params.get("noise_std", 0.0))
        if noise_std > 0.0:
            seed = agent.params.get("seed")
            seed_bytes = (str(seed) if seed is not None else f"agent:{agent.name}").encode()
            digest = hashlib.sha256(seed_bytes + b"|" + _request_digest(request, view)).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            clarity += float(rng.normal(0.0, noise_std))
            for row in rows:
                for key in DIMENSIONS:
                    row[key] += float(rng.normal(0.0, noise_std))

        def tidy(value: float) -> float:
            return round(min(SCORE_MAX, max(SCORE_MIN, value)), DECIMALS)

        answer = {
            "view_clarity": tidy(clarity),
            "candidates": [{k: (v if k == "id" else tidy(v)) for k, v in row.items()} for row in rows],
        }
        return json.dumps(answer)
