"""From rolled-out candidates to a choice: the scoring request (the pictures and the twin's evidence per
candidate) and the pick, vetoed by the twin's one verdict per rollout (`Rollout.feasible`, `Rollout.clean`)."""

from __future__ import annotations

from collections.abc import Sequence

from render.renderer import RenderedView
from scoring import CandidateEvidence, ScoreRequest, ScoreTable, ViewImage
from sim.rollout import MAX_RELEASE_DROP_M, Rollout


def view_image(view: RenderedView) -> ViewImage:
    """A rendered view as the scorers take it: the PNG, its size and where each candidate's path ends."""
    height, width = view.rgb.shape[:2]
    return ViewImage(view.name, view.png, width, height, view.endpoints_px)


PUSH_TOL_M = 0.02   # a container or support the subtask places onto that moves farther than this was pushed


def reference_objects(goal: dict) -> set[str]:
    """The objects a subtask places something on or into (they must stay where they are): the second of every
    `on_top` / `inside` pair in the goal (outside `not`)."""
    (key, arg), = goal.items()
    if key in ("all", "any"):
        return set().union(*(reference_objects(g) for g in arg))
    return {arg[1]} if key in ("on_top", "inside") else set()


def pushed(r: Rollout) -> bool:
    """The rollout moved a container or support of the subtask (the twin allows touching them, not shoving)."""
    return float(r.probe.get("pushed_m", 0.0)) > PUSH_TOL_M


def restless(rollouts: Sequence[Rollout]) -> frozenset[str]:
    """Objects every rollout 'disturbed', staying in place included: the twin's own instability (LIBERO's orange
    juice carton, fitted a few degrees off its face, tips over by itself), not evidence against any candidate."""
    if len(rollouts) < 2:
        return frozenset()
    return frozenset.intersection(*(frozenset(r.disturbed) for r in rollouts))


def standing(rollouts: Sequence[Rollout]) -> frozenset[tuple[str, str]]:
    """Contacts every rollout had, staying in place included: there before any move (a finger the last step left
    against an obstacle part, LIBERO-Spatial task 4's drawer), not evidence against any candidate. Each rollout
    keeps a pair once, so one that also drags into it is not told apart: the scorers' pictures are."""
    if len(rollouts) < 2:
        return frozenset()
    return frozenset.intersection(*(frozenset((c.a, c.b) for c in r.contacts) for r in rollouts))


def _collisions(r: Rollout, ignore: frozenset[str] = frozenset(),
                touching: frozenset[tuple[str, str]] = frozenset()) -> int:
    contacts = sum(1 for c in r.contacts if (c.a, c.b) not in touching)
    return contacts + len(set(r.disturbed) - ignore) + int(pushed(r))


def _clean(r: Rollout, ignore: frozenset[str], touching: frozenset[tuple[str, str]] = frozenset()) -> bool:
    """The twin's verdict, taken again without the restless objects and standing contacts where it named one."""
    if r.clean or not (ignore & set(r.disturbed) or touching & {(c.a, c.b) for c in r.contacts}):
        return r.clean
    return _collisions(r, ignore, touching) == 0 and r.release_drop_m <= MAX_RELEASE_DROP_M


def evidence(r: Rollout, ignore: frozenset[str] = frozenset(),
             touching: frozenset[tuple[str, str]] = frozenset()) -> CandidateEvidence:
    """The twin's metrics of one rollout, as simjudge answers from them (VLM backends ignore them); `ignore`:
    the restless objects; `touching`: the standing contacts."""
    return CandidateEvidence(
        id=r.candidate.id, feasible=r.feasible, collisions=_collisions(r, ignore, touching),
        min_clearance_m=r.min_clearance_m, joint_limit_margin_rad=r.joint_limit_margin_rad,
        ik_error_m=r.ik_error_m, path_length_m=r.path_length_m, duration_s=r.duration_s,
        progress=float(r.probe.get("progress", 0.0)), subtask_done=bool(r.probe.get("done", False)),
        task_success=bool(r.probe.get("success", False)), gripper=r.candidate.gripper,
        drop_height_m=r.release_drop_m)


def score_request(instruction: str, subtask: str, rollouts: Sequence[Rollout],
                  views: Sequence[RenderedView]) -> ScoreRequest:
    ignore, touching = restless(rollouts), standing(rollouts)
    return ScoreRequest(instruction=instruction, subtask=subtask,
                        candidate_ids=tuple(r.candidate.id for r in rollouts),
                        views=tuple(view_image(v) for v in views),
                        evidence={r.candidate.id: evidence(r, ignore, touching) for r in rollouts})


def into_container(goal: dict) -> bool:
    """The subtask puts something inside a container (an `inside` leaf outside `not`)."""
    (key, arg), = goal.items()
    if key in ("all", "any"):
        return any(into_container(g) for g in arg)
    return key == "inside"


def _passed(r: Rollout, into: bool, ignore: frozenset[str], touching: frozenset[tuple[str, str]]) -> bool:
    """Clean (but for restless objects); or, putting something into a container, unclean only for a drop that
    ends with the subtask done in the twin (let go above a basket's rim, it falls in: the hand cannot go lower
    without shoving the basket)."""
    return _clean(r, ignore, touching) or (into and _collisions(r, ignore, touching) == 0
                                           and bool(r.probe.get("done")))


def choose(rollouts: Sequence[Rollout], table: ScoreTable, into: bool = False) -> int | None:
    """The best-scored candidate the twin passed. The twin's verdict vetoes before any score counts: one that
    collides, knocks something over (that the others leave standing), pushes the container it places into or
    drops what it holds from height is not sent while a passed one exists; an infeasible one never. Into a
    container (`into`), a drop that finishes the subtask passes, and a passed candidate that finishes it beats
    those that do not (a scorer rates the drop unsafe and would hover over the basket for ever). None when no
    feasible candidate was scored."""
    ignore, touching = restless(rollouts), standing(rollouts)
    tiers = [lambda r: _passed(r, into, ignore, touching) and not pushed(r), lambda r: not pushed(r), lambda r: True]
    if into:
        tiers.insert(0, lambda r: _passed(r, into, ignore, touching) and not pushed(r) and bool(r.probe.get("done")))
    for keep in tiers:
        chosen = table.best([r.candidate.id for r in rollouts if r.feasible and keep(r)])
        if chosen is not None:
            return chosen
    return None
