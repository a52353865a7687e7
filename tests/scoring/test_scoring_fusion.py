"""fuse() against numbers worked out by hand.

Every test uses weights {safety: 3, task_alignment: 1, efficiency: 0, feasibility: 0}, normalised to
w = (0.75, 0.25, 0, 0), so x = 0.75 * safety + 0.25 * task_alignment. Efficiency and feasibility get values
that would change x if their zero weights were ignored. lambda_C = 0.5 unless stated.

Base data (agent A, agent B; views front, top; candidates 1, 2), with x worked out:
    A front clarity 8: c1 s=8 a=4 -> 6 + 1   = 7 ; c2 s=4 a=8 -> 3 + 2   = 5
    A top   clarity 4: c1 s=10 a=2 -> 7.5+0.5 = 8 ; c2 s=2 a=6 -> 1.5+1.5 = 3
    B front clarity 6: c1 s=4 a=8 -> 3 + 2   = 5 ; c2 s=6 a=2 -> 4.5+0.5 = 5
    B top   clarity 2: c1 s=4 a=4 -> 3 + 1   = 4 ; c2 s=6 a=2 -> 4.5+0.5 = 5
"""

import math

import pytest

from scoring.fusion import fuse, normalize_weights
from scoring.schema import Answer

W = {"safety": 3, "task_alignment": 1, "efficiency": 0, "feasibility": 0}
LAM = 0.5


def ans(clarity, **cands):
    """ans(8, c1=(safety, alignment), ...) with efficiency 9 and feasibility 1, which must not matter."""
    scores = {
        int(k[1:]): {"safety": float(s), "task_alignment": float(a), "efficiency": 9.0, "feasibility": 1.0}
        for k, (s, a) in cands.items()
    }
    return Answer(view_clarity=float(clarity), scores=scores)


A_FRONT = ans(8, c1=(8, 4), c2=(4, 8))
A_TOP = ans(4, c1=(10, 2), c2=(2, 6))
B_FRONT = ans(6, c1=(4, 8), c2=(6, 2))
B_TOP = ans(2, c1=(4, 4), c2=(6, 2))


def base():
    return {"A": {"front": A_FRONT, "top": A_TOP}, "B": {"front": B_FRONT, "top": B_TOP}}


def test_general_two_agents_two_views_two_candidates():
    r = fuse(base(), W, LAM, candidate_ids=[1, 2])
    assert r.weights == {"safety": 0.75, "task_alignment": 0.25, "efficiency": 0.0, "feasibility": 0.0}
    assert r.x["A"]["front"] == {1: 7.0, 2: 5.0} and r.x["B"]["top"] == {1: 4.0, 2: 5.0}
    # q_front = (8 + 6)/2 = 7 ; q_top = (4 + 2)/2 = 3
    assert r.q == pytest.approx({"front": 7.0, "top": 3.0})
    # front: var(7, 5) = 1, var(5, 5) = 0 -> sigma = 0.5 ; top: var(8, 4) = 4, var(3, 5) = 1 -> sigma = 2.5
    assert r.sigma == pytest.approx({"front": 0.5, "top": 2.5})
    # C_front = 7 / (1 + 0.5*0.5) = 5.6 ; C_top = 3 / (1 + 0.5*2.5) = 4/3
    assert r.C == pytest.approx({"front": 5.6, "top": 4 / 3})
    # sum = 104/15 -> C'_front = 21/26, C'_top = 5/26
    assert r.C_norm == pytest.approx({"front": 21 / 26, "top": 5 / 26})
    # S_1 = 1/2 [ (21*7 + 5*8)/26 + (21*5 + 5*4)/26 ] = 1/2 [187/26 + 125/26] = 6
    # S_2 = 1/2 [ (21*5 + 5*3)/26 + (21*5 + 5*5)/26 ] = 1/2 [120/26 + 130/26] = 125/26
    assert r.S == pytest.approx({1: 6.0, 2: 125 / 26})
    assert r.M_prime == 2 and r.support == {1: 2, 2: 2}
    assert r.notes == ()


def test_weights_are_normalised_so_their_scale_does_not_matter():
    scaled = {k: 10 * v for k, v in W.items()}
    assert fuse(base(), scaled, LAM).S == pytest.approx(fuse(base(), W, LAM).S)


def test_agent_missing_a_view_is_renormalised_not_zero_filled():
    answers = base()
    del answers["B"]["top"]
    r = fuse(answers, W, LAM, candidate_ids=[1, 2])
    # front as before: q 7, sigma 0.5, C 5.6 ; top only A: q 4, sigma 0 (one agent), C 4
    assert r.sigma == pytest.approx({"front": 0.5, "top": 0.0})
    assert r.C == pytest.approx({"front": 5.6, "top": 4.0})
    # sum 9.6 -> C' = 7/12, 5/12
    assert r.C_norm == pytest.approx({"front": 7 / 12, "top": 5 / 12})
    # A: c1 = (7*7 + 5*8)/12 = 89/12 ; c2 = (7*5 + 5*3)/12 = 50/12
    # B answered front only: weight renormalised to 1 -> c1 = 5, c2 = 5
    # S_1 = (89/12 + 60/12)/2 = 149/24 ; S_2 = (50/12 + 60/12)/2 = 55/12
    # (zero-filling B's top would give S_1 = (89 + 35)/24 = 124/24 instead)
    assert r.S == pytest.approx({1: 149 / 24, 2: 55 / 12})
    assert r.M_prime == 2
    assert any("agent 'B'" in n and "top" in n for n in r.notes)


def test_candidate_left_out_by_an_agent_averages_over_those_that_scored_it():
    # One view. A: c1 x=7, c3 s=10 a=6 -> 7.5 + 1.5 = 9 ; B: c1 x=5, never scores c3. Nobody scores c2.
    answers = {"A": {"front": ans(8, c1=(8, 4), c3=(10, 6))}, "B": {"front": ans(6, c1=(4, 8))}}
    r = fuse(answers, W, LAM, candidate_ids=[1, 2, 3])
    # sigma over candidates with >= 2 scores: only c1, var(7, 5) = 1 ; C = 7 / 1.5 ; C' = 1
    assert r.sigma == pytest.approx({"front": 1.0})
    assert r.C_norm == pytest.approx({"front": 1.0})
    # S_1 = (7 + 5)/2 = 6 ; S_3 = 9 / 1 (B is not counted; zero-filling would give 4.5) ; c2 absent
    assert r.S == pytest.approx({1: 6.0, 3: 9.0})
    assert 2 not in r.S
    assert r.support == {1: 2, 3: 1}
    assert any("[2]" in n for n in r.notes)


def test_view_with_zero_clarity_gets_zero_weight():
    answers = base()
    answers["A"]["top"] = ans(0, c1=(10, 2), c2=(2, 6))
    answers["B"]["top"] = ans(0, c1=(4, 4), c2=(6, 2))
    # A third agent that only answered the zero-clarity view: it gives no evidence about any candidate.
    answers["C"] = {"top": ans(0, c1=(0, 0), c2=(10, 10))}
    r = fuse(answers, W, LAM, candidate_ids=[1, 2])
    # q_top = 0 -> C_top = 0 -> C' = {front: 1, top: 0}
    assert r.q["top"] == 0.0 and r.C["top"] == 0.0
    assert r.C_norm == pytest.approx({"front": 1.0, "top": 0.0})
    # S from front only: S_1 = (7 + 5)/2 = 6 ; S_2 = (5 + 5)/2 = 5 (the general case gave 125/26)
    assert r.S == pytest.approx({1: 6.0, 2: 5.0})
    # C answered, so it counts in M', but enters no S_j.
    assert r.M_prime == 3 and r.support == {1: 2, 2: 2}
    assert any("view 'top': zero confidence" in n for n in r.notes)
    assert any("agent 'C'" in n for n in r.notes)


def test_single_agent_has_no_disagreement():
    for lam in (0.5, 100.0):  # sigma = 0, so lambda_C cannot matter
        r = fuse({"A": {"front": A_FRONT, "top": A_TOP}}, W, lam)
        assert r.sigma == {"front": 0.0, "top": 0.0}
        # C = q: 8 and 4 -> C' = 2/3, 1/3
        assert r.C_norm == pytest.approx({"front": 2 / 3, "top": 1 / 3})
        # S_1 = 2/3*7 + 1/3*8 = 22/3 ; S_2 = 2/3*5 + 1/3*3 = 13/3
        assert r.S == pytest.approx({1: 22 / 3, 2: 13 / 3})
        assert r.M_prime == 1


def test_all_views_zero_clarity_fall_back_to_uniform():
    answers = {
        agent: {view: Answer(0.0, a.scores) for view, a in per_view.items()}
        for agent, per_view in base().items()
    }
    r = fuse(answers, W, LAM)
    assert r.C == {"front": 0.0, "top": 0.0}
    assert r.C_norm == pytest.approx({"front": 0.5, "top": 0.5})
    # S_1 = 1/2 [ (7+8)/2 + (5+4)/2 ] = 6 ; S_2 = 1/2 [ (5+3)/2 + (5+5)/2 ] = 4.5
    assert r.S == pytest.approx({1: 6.0, 2: 4.5})
    assert any("uniform" in n for n in r.notes)


def test_no_answers_gives_empty_result():
    r = fuse({"A": {}}, W, LAM)
    assert r.S == {} and r.M_prime == 0 and r.notes == ("no valid answers",)


def test_lambda_penalises_disagreement():
    # With lambda 0, C = q: 7 and 3 -> C' = 0.7, 0.3 ; S_2 = 1/2 [0.7*5 + 0.3*3 + 0.7*5 + 0.3*5] = 4.7
    r = fuse(base(), W, 0.0)
    assert r.C_norm == pytest.approx({"front": 0.7, "top": 0.3})
    assert r.S[2] == pytest.approx(4.7)


@pytest.mark.parametrize(
    "weights, message",
    [
        ({**W, "safety": -1}, "weights.safety: expected a number >= 0, got -1"),
        ({**W, "safety": math.nan}, "weights.safety: expected a number >= 0"),
        ({k: 0 for k in W}, "all weights are zero"),
        ({**W, "saftey": 1}, "unknown dimension 'saftey'; did you mean 'safety'?"),
        ({"safety": 1, "task_alignment": 1}, "missing dimension(s) efficiency, feasibility"),
    ],
)
def test_bad_weights(weights, message):
    with pytest.raises(ValueError) as info:
        normalize_weights(weights)
    assert message in str(info.value)


def test_bad_lambda_and_stranger_ids():
    with pytest.raises(ValueError, match="lambda_C"):
        fuse(base(), W, -0.1)
    with pytest.raises(ValueError, match=r"scores unknown candidate\(s\) \[2\]"):
        fuse(base(), W, LAM, candidate_ids=[1])
