"""replay and optimise through the CLI on logged runs written the way the MPC loop writes them (the real Scorer
with simjudge agents answers; pictures are real PNGs), no lab: replay re-asks another config, optimise fits the
weights and asks a meta-agent through the real openai client library at the stub server."""

import json
import os

import numpy as np
import pytest
import yaml

from planner.cli import main
from planner.reproduce import sha256_json
from planner.runlog import RunLog
from scoring import CandidateEvidence, Scorer, ScoreRequest, ViewImage
from scoring.config import scoring_config_from_dict

try:
    from tests.fakes.stub_server import StubVLMServer, png_bytes
except ImportError:
    from scoring.stub_server import StubVLMServer, png_bytes

BIASED = {"weights": {"safety": 0.05, "task_alignment": 0.15, "efficiency": 0.6, "feasibility": 0.2},
          "lambda_C": 0.5, "views": ["front", "top"],
          "agents": [{"name": f"noisy-{i}", "backend": "simjudge", "model": "m", "params": {"noise_std": 0.5,
                                                                                          "seed": i}}
                     for i in range(2)]}


def _logged_run(root, episode: int, n_steps: int = 5, n_ids: int = 6):
    """A run whose agents (biased weights) prefer short paths while long ones make the progress."""
    cfg = scoring_config_from_dict(BIASED)
    rng = np.random.default_rng(episode)
    log = RunLog.create(str(root), "synthetic", episode)
    log.write_header({"task": "synthetic", "task_path": "", "seed": episode, "instruction": "Stack the blocks.",
                      "reproduce": {"configs": {"scoring": {"sha256": sha256_json(cfg.to_dict()),
                                                            "content": cfg.to_dict()}}}})
    now = 0.1
    with Scorer(None, cfg) as scorer:
        for k in range(n_steps):
            path = rng.uniform(0.02, 0.4, n_ids)
            progress = np.clip(now + 0.8 * path - 0.1 + rng.normal(0, 0.02, n_ids), 0, 0.99)
            ev = {j: CandidateEvidence(j, True, 0, 0.1, 0.5, 0.0, float(path[j]), 1.0, float(progress[j]), False,
                                       False, "keep") for j in range(n_ids)}
            views = tuple(ViewImage(v, png_bytes(64, 48, seed=10 * k + i), 64, 48,
                                    {j: (5.0 + 9 * j, 20.0 + i) for j in range(n_ids)})
                          for i, v in enumerate(cfg.views))
            req = ScoreRequest("Stack the blocks.", "grasp the block", tuple(range(n_ids)), views, evidence=ev)
            table = scorer.score(req)
            chosen = table.best()
            images = {v.name: log.save_image(k, v.name, v.png) for v in views}
            log.append({"type": "step", "step": k, "done": False, "subtask_index": 0, "subtask": "grasp the block",
                        "scores": table.to_dict(), "chosen": chosen, "images": images, "request": req.to_dict(),
                        "progress_now": now, "M_prime": table.M_prime,
                        "candidates": [{"id": j, "S": table.S[j], "feasible": True, "clean": True,
                                        "progress": float(progress[j]), "label": "line", "gripper": "keep",
                                        "path_length_m": float(path[j]), "mean_scores": {}} for j in range(n_ids)]})
            now = float(progress[chosen])
    log.append({"type": "end", "steps": n_steps, "lab_success": False, "error": None})
    log.close()
    return log.path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return [_logged_run(root, e) for e in range(6)]


@pytest.fixture(autouse=True)
def _stdout_stays(monkeypatch):
    # in process, the CLI must not move fd 1 (it does so for PyBullet's C prints when run as a program)
    monkeypatch.setattr("planner.cli._keep_stdout_for_results", lambda: None)


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_replay_with_unbiased_weights_chooses_progress_more_often(runs, tmp_path, capsys):
    cfg = dict(BIASED, weights={"safety": 0.1, "task_alignment": 0.8, "efficiency": 0.0, "feasibility": 0.1})
    path = tmp_path / "fair.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["replay", *runs, "--scoring-config", str(path), "--out", str(tmp_path / "r"), "--json"]) == 0
    out = _last_json(capsys)
    s = out["summary"]
    assert s["steps"] == s["scored"] == 30 and s["errors"] == 0
    assert s["new_choice_makes_progress"] > s["logged_choice_makes_progress"]
    assert s["new_progress_mrr"] > s["logged_progress_mrr"]
    # the same config as logged chooses the same candidates (the noise is a pure function of the request)
    biased = tmp_path / "biased.yaml"
    biased.write_text(yaml.safe_dump(BIASED))
    assert main(["replay", *runs, "--scoring-config", str(biased), "--out", str(tmp_path / "r2"), "--json"]) == 0
    assert _last_json(capsys)["summary"]["same_choice"] == 1.0


class MetaStub(StubVLMServer):
    def _answer_object(self, ids, behaviour):
        return {"revisions": {"efficiency": "Short paths count only when they advance the subtask."},
                "rationale": "the agents preferred short motions over progress"}


def test_optimise_fits_weights_and_writes_a_versioned_prompt(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    with MetaStub() as srv:
        meta = tmp_path / "meta.yaml"
        meta.write_text(yaml.safe_dump({"weights": BIASED["weights"], "lambda_C": 0.5, "views": ["front"],
                                        "agents": [{"name": "meta", "backend": "openai", "model": "qwen-test"}],
                                        "backends": {"openai": {"base_url": srv.openai_base_url}}}))
        out_dir = tmp_path / "opt"
        assert main(["optimise", "--runs", *runs, "--out", "fair", "--out-dir", str(out_dir),
                     "--meta-config", str(meta), "--json"]) == 0
        assert srv.failed_checks == [] and len(srv.requests) == 1 and srv.requests[0].images >= 1
    out = _last_json(capsys)
    assert out["weights_kept"] and out["weights"]["efficiency"] < 0.3
    assert out["objective"]["validation"] > out["objective"]["base_validation"]
    prompt = out["prompt"]
    assert os.path.basename(prompt["dir"]) == "v1-opt1" and not prompt["kept"]   # simjudge reads no prompt
    user = open(os.path.join(prompt["dir"], "user.md")).read()
    assert "- efficiency: Short paths count only when they advance the subtask." in user
    assert "- safety:" in user and "the agents preferred" in open(os.path.join(prompt["dir"], "PROVENANCE.md")).read()
    written = yaml.safe_load(open(out["config"]))
    assert written["weights"] == out["weights"] and len(written["agents"]) == 2
    report = open(out["report"]).read()
    assert "| efficiency | 0.60 |" in report and "validation" in report
