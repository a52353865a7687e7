"""optimise: the vectorised fusion equals scoring.fusion.fuse, the weight fit finds known weights, and the
meta-agent speaks to the real anthropic and openai client libraries (against the stub server)."""

import json

import numpy as np
import pytest

from planner.errors import TaskError
from planner.meta_agent import apply_revision, ask_meta_agent, check_revision, next_version_dir
from planner.optimise import StepData, fit_weights, fused_scores, objective, split_episodes
from scoring import parse_answer
from scoring.fusion import fuse
from scoring.schema import DIMENSIONS

try:   # the stub server may live with the other fakes
    from tests.fakes.stub_server import StubVLMServer, png_bytes
except ImportError:
    from scoring.stub_server import StubVLMServer, png_bytes


def _random_step(rng, n_agents=3, n_views=3, n_ids=6, missing=False, episode="e0", step=0, u=None):
    s = rng.uniform(0, 10, (n_agents, n_views, n_ids, 4))
    q = rng.uniform(1, 10, (n_agents, n_views))
    if missing:
        q[0, 1] = np.nan
        s[0, 1] = np.nan
        s[1, 2, 0] = np.nan
    u = rng.uniform(0, 1, n_ids) if u is None else u
    return StepData(episode, step, tuple(range(n_ids)), s, q, u, np.ones(n_ids, bool))


def _answers(d: StepData):
    out = {}
    for m in range(d.s.shape[0]):
        for v in range(d.s.shape[1]):
            if np.isnan(d.q[m, v]):
                continue
            rows = [{"id": j, **{k: float(d.s[m, v, j, i]) for i, k in enumerate(DIMENSIONS)}}
                    for j in d.ids if not np.isnan(d.s[m, v, j, 0])]
            text = json.dumps({"view_clarity": float(d.q[m, v]), "candidates": rows})
            ids = tuple(r["id"] for r in rows)
            out.setdefault(f"a{m}", {})[f"v{v}"] = parse_answer(text, ids)
    return out


@pytest.mark.parametrize("missing", [False, True])
def test_vectorised_fusion_equals_scoring_fusion(missing):
    rng = np.random.default_rng(3)
    for _ in range(5):
        d = _random_step(rng, missing=missing)
        w = rng.uniform(0, 1, 4)
        lam = float(rng.uniform(0, 3))
        ref = fuse(_answers(d), dict(zip(DIMENSIONS, w)), lam, d.ids).S
        ours = fused_scores(d, w, lam)
        assert np.allclose([ref[j] for j in d.ids], ours, atol=1e-9)


def test_fit_recovers_the_weights_that_explain_the_utilities():
    """Utilities made by hidden weights (safety and task alignment); the logged weights overvalue efficiency."""
    rng = np.random.default_rng(0)
    hidden = np.array([0.4, 0.5, 0.0, 0.1])
    data = []
    for e in range(10):
        for k in range(8):
            d = _random_step(rng, episode=f"e{e}", step=k)
            truth = np.einsum("mvjk,k->j", d.s, hidden) / 9.0
            data.append(StepData(d.episode, d.step, d.ids, d.s, d.q, np.maximum(0, truth - truth.min()), d.pool))
    biased = {"safety": 0.05, "task_alignment": 0.15, "efficiency": 0.6, "feasibility": 0.2}
    fit = fit_weights(data, biased, 0.5, grid_step=0.1)
    assert fit.validation > fit.base_validation + 0.1 and fit.improves
    assert fit.weights["efficiency"] < 0.2 and fit.weights["task_alignment"] + fit.weights["safety"] > 0.6
    assert set(fit.train_episodes).isdisjoint(fit.validation_episodes)
    assert objective(data, hidden, 0.5) >= objective(data, np.array(list(biased.values())), 0.5)


def test_split_is_by_episode_and_repeatable():
    eps = [f"run{i}" for i in range(10)]
    assert split_episodes(eps, 0.3, 1) == split_episodes(list(reversed(eps)), 0.3, 1)
    train, val = split_episodes(eps, 0.3, 1)
    assert len(val) == 3 and not set(train) & set(val)


USER = "Score:\n- safety: Is it safe?\n- efficiency: Is it short?\nThen JSON."


def test_apply_revision_replaces_only_the_revised_lines():
    out = apply_revision(USER, {"efficiency": "Is it short, without costing $5 of safety?"})
    assert "- safety: Is it safe?" in out and "- efficiency: Is it short, without costing $$5 of safety?" in out
    with pytest.raises(TaskError, match="feasibility"):
        apply_revision(USER, {"feasibility": "x"})
    with pytest.raises(TaskError, match="revisions.speed"):
        check_revision({"revisions": {"speed": "x"}, "rationale": ""})


def test_versions_are_never_overwritten(tmp_path):
    (tmp_path / "v1-opt1").mkdir()
    assert next_version_dir(str(tmp_path), "v1").name == "v1-opt2"
    assert next_version_dir(str(tmp_path), "v1-opt1").name == "v1-opt2"


REVISION = {"revisions": {"efficiency": "Is the path short, counting only motions that still advance the subtask?"},
            "rationale": "the agents preferred standing still"}


class MetaStub(StubVLMServer):
    """The stub VLM server answering the meta-agent's question with a revision (ids come from its text)."""

    def _answer_object(self, ids, behaviour):
        return dict(REVISION)


@pytest.mark.parametrize("backend_name", ["anthropic", "openai"])
def test_meta_agent_through_the_real_client_libraries(backend_name, monkeypatch):
    from scoring import backend_class
    from scoring.backend import AgentConfig

    with MetaStub() as srv:
        if backend_name == "anthropic":
            monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-key")
            backend = backend_class("anthropic")(model="claude-test", base_url=srv.anthropic_base_url)
        else:
            monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
            backend = backend_class("openai")(model="qwen-test", base_url=srv.openai_base_url)
        agent = AgentConfig(name="meta", backend=backend_name, model="", params={})
        answer = ask_meta_agent(backend, agent, "Step 1: subtask x. Candidate ids: 0, 1, 2\nPropose.",
                                [png_bytes(seed=1), png_bytes(seed=2)])
        backend.close()
        assert srv.failed_checks == [] and len(srv.requests) == 1
        req = srv.requests[0]
        assert req.images == 2 and "Candidate ids: 0, 1, 2" in req.user_text
        assert answer["revisions"] == {"efficiency": " ".join(REVISION["revisions"]["efficiency"].split())}
        assert "sk-test" not in json.dumps(req.headers)
