"""`antigrounding optimise`, part (a): fit the dimension weights w_k and lambda_C from logged runs.

Data, per logged step: every agent's answer per view (`scores.calls[*].parsed`: view clarity and the four
dimension scores per candidate), and what each candidate was worth, its *utility*: the subtask progress its
twin rollout reached beyond the step's own (`progress_now`), 1 for a rollout that finishes the subtask, with
the executed candidate's twin prediction replaced by the real outcome (the progress the next observation
showed, or the subtask advancing). Candidates the twin vetoes (collision, high release) are never chosen, so
only the planner's own pool (clean, else feasible) counts.

Objective: the mean over steps of u(chosen) / max u in the pool (1: the config picks the best candidate the
twin showed; steps where no candidate is worth anything are left out), where `chosen` is the argmax of the
fused S_j computed exactly as scoring/fusion.py does (vectorised here: `fused_scores`; a test checks it against
`fuse`). The search: every weight vector on a simplex grid (step 0.05) x a few lambda_C values, on the training
episodes; the split into training and validation is by episode, so a step's neighbours never leak across.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np

from planner.replay import LoggedStep
from scoring.schema import DIMENSIONS

LAMBDAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
GRID_STEP = 0.05


@dataclass(frozen=True)
class StepData:
    """One step as arrays: s[m, v, j, k] (NaN where not answered), q[m, v] (NaN: no answer), utility u[j],
    pool mask (the candidates the planner may choose)."""

    episode: str
    step: int
    ids: tuple[int, ...]
    s: np.ndarray
    q: np.ndarray
    u: np.ndarray
    pool: np.ndarray


def step_data(step: LoggedStep, next_step: LoggedStep | None, verdict_success: bool | None) -> StepData | None:
    calls = [c for c in step.record.get("scores", {}).get("calls", []) if c.get("parsed")]
    if not calls:
        return None
    agents = sorted({c["agent"] for c in calls})
    views = sorted({c["view"] for c in calls})
    ids = step.candidate_ids
    col = {j: i for i, j in enumerate(ids)}
    s = np.full((len(agents), len(views), len(ids), len(DIMENSIONS)), np.nan)
    q = np.full((len(agents), len(views)), np.nan)
    for c in calls:
        m, v = agents.index(c["agent"]), views.index(c["view"])
        q[m, v] = float(c["parsed"]["view_clarity"])
        for row in c["parsed"]["candidates"]:
            if int(row["id"]) in col:
                s[m, v, col[int(row["id"])]] = [float(row[k]) for k in DIMENSIONS]
    u = np.array([max(0.0, step.progress(j) - step.progress_now) for j in ids])
    u = np.where([step.progress(j) >= 1.0 for j in ids], 1.0, u)
    if step.chosen is not None and step.chosen in col:
        # The executed candidate is worth what really happened when reality fell short of the twin: a failure
        # that sent the plan back, or progress lost. (A shortfall in progress alone is not used: the other
        # candidates are only predicted, and a prediction is always a little optimistic.)
        real = _realised(step, next_step, verdict_success)
        if real is not None and real < 0.0:
            u[col[step.chosen]] = 0.0
        elif real is not None and real >= 1.0:
            u[col[step.chosen]] = max(u[col[step.chosen]], 1.0)
    clean = set(step.clean) or set(step.feasible)
    pool = np.array([j in clean for j in ids])
    return StepData(step.run_dir, step.step, ids, s, q, u, pool)


def _realised(step: LoggedStep, nxt: LoggedStep | None, success: bool | None) -> float | None:
    """Real progress of the executed step: 1 when the subtask (or the task) was done, < 0 when the plan went
    back or progress was lost, else the change of progress the next observation showed; None: unknown."""
    if nxt is None:
        return None if success is None else (1.0 if success else None)
    if nxt.record.get("subtask_index", 0) > step.record.get("subtask_index", 0):
        return 1.0
    if nxt.record.get("subtask_index", 0) < step.record.get("subtask_index", 0):
        return -1.0   # a failure sent the plan back to an earlier subtask
    delta = nxt.progress_now - step.progress_now
    return delta if delta < -0.05 else max(0.0, delta)


def fused_scores(d: StepData, w: np.ndarray, lam: float) -> np.ndarray:
    """S_j for every candidate (NaN when nobody scored it), exactly as scoring.fusion.fuse computes it.

    w: one weight vector (4,) -> S (J,), or a batch (W, 4) -> S (W, J), all fused at once."""
    w = np.asarray(w, dtype=float)
    single = w.ndim == 1
    w = np.atleast_2d(w)
    w = w / w.sum(axis=1, keepdims=True)
    x = np.einsum("mvjk,wk->wmvj", d.s, w)                                # NaN where not answered
    answered = ~np.isnan(d.q)                                             # (m, v)
    n_v = answered.sum(axis=0)
    q_v = np.where(n_v > 0, np.nansum(d.q, axis=0) / np.maximum(n_v, 1), 0.0)
    present = ~np.isnan(x)                                                # (w, m, v, j)
    cnt = present.sum(axis=1)                                             # (w, v, j)
    xs = np.where(present, x, 0.0)
    mean = xs.sum(axis=1) / np.maximum(cnt, 1)
    var = (np.where(present, (x - mean[:, None]) ** 2, 0.0)).sum(axis=1) / np.maximum(cnt, 1)
    has = cnt >= 2
    n_has = has.sum(axis=2)                                               # (w, v)
    sigma = np.where(n_has > 0, np.where(has, var, 0.0).sum(axis=2) / np.maximum(n_has, 1), 0.0)
    C = np.where(n_v > 0, q_v / (1.0 + lam * sigma), 0.0)                 # (w, v)
    total = np.where(n_v > 0, C, 0.0).sum(axis=1, keepdims=True)
    uniform = np.where(n_v > 0, 1.0 / max(1, int((n_v > 0).sum())), 0.0)
    Cn = np.where(total > 0, C / np.where(total > 0, total, 1.0), uniform)
    num = (xs * Cn[:, None, :, None]).sum(axis=2)                         # (w, m, j)
    den = (present * Cn[:, None, :, None]).sum(axis=2)
    ok = den > 0
    y = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
    n_agents = ok.sum(axis=1)
    S = np.where(n_agents > 0, y.sum(axis=1) / np.maximum(n_agents, 1), np.nan)
    return S[0] if single else S


def step_values(d: StepData, W: np.ndarray, lam: float) -> np.ndarray | None:
    """u(chosen) / max u over the pool for each weight vector in W (W, 4); None when nothing in the pool is worth
    anything (the step says nothing about weights)."""
    best = float(np.max(np.where(d.pool, d.u, -np.inf)))
    if not best > 0:
        return None
    S = fused_scores(d, np.atleast_2d(W), lam)
    S = np.where(d.pool[None, :] & ~np.isnan(S), S, -np.inf)
    choice = np.argmax(S, axis=1)            # the first maximum: ties to the lowest position, like the planner
    values = d.u[choice] / best
    return np.where(np.isfinite(S).any(axis=1), values, 0.0)


def step_value(d: StepData, w: np.ndarray, lam: float) -> float | None:
    v = step_values(d, np.asarray(w, dtype=float)[None, :], lam)
    return None if v is None else float(v[0])


def objective(data: list[StepData], w, lam: float) -> float:
    return float(objectives(data, np.asarray(w, dtype=float)[None, :], lam)[0])


def objectives(data: list[StepData], W: np.ndarray, lam: float) -> np.ndarray:
    """The objective of every weight vector in W (W, 4) on the data."""
    total, n = np.zeros(len(W)), 0
    for d in data:
        v = step_values(d, W, lam)
        if v is not None:
            total += v
            n += 1
    return total / n if n else total


def simplex_grid(step: float = GRID_STEP) -> list[np.ndarray]:
    n = int(round(1.0 / step))
    out = []
    for a, b, c in itertools.product(range(n + 1), repeat=3):
        d = n - a - b - c
        if d >= 0:
            out.append(np.array([a, b, c, d], dtype=float) / n)
    return out


@dataclass(frozen=True)
class WeightFit:
    weights: dict[str, float]
    lambda_C: float
    train: float                  # objective of the fitted weights on the training episodes
    validation: float
    base_train: float             # the logged config's weights, same data
    base_validation: float
    n_train_steps: int
    n_validation_steps: int
    train_episodes: tuple[str, ...]
    validation_episodes: tuple[str, ...]

    @property
    def improves(self) -> bool:
        return self.validation > self.base_validation + 1e-9


def split_episodes(episodes: list[str], validation_fraction: float = 0.3, seed: int = 0
                   ) -> tuple[list[str], list[str]]:
    eps = sorted(set(episodes))
    random.Random(seed).shuffle(eps)
    n_val = max(1, int(round(validation_fraction * len(eps)))) if len(eps) > 1 else 0
    return sorted(eps[n_val:]), sorted(eps[:n_val])


def fit_weights(data: list[StepData], base_weights: dict[str, float], base_lambda: float,
                validation_fraction: float = 0.3, seed: int = 0, grid_step: float = GRID_STEP) -> WeightFit:
    """Grid search of w on the simplex x lambda_C on the training episodes; scored on both splits."""
    train_eps, val_eps = split_episodes([d.episode for d in data], validation_fraction, seed)
    train = [d for d in data if d.episode in train_eps]
    val = [d for d in data if d.episode in val_eps] or train
    base_w = np.array([base_weights[k] for k in DIMENSIONS], dtype=float)
    grid = np.array(simplex_grid(grid_step))
    distance = np.abs(grid - base_w / base_w.sum()).sum(axis=1)
    best_key, best = None, None
    for lam in LAMBDAS:
        values = objectives(train, grid, lam)
        for i in range(len(grid)):
            # ties: the weights closest to the logged ones (the smallest change that does as well)
            key = (round(float(values[i]), 9), -float(distance[i]), -lam)
            if best_key is None or key > best_key:
                best_key, best = key, (grid[i], lam)
    w, lam = best
    return WeightFit(
        weights={k: round(float(v), 4) for k, v in zip(DIMENSIONS, w)}, lambda_C=float(lam),
        train=objective(train, w, lam), validation=objective(val, w, lam),
        base_train=objective(train, base_w, base_lambda), base_validation=objective(val, base_w, base_lambda),
        n_train_steps=len(train), n_validation_steps=len(val),
        train_episodes=tuple(train_eps), validation_episodes=tuple(val_eps))


def load_step_data(run_dirs: list[str]) -> list[StepData]:
    from planner.replay import load_steps
    from planner.runlog import read_records

    out = []
    for run_dir in run_dirs:
        steps = load_steps(run_dir)
        end = next((r for r in read_records(run_dir) if r.get("type") == "end"), {})
        success = end.get("lab_success")
        for i, step in enumerate(steps):
            nxt = steps[i + 1] if i + 1 < len(steps) and steps[i + 1].step == step.step + 1 else None
            d = step_data(step, nxt, success if i + 1 == len(steps) else None)
            if d is not None:
                out.append(d)
    return out
