"""`antigrounding replay`: ask another scoring config about every logged step's pictures, without a lab.

A logged step holds what its agents were asked (steps.jsonl: subtask, candidate ids, the drawn end points and
the twin's rollout evidence under "request"; step_NNN/*.png: the pictures). Replay rebuilds that ScoreRequest,
scores it with the new config (any backend; the answer cache is used when given) and applies the planner's
own choice rule (the twin's veto first: the best clean candidate, else the best feasible one). Per step it
reports whether the new config chooses the same candidate, and how it ranks the candidates that the twin
showed making progress (subtask progress above the step's own, `progress_now`, without a collision or a high
release): the rank of the best-ranked of them among the vetted candidates, and whether the choice is one of
them. `--rerun` runs the logged episodes again in the sim lab with the new config (planner/batch.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from planner.errors import TaskError
from planner.runlog import read_header, read_records
from scoring import CandidateEvidence, Scorer, ScoreRequest, ScoreTable, ViewImage

PROGRESS_EPS = 0.01   # a candidate makes progress when its twin progress beats the step's by this much


@dataclass(frozen=True)
class LoggedStep:
    run_dir: str
    task: str
    task_path: str
    seed: int
    step: int
    instruction: str
    subtask: str
    candidate_ids: tuple[int, ...]
    images: dict[str, str]                              # view -> PNG path
    endpoints: dict[str, dict[int, tuple[float, float] | None]]
    evidence: dict[int, CandidateEvidence] | None
    rows: dict[int, dict]                               # candidate id -> the logged candidate row
    chosen: int | None
    progress_now: float
    record: dict = field(repr=False, default_factory=dict)

    @property
    def clean(self) -> list[int]:
        return [j for j, r in self.rows.items() if r.get("feasible") and r.get("clean")]

    @property
    def feasible(self) -> list[int]:
        return [j for j, r in self.rows.items() if r.get("feasible")]

    def progress(self, cid: int) -> float:
        if self.evidence is not None and cid in self.evidence:
            ev = self.evidence[cid]
            return 1.0 if (ev.subtask_done or ev.task_success) else ev.progress
        value = self.rows[cid].get("progress")
        return float(value) if value is not None else 0.0

    @property
    def progress_ids(self) -> list[int]:
        """Clean candidates whose twin rollout advanced the subtask beyond where the step started."""
        return [j for j in self.clean if self.progress(j) > self.progress_now + PROGRESS_EPS]


def _evidence(raw: dict | None) -> dict[int, CandidateEvidence] | None:
    if not raw:
        return None
    out = {}
    for k, ev in raw.items():
        ev = dict(ev)
        if ev.get("min_clearance_m") is None:
            ev["min_clearance_m"] = math.inf   # written as null when nothing was within range
        out[int(k)] = CandidateEvidence(**ev)
    return out


def load_steps(run_dir: str) -> list[LoggedStep]:
    """Every step record of a run that chose among scored candidates (TaskError when it is not a run dir)."""
    if not os.path.isfile(os.path.join(run_dir, "steps.jsonl")):
        raise TaskError(f"{run_dir}: not a run directory (no steps.jsonl)")
    header = read_header(run_dir)
    out = []
    for rec in read_records(run_dir):
        if rec.get("type") != "step" or rec.get("done") or not rec.get("candidates"):
            continue
        request = rec.get("request") or {}
        endpoints = {v["name"]: {int(k): (tuple(uv) if uv is not None else None)
                                 for k, uv in v.get("endpoints_px", {}).items()}
                     for v in request.get("views", [])}
        rows = {int(c["id"]): c for c in rec["candidates"]}
        progress_now = rec.get("progress_now")
        if progress_now is None:   # logged before progress_now was recorded: the least any candidate reached
            progress_now = min((float(c.get("progress") or 0.0) for c in rec["candidates"]), default=0.0)
        out.append(LoggedStep(
            run_dir=run_dir, task=header.get("task", ""), task_path=header.get("task_path", ""),
            seed=int(header.get("seed", 0)), step=int(rec["step"]), instruction=header.get("instruction", ""),
            subtask=rec.get("subtask", ""), candidate_ids=tuple(rows),
            images={v: os.path.join(run_dir, rel) for v, rel in rec.get("images", {}).items()},
            endpoints=endpoints, evidence=_evidence(request.get("evidence")), rows=rows,
            chosen=rec.get("chosen"), progress_now=float(progress_now), record=rec))
    return out


def build_request(step: LoggedStep, views: tuple[str, ...] | None = None) -> ScoreRequest:
    """The ScoreRequest the step's agents were asked, rebuilt from the log (pictures read from disk)."""
    from PIL import Image

    images = []
    for name, path in step.images.items():
        if views is not None and name not in views:
            continue
        try:
            with open(path, "rb") as fh:
                png = fh.read()
            with Image.open(path) as img:
                width, height = img.size
        except OSError as exc:
            raise TaskError(f"{step.run_dir} step {step.step}: cannot read picture {path}: {exc}") from None
        images.append(ViewImage(name, png, width, height, step.endpoints.get(name, {})))
    if not images:
        raise TaskError(f"{step.run_dir} step {step.step}: no saved picture of the views {views}")
    return ScoreRequest(step.instruction or step.subtask, step.subtask, step.candidate_ids, tuple(images),
                        evidence=step.evidence)


def choose(table_S: dict[int, float], step: LoggedStep) -> int | None:
    """The planner's rule: the best clean candidate, else the best feasible one (ties to the lowest id)."""
    for pool in (step.clean, step.feasible):
        scored = sorted(j for j in pool if j in table_S)
        if scored:
            return max(scored, key=lambda j: table_S[j])
    return None


def progress_rank(table_S: dict[int, float], step: LoggedStep) -> int | None:
    """1-based rank of the best-ranked progress candidate among the clean scored candidates (None: none)."""
    pool = sorted((j for j in step.clean if j in table_S), key=lambda j: (-table_S[j], j))
    good = set(step.progress_ids)
    for rank, j in enumerate(pool, 1):
        if j in good:
            return rank
    return None


@dataclass(frozen=True)
class StepVerdict:
    run_dir: str
    step: int
    logged_chosen: int | None
    new_chosen: int | None
    same: bool
    progress_ids: tuple[int, ...]
    logged_rank: int | None
    new_rank: int | None
    logged_progress: bool
    new_progress: bool
    M_prime: int
    backends: tuple[str, ...]
    error: str | None = None

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def replay_step(step: LoggedStep, scorer: Scorer) -> tuple[StepVerdict, ScoreTable | None]:
    logged_S = {int(j): float(s) for j, s in (step.record.get("scores", {}).get("S") or {}).items()}
    good = set(step.progress_ids)
    try:
        request = build_request(step, tuple(scorer.config.views))
    except (TaskError, ValueError) as exc:
        return StepVerdict(step.run_dir, step.step, step.chosen, None, False, tuple(sorted(good)),
                           progress_rank(logged_S, step), None, step.chosen in good, False, 0, (), str(exc)), None
    if step.evidence is None and any(a.backend == "simjudge" for a in scorer.agents):
        err = "the log has no rollout evidence for this step (logged by an older version); simjudge cannot answer"
        return StepVerdict(step.run_dir, step.step, step.chosen, None, False, tuple(sorted(good)),
                           progress_rank(logged_S, step), None, step.chosen in good, False, 0, (), err), None
    table = scorer.score(request)
    new = choose(table.S, step)
    return StepVerdict(step.run_dir, step.step, step.chosen, new, new == step.chosen, tuple(sorted(good)),
                       progress_rank(logged_S, step), progress_rank(table.S, step), step.chosen in good,
                       new in good, table.M_prime, tuple(sorted({c.backend for c in table.calls})),
                       table.error), table


def replay_runs(run_dirs: list[str], scorer: Scorer, on_step=None) -> list[StepVerdict]:
    verdicts = []
    for run_dir in run_dirs:
        for step in load_steps(run_dir):
            verdict, _ = replay_step(step, scorer)
            verdicts.append(verdict)
            if on_step is not None:
                on_step(verdict)
    return verdicts


def summarise_replay(verdicts: list[StepVerdict]) -> dict:
    """Agreement with the logged choices and how often each config's choice makes twin progress."""
    scored = [v for v in verdicts if v.error is None and v.new_chosen is not None]
    with_progress = [v for v in scored if v.progress_ids]

    def mrr(ranks: list[int | None]) -> float | None:
        return None if not ranks else sum(1.0 / r for r in ranks if r) / len(ranks)

    return {
        "steps": len(verdicts), "scored": len(scored),
        "same_choice": sum(v.same for v in scored) / len(scored) if scored else None,
        "steps_with_progress_candidates": len(with_progress),
        "logged_choice_makes_progress": (sum(v.logged_progress for v in with_progress) / len(with_progress)
                                         if with_progress else None),
        "new_choice_makes_progress": (sum(v.new_progress for v in with_progress) / len(with_progress)
                                      if with_progress else None),
        "logged_progress_mrr": mrr([v.logged_rank for v in with_progress]),
        "new_progress_mrr": mrr([v.new_rank for v in with_progress]),
        "errors": sum(1 for v in verdicts if v.error),
    }


def format_replay(verdicts: list[StepVerdict], summary: dict, backends: str) -> str:
    lines = [f"{'run':34s} {'step':>4s} {'logged':>6s} {'new':>4s} {'same':>4s} {'progress ids':18s} "
             f"{'rank old':>8s} {'rank new':>8s}"]
    for v in verdicts:
        prog = ",".join(map(str, v.progress_ids))[:18]
        lines.append(f"{os.path.basename(v.run_dir)[:34]:34s} {v.step:4d} {_s(v.logged_chosen):>6s} "
                     f"{_s(v.new_chosen):>4s} {'yes' if v.same else 'no':>4s} {prog:18s} {_s(v.logged_rank):>8s} "
                     f"{_s(v.new_rank):>8s}" + (f"  error: {v.error}" if v.error else ""))

    def pct(x):
        return "-" if x is None else f"{100 * x:.0f}%"

    def num(x):
        return "-" if x is None else f"{x:.2f}"

    lines.append(f"replayed with {backends}: {summary['scored']}/{summary['steps']} steps scored; same choice "
                 f"{pct(summary['same_choice'])}; among {summary['steps_with_progress_candidates']} steps with a "
                 f"progress candidate the choice makes progress: logged {pct(summary['logged_choice_makes_progress'])}"
                 f", new {pct(summary['new_choice_makes_progress'])}; progress MRR logged "
                 f"{num(summary['logged_progress_mrr'])}, new {num(summary['new_progress_mrr'])}")
    return "\n".join(lines)


def _s(v) -> str:
    return "-" if v is None else str(v)


def logged_episodes(run_dirs: list[str]) -> list[tuple[str, int]]:
    """(task path, seed) of each run, for --rerun."""
    out = []
    for d in run_dirs:
        h = read_header(d)
        if not h.get("task_path"):
            raise TaskError(f"{d}: run.json names no task_path; cannot rerun it")
        out.append((h["task_path"], int(h.get("seed", 0))))
    return out
