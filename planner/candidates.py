"""From rolled-out candidates to a choice: the scoring request (the pictures and the twin's evidence per
candidate) and the pick, vetoed by the twin's one verdict per rollout (`Rollout.feasible`, `Rollout.clean`)."""

from __future__ import annotations

from collections.abc import Sequence

from render.renderer import RenderedView
from scoring import CandidateEvidence, ScoreRequest, ScoreTable, ViewImage
from sim.rollout import Rollout


def view_image(view: RenderedView) -> ViewImage:
    """A rendered view as the scorers take it: the PNG, its size and where each candidate's path ends."""
    height, width = view.rgb.shape[:2]
    return ViewImage(view.name, view.png, width, height, view.endpoints_px)


def evidence(r: Rollout) -> CandidateEvidence:
    """The twin's metrics of one rollout, as simjudge answers from them (VLM backends ignore them)."""
    return CandidateEvidence(
        id=r.candidate.id, feasible=r.feasible, collisions=r.collisions,
        min_clearance_m=r.min_clearance_m, joint_limit_margin_rad=r.joint_limit_margin_rad,
        ik_error_m=r.ik_error_m, path_length_m=r.path_length_m, duration_s=r.duration_s,
        progress=float(r.probe.get("progress", 0.0)), subtask_done=bool(r.probe.get("done", False)),
        task_success=bool(r.probe.get("success", False)), gripper=r.candidate.gripper,
        drop_height_m=r.release_drop_m)


def score_request(instruction: str, subtask: str, rollouts: Sequence[Rollout],
                  views: Sequence[RenderedView]) -> ScoreRequest:
    return ScoreRequest(instruction=instruction, subtask=subtask,
                        candidate_ids=tuple(r.candidate.id for r in rollouts),
                        views=tuple(view_image(v) for v in views),
                        evidence={r.candidate.id: evidence(r) for r in rollouts})


def choose(rollouts: Sequence[Rollout], table: ScoreTable) -> int | None:
    """The best-scored candidate the twin passed. The twin's verdict vetoes before any score counts: one that
    collides, knocks something over or drops what it holds from height is not sent while a clean one exists;
    an infeasible one never. None when no feasible candidate was scored."""
    chosen = table.best([r.candidate.id for r in rollouts if r.feasible and r.clean])
    if chosen is None:
        chosen = table.best([r.candidate.id for r in rollouts if r.feasible])
    return chosen
