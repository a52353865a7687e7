"""Fusion of the agents' answers into one score per candidate (DESIGN.md, "Scoring, precisely").

Notation: agent m, view v, candidate j, dimension k; weights w_k normalised to sum 1.

1. Weighted score of candidate j by agent m in view v: ``x_mvj = sum_k w_k * s_mvjk``.
2. View clarity: ``q_v`` = mean of ``view_clarity`` over the agents that answered view v.
3. Disagreement: ``sigma_v`` = for every candidate scored in view v by at least two agents, the population
   variance (ddof=0) of ``x_mvj`` across those agents, averaged over those candidates; 0 when no candidate
   has two scores (e.g. a single agent).
4. View confidence ``C_v = q_v / (1 + lambda_C * sigma_v)``; ``C'_v = C_v / sum_v C_v`` over the views
   that were answered.
5. ``S_j = (1/M') * sum_m sum_v C'_v * x_mvj``.

When every agent answers every view and scores every candidate, step 5 is exactly the DESIGN formula.
The edge cases, and what this module does about them:

- An agent missing a view (its call failed or was rejected): its term for candidate j is
  ``sum_{v in V_mj} C'_v x_mvj / sum_{v in V_mj} C'_v`` over the views V_mj in which it scored j, i.e. C'
  is renormalised over the views that agent answered, so a missing view is not counted as a zero score.
- A candidate an agent did not score is unscored by that agent: the agent contributes to neither the sum
  nor the count for that candidate, so S_j averages over the agents that scored j (``support[j]`` of them).
  M_prime is still the number of agents with at least one valid answer, as DESIGN defines M'.
- A view whose confidence is zero (mean clarity 0) gets zero weight. An agent that scored j only in
  zero-weight views gives no evidence about j and does not count for j.
- If every answered view has zero confidence, C' falls back to uniform weights over those views and the
  result's notes say so.
- A candidate nobody scored (with positive weight) has no entry in S; the notes list it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scoring.errors import did_you_mean
from scoring.schema import DIMENSIONS, Answer


def normalize_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights for exactly DIMENSIONS, each finite and >= 0, not all zero, scaled to sum 1 (ValueError)."""
    unknown = [k for k in weights if k not in DIMENSIONS]
    if unknown:
        raise ValueError(f"weights: unknown dimension '{unknown[0]}'{did_you_mean(unknown[0], DIMENSIONS)}")
    missing = [k for k in DIMENSIONS if k not in weights]
    if missing:
        raise ValueError(f"weights: missing dimension(s) {', '.join(missing)} (write 0 to ignore one)")
    for key, value in weights.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            raise ValueError(f"weights.{key}: expected a number >= 0, got {value!r}")
    total = float(sum(weights.values()))
    if total <= 0.0:
        raise ValueError("weights: all weights are zero; at least one dimension must count")
    return {k: float(weights[k]) / total for k in DIMENSIONS}


@dataclass(frozen=True)
class FusionResult:
    """Everything fusion computed, so a report can show where S came from.

    S: candidate id -> fused score (only scored candidates). q, sigma, C, C_norm: per answered view.
    M_prime: agents with at least one valid answer. support: candidate id -> agents that entered S_j.
    weights: the normalised w_k used. x: agent -> view -> candidate id -> weighted score x_mvj.
    notes: human-readable remarks on every edge case that was hit. mean_scores: candidate id -> dimension ->
    the plain mean over every valid answer (what a report shows beside S_j; not part of to_dict, the run log
    keeps it per candidate).
    """

    S: dict[int, float]
    q: dict[str, float]
    sigma: dict[str, float]
    C: dict[str, float]
    C_norm: dict[str, float]
    M_prime: int
    notes: tuple[str, ...] = ()
    weights: dict[str, float] = field(default_factory=dict)
    support: dict[int, int] = field(default_factory=dict)
    x: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    mean_scores: dict[int, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (candidate ids as string keys)."""
        return {
            "S": {str(j): s for j, s in self.S.items()},
            "q": dict(self.q),
            "sigma": dict(self.sigma),
            "C": dict(self.C),
            "C_norm": dict(self.C_norm),
            "M_prime": self.M_prime,
            "notes": list(self.notes),
            "weights": dict(self.weights),
            "support": {str(j): n for j, n in self.support.items()},
            "x": {
                m: {v: {str(j): s for j, s in per_j.items()} for v, per_j in per_v.items()}
                for m, per_v in self.x.items()
            },
        }


def fuse(
    answers: Mapping[str, Mapping[str, Answer]],
    weights: Mapping[str, float],
    lambda_C: float,
    candidate_ids: Sequence[int] | None = None,
) -> FusionResult:
    """Fuse valid answers, ``answers[agent][view] -> Answer``, into S_j (see the module docstring).

    candidate_ids, when given, lets the notes name candidates nobody scored and rejects answers about
    other ids (ValueError). Agents with no answers are ignored.
    """
    if (
        isinstance(lambda_C, bool)
        or not isinstance(lambda_C, (int, float))
        or not math.isfinite(lambda_C)
        or lambda_C < 0
    ):
        raise ValueError(f"lambda_C: expected a finite number >= 0, got {lambda_C!r}")
    w = normalize_weights(weights)
    notes: list[str] = []
    allowed = None if candidate_ids is None else [int(j) for j in candidate_ids]

    # x_mvj for every agent that answered something; views in order of first appearance.
    x: dict[str, dict[str, dict[int, float]]] = {}
    clarity: dict[str, dict[str, float]] = {}
    views: list[str] = []
    for agent, per_view in answers.items():
        if not per_view:
            continue
        x[agent], clarity[agent] = {}, {}
        for view, answer in per_view.items():
            if allowed is not None:
                strangers = sorted(set(answer.scores) - set(allowed))
                if strangers:
                    raise ValueError(
                        f"agent {agent!r}, view {view!r}: scores unknown candidate(s) {strangers}"
                    )
            x[agent][view] = {j: sum(w[k] * s[k] for k in DIMENSIONS) for j, s in answer.scores.items()}
            clarity[agent][view] = answer.view_clarity
            if view not in views:
                views.append(view)
    M_prime = len(x)
    dims: dict[int, dict[str, list[float]]] = {}
    for per_view in answers.values():
        for answer in per_view.values():
            for j, s in answer.scores.items():
                for k in DIMENSIONS:
                    dims.setdefault(j, {}).setdefault(k, []).append(float(s[k]))
    mean_scores = {j: {k: float(np.mean(v)) for k, v in per_k.items()} for j, per_k in dims.items()}
    if M_prime == 0:
        return FusionResult(
            S={}, q={}, sigma={}, C={}, C_norm={}, M_prime=0, notes=("no valid answers",), weights=w
        )

    # Per view: clarity, disagreement, confidence.
    q: dict[str, float] = {}
    sigma: dict[str, float] = {}
    C: dict[str, float] = {}
    for view in views:
        agents_v = [m for m in x if view in x[m]]
        q[view] = float(np.mean([clarity[m][view] for m in agents_v]))
        variances = []
        ids_v = sorted({j for m in agents_v for j in x[m][view]})
        for j in ids_v:
            scores_j = [x[m][view][j] for m in agents_v if j in x[m][view]]
            if len(scores_j) >= 2:
                variances.append(float(np.var(scores_j)))  # ddof=0: population variance across agents
        sigma[view] = float(np.mean(variances)) if variances else 0.0
        C[view] = q[view] / (1.0 + lambda_C * sigma[view])

    total_C = sum(C.values())
    if total_C > 0.0:
        C_norm = {v: c / total_C for v, c in C.items()}
        for view in views:
            if C[view] == 0.0:
                notes.append(
                    f"view '{view}': zero confidence (mean view_clarity 0); its scores carry no weight"
                )
    else:
        C_norm = {v: 1.0 / len(views) for v in views}
        notes.append(
            "every view has zero confidence (all view_clarity 0); falling back to uniform view weights "
            f"1/{len(views)}"
        )

    for agent, per_view in x.items():
        skipped = [v for v in views if v not in per_view]
        if skipped:
            notes.append(
                f"agent '{agent}' has no valid answer for view(s) {', '.join(skipped)}; "
                "its view weights are renormalised over the views it answered"
            )

    # S_j: per agent, a C'-weighted mean over the views in which it scored j; then the mean over agents.
    per_candidate: dict[int, list[float]] = {}
    for agent, per_view in x.items():
        ids_m = sorted({j for scores in per_view.values() for j in scores})
        for j in ids_m:
            views_mj = [v for v in per_view if j in per_view[v]]
            den = sum(C_norm[v] for v in views_mj)
            if den <= 0.0:
                notes.append(
                    f"agent '{agent}' scored candidate {j} only in zero-weight views; not counted for it"
                )
                continue
            y = sum(C_norm[v] * per_view[v][j] for v in views_mj) / den
            per_candidate.setdefault(j, []).append(y)
    order = allowed if allowed is not None else sorted(per_candidate)
    S = {j: float(np.mean(per_candidate[j])) for j in order if j in per_candidate}
    support = {j: len(per_candidate[j]) for j in S}
    if allowed is not None:
        unscored = [j for j in allowed if j not in per_candidate]
        if unscored:
            notes.append(f"candidate(s) {unscored}: no agent scored them in a view with weight > 0; no S")
    return FusionResult(
        S=S,
        q=q,
        sigma=sigma,
        C=C,
        C_norm=C_norm,
        M_prime=M_prime,
        notes=tuple(notes),
        weights=w,
        support=support,
        x=x,
        mean_scores=mean_scores,
    )
