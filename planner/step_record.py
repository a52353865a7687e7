"""What the run log keeps of one MPC step: the step record and its per-candidate rows (file format: the run
directory's steps, read by the report, replay and optimise)."""

from __future__ import annotations

from scoring import ScoreTable
from sim.geometry import Pose
from sim.rollout import Rollout

STALLED_NOTE = "the last gripper command changed nothing: no stay-and-toggle candidate"


def candidate_row(r: Rollout, table: ScoreTable) -> dict:
    return {"id": r.candidate.id, "S": table.S.get(r.candidate.id), "gripper": r.candidate.gripper,
            "label": r.candidate.label, "goal_xyz": list(r.candidate.goal.xyz), "feasible": r.feasible,
            "reason": r.reason, "collisions": r.collisions, "clean": r.clean,
            "contacts": [f"{c.a}-{c.b}" for c in r.contacts], "disturbed": list(r.disturbed),
            "progress": r.probe.get("progress"), "path_length_m": r.path_length_m, "drop_m": r.release_drop_m,
            "mean_scores": dict(table.fusion.mean_scores.get(r.candidate.id, {}))}


def step_record(k: int, subtask_index: int, subtask: str, t: int, radius_m: float, recon: dict, table: ScoreTable,
                chosen: int | None, tcp: Pose, gripper_width_m: float, stalled: bool) -> dict:
    """The record of step k before its images, rows and execution are added."""
    return {"type": "step", "step": k, "done": False, "subtask_index": subtask_index,
            "subtask": subtask, "t": t, "radius_m": radius_m,
            "reconstruction": recon, "backends": sorted({c.backend for c in table.calls}),
            "M_prime": table.M_prime, "view_confidence": table.view_confidence,
            "scores": table.to_dict(), "chosen": chosen, "score_cache_hit_rate": table.cache_hit_rate,
            "tcp_xyz": list(tcp.xyz), "gripper_width_m": gripper_width_m,
            "note": STALLED_NOTE if stalled else ""}


def look_again_record(k: int, subtask_index: int, subtask: str, recon: dict, reason: str,
                      timings: dict[str, float]) -> dict:
    """The record of a step that only looked again (nothing sampled, scored or executed)."""
    return {"type": "step", "step": k, "done": False, "subtask_index": subtask_index, "subtask": subtask,
            "reconstruction": recon, "chosen": None, "timings_s": timings, "hold_reason": reason}


def failure_record(failure, acted: bool, subtask_from: int, subtask_to: int, redo_say: str, symbols, image: str,
                   agents: list[dict]) -> dict:
    """A diagnosed failure as the step record keeps it (`record["failure"]`): its type and facts, whether the
    planner acted on it (MPCConfig.failure_recovery), the rewind, the symbols picture and the agents' answers."""
    return {**failure.to_dict(), "acted": acted, "subtask_from": subtask_from, "subtask_to": subtask_to,
            "redo_say": redo_say, "symbols": list(symbols), "image": image, "agents": agents}
