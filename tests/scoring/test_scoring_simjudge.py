"""simjudge: rollout metrics -> JSON answers that parse like a VLM's."""

import json
import math

import pytest

from scoring.backend import AgentConfig, make_backend
from scoring.errors import BackendError
from scoring.request import ScoreRequest
from scoring.schema import parse_answer
from scoring.simjudge import SimJudgeBackend, view_clarity_score

AGENT = AgentConfig(name="simjudge-0", backend="simjudge", model="rollout-metrics")


def scores_of(request, view_name="front", agent=AGENT):
    text = SimJudgeBackend().answer(request, request.view(view_name), agent)
    assert isinstance(text, str)
    return parse_answer(text, request.candidate_ids)


def test_registered_and_answers_valid_json(request_with, evidence):
    backend = make_backend("simjudge")
    assert isinstance(backend, SimJudgeBackend)
    request = request_with([evidence(1), evidence(2)])
    raw = backend.answer(request, request.views[0], AGENT)
    assert set(json.loads(raw)) == {"view_clarity", "candidates"}
    assert sorted(parse_answer(raw, [1, 2]).scores) == [1, 2]


def test_safety_orders_collision_below_near_miss_below_clear(request_with, evidence):
    request = request_with(
        [
            evidence(1, collisions=1, min_clearance_m=0.10),
            evidence(2, min_clearance_m=0.01),  # near miss: 10 * 0.01/0.05 = 2, floored at 5
            evidence(3, min_clearance_m=0.04),  # 10 * 0.04/0.05 = 8
            evidence(4, min_clearance_m=math.inf),  # nothing in range
            evidence(5, min_clearance_m=0.0),  # touching a non-target object
        ]
    )
    s = {cid: v["safety"] for cid, v in scores_of(request).scores.items()}
    assert s == pytest.approx({1: 0.0, 2: 5.0, 3: 8.0, 4: 10.0, 5: 0.0})


def test_feasibility(request_with, evidence):
    request = request_with(
        [
            evidence(1, feasible=False),
            evidence(2, joint_limit_margin_rad=0.3, ik_error_m=0.0),  # 10 * 1 * (0.5 + 0.5)
            evidence(3, joint_limit_margin_rad=0.0, ik_error_m=0.0),  # 10 * 1 * 0.5
            evidence(4, joint_limit_margin_rad=0.6, ik_error_m=0.01),  # 10 * 0.5 * 1
            evidence(5, joint_limit_margin_rad=0.6, ik_error_m=0.03),  # ik >= 2 cm -> 0
        ]
    )
    f = {cid: v["feasibility"] for cid, v in scores_of(request).scores.items()}
    assert f == pytest.approx({1: 0.0, 2: 10.0, 3: 5.0, 4: 5.0, 5: 0.0})


def test_task_alignment_and_efficiency(request_with, evidence):
    request = request_with(
        [
            evidence(1, subtask_done=True, progress=0.2),
            evidence(2, task_success=True, progress=0.0),
            evidence(3, progress=0.4),
            evidence(4, path_length_m=0.0),
            evidence(5, path_length_m=0.6),
        ]
    )
    answer = scores_of(request)
    a = {cid: v["task_alignment"] for cid, v in answer.scores.items()}
    assert a[1] == 10.0 and a[2] == 10.0 and a[3] == pytest.approx(4.0)
    assert answer.scores[4]["efficiency"] == 10.0
    assert answer.scores[5]["efficiency"] == pytest.approx(10 / math.e, abs=1e-3)


def test_view_clarity_drops_when_endpoints_overlap_or_leave_the_image(view):
    ids = (1, 2, 3, 4)
    spread = view(endpoints={1: (100, 100), 2: (300, 100), 3: (100, 300), 4: (300, 300)})
    # Nearest neighbours at 10 px -> 10 * 1 * 10/40 = 2.5
    crowded = view(endpoints={1: (100, 100), 2: (110, 100), 3: (100, 110), 4: (110, 110)})
    # Two of four inside (one off-image, one behind the camera) -> 10 * 0.5 * 1 = 5
    partial = view(endpoints={1: (100, 100), 2: (300, 100), 3: (700, 100), 4: None})
    assert view_clarity_score(spread, ids) == pytest.approx(10.0)
    assert view_clarity_score(crowded, ids) == pytest.approx(2.5)
    assert view_clarity_score(partial, ids) == pytest.approx(5.0)
    assert view_clarity_score(view(endpoints={}), ids) == 0.0
    # A single visible candidate cannot overlap anything.
    assert view_clarity_score(view(endpoints={1: (5, 5)}), (1,)) == pytest.approx(10.0)


def test_clarity_differs_per_view_but_scores_do_not(view, evidence):
    ids = (1, 2)
    request = ScoreRequest(
        instruction="stack",
        subtask="",
        candidate_ids=ids,
        views=(view("front", {1: (100, 100), 2: (300, 100)}), view("top", {1: (100, 100), 2: (104, 100)})),
        evidence={1: evidence(1), 2: evidence(2, collisions=2)},
    )
    front, top = scores_of(request, "front"), scores_of(request, "top")
    assert front.view_clarity == pytest.approx(10.0) and top.view_clarity == pytest.approx(1.0)
    assert front.scores == top.scores


def test_missing_evidence_is_a_clear_error(view, evidence):
    no_evidence = ScoreRequest(instruction="stack", subtask="", candidate_ids=(1, 2), views=(view(),))
    with pytest.raises(BackendError, match="needs rollout evidence"):
        SimJudgeBackend().answer(no_evidence, no_evidence.views[0], AGENT)
    partial = ScoreRequest(
        instruction="stack", subtask="", candidate_ids=(1, 2), views=(view(),), evidence={1: evidence(1)}
    )
    with pytest.raises(BackendError, match=r"no CandidateEvidence for candidate\(s\) \[2\]"):
        SimJudgeBackend().answer(partial, partial.views[0], AGENT)


def test_noise_is_deterministic_per_seed_and_stays_in_range(request_with, evidence):
    request = request_with(
        [evidence(1, min_clearance_m=0.0), evidence(2, path_length_m=0.0, subtask_done=True)]
    )
    backend = SimJudgeBackend()

    def raw(**params):
        return backend.answer(request, request.views[0], AgentConfig("sj", "simjudge", params=params))

    assert raw(noise_std=1.0, seed=3) == raw(noise_std=1.0, seed=3)
    assert raw(noise_std=1.0, seed=3) != raw(noise_std=1.0, seed=4)
    assert raw(noise_std=0.0, seed=3) == raw()  # no noise: the exact mapping
    noisy = parse_answer(raw(noise_std=5.0, seed=1), [1, 2])  # large noise must still be clipped to [0, 10]
    assert noisy.scores != parse_answer(raw(), [1, 2]).scores
    # Without a seed, the agent name seeds the noise: two agents disagree, each reproducibly.
    a = backend.answer(request, request.views[0], AgentConfig("sj-a", "simjudge", params={"noise_std": 1.0}))
    b = backend.answer(request, request.views[0], AgentConfig("sj-b", "simjudge", params={"noise_std": 1.0}))
    assert a != b


def test_bad_agent_params_are_reported(request_with, evidence):
    request = request_with([evidence(1)])
    agent = AgentConfig("sj", "simjudge", params={"noise_sd": 1.0})
    with pytest.raises(
        BackendError, match="params.noise_sd: unknown simjudge parameter; did you mean 'noise_std'"
    ):
        SimJudgeBackend().answer(request, request.views[0], agent)
    with pytest.raises(BackendError, match="noise_std: expected a number >= 0"):
        SimJudgeBackend().answer(
            request, request.views[0], AgentConfig("sj", "simjudge", params={"noise_std": -1})
        )


def test_dropping_an_object_from_height_costs_safety():
    from scoring.request import CandidateEvidence
    from scoring.simjudge import safety_score

    def ev(drop):
        return CandidateEvidence(id=0, feasible=True, collisions=0, min_clearance_m=0.1, joint_limit_margin_rad=1.0,
                                 ik_error_m=0.0, path_length_m=0.1, duration_s=1.0, progress=1.0, subtask_done=True,
                                 task_success=False, gripper="open", drop_height_m=drop)

    assert safety_score(ev(0.0)) == 10.0 and safety_score(ev(0.01)) == 10.0
    assert safety_score(ev(0.025)) == pytest.approx(5.0)   # halfway through the 1..4 cm ramp
    assert safety_score(ev(0.04)) == 0.0 and safety_score(ev(0.10)) == 0.0
