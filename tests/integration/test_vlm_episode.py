"""Episodes scored by VLM backends: the real anthropic / openai client libraries, the real Ray pool and the
real planner, against a stub API server on 127.0.0.1 (the one fake, at the machine's edge).

- A planted API key never reaches any file the run writes, the CLI's output or the answer cache, even when
  the server fails and echoes the credential back in its error.
- When every agent fails, the step executes nothing, the arm holds still, and the log says why; three such
  steps in a row end the run with that reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.fakes.stub_server import StubVLMServer

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK = os.path.join(REPO, "configs", "tasks", "stack_blocks.yaml")
PLANTED = "sk-ant-PLANTED-7f3a9c1e5b2d4e6f8a0b1c2d3e4f5a6b"


def _env(**extra: str) -> dict[str, str]:
    proxies = ("http_proxy", "https_proxy", "all_proxy")
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in proxies and not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _records(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "steps.jsonl"), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_planted_anthropic_key_reaches_no_file_and_no_output(tmp_path):
    # Failures first (the server echoes the key in a 401, a 500, a 429), then good answers: the error paths
    # and the normal path both run inside the episode.
    script = ["401", "500", "429"]
    with StubVLMServer(lambda i, path, body: script[i] if i < len(script) else "good", retry_after="0") as srv:
        env = _env(ANTHROPIC_API_KEY=PLANTED, ANTHROPIC_BASE_URL=srv.anthropic_base_url)
        out = tmp_path / "runs"
        proc = _run(["run", "--task", TASK, "--seed", "0", "--scorer", "anthropic", "--max-steps", "2",
                     "--out", str(out), "--json"], env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["scorer"] == "anthropic" and summary["steps"] == 2
        requests = srv.requests
        assert requests and all(r.auth_present for r in requests)       # the key was really used
        assert not srv.failed_checks, srv.failed_checks                   # images, tool and model present
    steps = [r for r in _records(summary["run_dir"]) if r.get("type") == "step"]
    calls = [c for s in steps for c in s["scores"]["calls"]]
    assert any(c["error"] and "401" in c["error"] for c in calls)         # the echoing failure was logged...
    assert sum(1 for c in calls if c["parsed"]) >= 6                      # ...and good answers were fused
    assert all(s["chosen"] is not None for s in steps[1:])
    files = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
    assert any(f.endswith("answer_cache.sqlite") for f in files) and any(f.endswith("report.html") for f in files)
    for path in files:
        with open(path, "rb") as fh:
            assert PLANTED.encode() not in fh.read(), f"the planted key is in {path}"
    assert PLANTED not in proc.stdout and PLANTED not in proc.stderr


def test_when_every_agent_fails_the_arm_holds_still_and_the_log_says_why(tmp_path):
    with StubVLMServer("500") as srv:
        config = tmp_path / "failing.yaml"
        # a generous per-call deadline: the stub answers 500 at once, and at high load a 5 s deadline (all attempts)
        # cut a retry short (35 requests instead of 36)
        config.write_text(
            "weights: {safety: 0.25, task_alignment: 0.45, efficiency: 0.1, feasibility: 0.2}\n"
            "lambda_C: 0.5\n"
            "agents:\n"
            "  - {name: vlm-0, backend: openai, model: stub-vl}\n"
            "  - {name: vlm-1, backend: openai, model: stub-vl, params: {prompt: v1-terse}}\n"
            "views: [front, top, side]\n"
            f"backends:\n  openai: {{base_url: '{srv.openai_base_url}', timeout_s: 120, max_retries: 1, "
            "backoff_s: 0.1}\n")
        proc = _run(["run", "--task", TASK, "--seed", "0", "--scoring-config", str(config), "--max-steps", "5",
                     "--out", str(tmp_path / "runs"), "--no-ray", "--json"], _env())
        # three silent steps in a row end the run: exit 2, the reason on stderr and in the log
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "no agent answered in 3 steps in a row" in proc.stderr
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert len(srv.requests) == 3 * 2 * 3 * 2      # steps x agents x views x (first try + one retry)
    records = _records(summary["run_dir"])
    steps = [r for r in records if r.get("type") == "step"]
    assert len(steps) == 3 and "no agent answered" in records[-1]["error"]
    for step in steps:
        assert step["chosen"] is None and "execute" not in step
        assert step["M_prime"] == 0
        assert "all 6 agent calls failed" in step["hold_reason"] and "500" in step["hold_reason"]
    # nothing was sent, so the arm is where it was
    assert np.allclose(steps[0]["tcp_xyz"], steps[-1]["tcp_xyz"], atol=1e-3)
    with open(os.path.join(summary["run_dir"], "report.html"), encoding="utf-8") as fh:
        assert "No candidate executed" in fh.read()
