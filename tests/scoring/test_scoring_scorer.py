"""Scorer: calls every (agent, view), survives failing agents, fuses only valid answers."""

import json

import pytest

from scoring.backend import AgentConfig, Backend, make_backend
from scoring.config import ScoringConfig
from scoring.errors import UnknownBackendError
from scoring.fusion import fuse
from scoring.schema import parse_answer
from scoring.scorer import CallExecutor, Scorer, SerialExecutor

WEIGHTS = {"safety": 0.25, "task_alignment": 0.45, "efficiency": 0.1, "feasibility": 0.2}
SJ = AgentConfig("simjudge-0", "simjudge", "rollout-metrics")


def config(agents, views=("front", "top")):
    return ScoringConfig(weights=WEIGHTS, lambda_C=0.5, agents=tuple(agents), views=tuple(views))


class Raising(Backend):
    name = "raising"

    def answer(self, request, view, agent):
        raise RuntimeError(f"boom on {view.name}")


class Fixed(Backend):
    """Returns the same text for every call."""

    name = "fixed"

    def __init__(self, text):
        self.text = text

    def answer(self, request, view, agent):
        return self.text


@pytest.fixture
def request3(request_with, evidence):
    return request_with(
        [
            evidence(1, collisions=1),
            evidence(2, subtask_done=True),
            evidence(3, feasible=False, progress=0.9),
        ]
    )


def test_one_failing_agent_is_left_out_and_recorded(request3):
    agents = [SJ, AgentConfig("broken", "raising", "none")]
    table = Scorer(agents, config(agents), backends={"raising": Raising()}).score(request3)
    assert table.M_prime == 1 and table.error is None
    # S must equal fusing simjudge's answers alone: the broken agent adds neither zeros nor a count.
    simjudge = make_backend("simjudge")
    sj_answers = {
        v.name: parse_answer(simjudge.answer(request3, v, SJ), request3.candidate_ids) for v in request3.views
    }
    expected = fuse({"simjudge-0": sj_answers}, WEIGHTS, 0.5, request3.candidate_ids)
    assert table.S == pytest.approx(expected.S)
    assert len(table.calls) == 4  # 2 agents x 2 views, in agent-major order
    broken = [c for c in table.calls if c.agent == "broken"]
    assert [c.view for c in broken] == ["front", "top"]
    assert broken[0].error == "RuntimeError: boom on front" and broken[0].parsed is None
    assert broken[0].backend == "raising" and broken[0].raw_text is None
    ok = [c for c in table.calls if c.agent == "simjudge-0"]
    assert all(c.error is None and c.parsed is not None and c.latency_s >= 0 for c in ok)
    assert ok[0].backend == "simjudge" and ok[0].model == "rollout-metrics"


def test_all_agents_failing_gives_empty_S_and_an_error(request3):
    agents = [AgentConfig("b1", "raising"), AgentConfig("b2", "raising")]
    table = Scorer(agents, config(agents), backends={"raising": Raising()}).score(request3)
    assert table.S == {} and table.M_prime == 0
    assert "all 4 agent calls failed" in table.error and "RuntimeError: boom on front" in table.error
    assert table.best() is None and table.best([1, 2, 3]) is None


def test_malformed_answers_are_recorded_not_raised(request3):
    bad_score = json.dumps(
        {
            "view_clarity": 5,
            "candidates": [{"id": 99, "safety": 1, "task_alignment": 1, "efficiency": 1, "feasibility": 1}],
        }
    )
    agents = [
        AgentConfig("chatty", "chatty"),
        AgentConfig("overflow", "overflow"),
        AgentConfig("dict", "dict"),
    ]
    backends = {
        "chatty": Fixed("I think candidate 2 is best."),
        "overflow": Fixed(bad_score),
        "dict": Fixed({"view_clarity": 5, "candidates": []}),
    }
    table = Scorer(agents, config(agents), backends=backends).score(request3)
    assert table.S == {} and table.error
    by_agent = {c.agent: c for c in table.calls if c.view == "front"}
    assert by_agent["chatty"].error.startswith("AnswerError: answer is not valid JSON")
    assert by_agent["chatty"].raw_text == "I think candidate 2 is best."  # kept for the run log
    assert by_agent["overflow"].error == (
        "AnswerError: candidates[0].id: 99 is not a candidate in this request (expected one of [1, 2, 3])"
    )
    assert by_agent["dict"].error == "TypeError: backend 'fixed' returned dict, expected str"


def test_best_respects_feasibility_and_scores(request3):
    table = Scorer([SJ], config([SJ])).score(request3)
    # One agent and identical scores in both views, so S_j = x_j = sum_k w_k s_jk. Base evidence:
    # clearance 0.1 -> safety 10, margin 0.5 -> feasibility 10, progress 0.5 -> alignment 5,
    # path 0.3 m -> efficiency 10 exp(-0.5) = 6.065 (simjudge writes 3 decimals).
    # 1 collides:     0.25*0  + 0.45*5  + 0.1*6.065 + 0.2*10 = 4.8565
    # 2 is done:      0.25*10 + 0.45*10 + 0.1*6.065 + 0.2*10 = 9.6065
    # 3 infeasible:   0.25*10 + 0.45*9  + 0.1*6.065 + 0.2*0  = 7.1565
    assert table.S == pytest.approx({1: 4.8565, 2: 9.6065, 3: 7.1565}, abs=1e-9)
    assert table.best() == 2
    assert table.best([1, 3]) == 3
    assert table.best([1]) == 1
    assert table.best([99]) is None


def test_best_breaks_ties_towards_the_lowest_id(request_with, evidence):
    request = request_with([evidence(5), evidence(4)])  # identical evidence -> identical S
    table = Scorer([SJ], config([SJ])).score(request)
    assert table.S[4] == table.S[5]
    assert table.best() == 4


def test_to_dict_is_json_and_keeps_raw_text(request3):
    agents = [SJ, AgentConfig("broken", "raising")]
    table = Scorer(agents, config(agents), backends={"raising": Raising()}).score(request3)
    data = json.loads(json.dumps(table.to_dict(), allow_nan=False))
    assert set(data["S"]) == {"1", "2", "3"}
    assert data["M_prime"] == 1
    assert data["calls"][0]["raw_text"] == table.calls[0].raw_text and data["calls"][0]["raw_text"]
    assert data["calls"][2]["error"].startswith("RuntimeError")
    assert data["fusion"]["C_norm"] == pytest.approx(table.view_confidence)


def test_an_ensemble_of_noisy_simjudges_disagrees(request3):
    agents = [
        AgentConfig(f"sj-{i}", "simjudge", "rollout-metrics", {"noise_std": 1.0, "seed": i}) for i in range(3)
    ]
    table = Scorer(agents, config(agents)).score(request3)
    assert table.M_prime == 3
    assert all(s > 0 for s in table.fusion.sigma.values())
    # Same request, same seeds -> the same table.
    assert Scorer(agents, config(agents)).score(request3).S == table.S


def test_executor_seam_is_used(request3):
    class Recording(CallExecutor):
        def __init__(self):
            self.seen = []

        def run(self, request, calls, backends):
            self.seen = [(c.agent.name, c.view.name) for c in calls]
            return SerialExecutor().run(request, calls, backends)

    executor = Recording()
    Scorer([SJ], config([SJ]), executor=executor).score(request3)
    assert executor.seen == [("simjudge-0", "front"), ("simjudge-0", "top")]


def test_unknown_backend_fails_at_construction():
    agent = AgentConfig("x", "simjugde")
    with pytest.raises(UnknownBackendError, match="got 'simjugde'; did you mean 'simjudge'\\?"):
        Scorer([agent], config([SJ]))


def test_make_backend_did_you_mean_message():
    with pytest.raises(UnknownBackendError) as info:
        make_backend("simjugde")
    assert str(info.value) == ("field 'backend': expected a registered backend (anthropic, openai, simjudge, "
                               "transformers), got 'simjugde'; did you mean 'simjudge'?")
    with pytest.raises(UnknownBackendError, match="choose from"):
        make_backend("zzz")
