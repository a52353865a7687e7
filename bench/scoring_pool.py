"""Scoring-side benchmark: the Ray agent pool against a VLM server with a known latency.

A ``StubVLMServer`` on 127.0.0.1 answers every OpenAI chat request after ``delay_s``; the real
``OpenAIBackend`` (the ``openai`` client library, structured output, images as data URLs) talks to it from
inside the agents' Ray actors, 3 agents x 3 views. Rows:

- startup: Ray start and the three actors' start (paid once per run, not per step);
- (a) one step with every call in flight together (median over ``repeats``), against the serial executor
  run once in the same process (about 9 x delay_s), with the ratio;
- (b) one agent's actor killed with ``ray.kill`` 0.3 s into the step: the step still completes with M' = 2 and
  the records name the agent whose actor died; then the next step, with the actor re-created;
- (c) the same step answered from a warm answer cache: hit rate and wall time.

Numbers depend on the machine's load; the stub's delay dominates (a) and (b).
``antigrounding bench scoring-pool [--repeats N]`` prints the table (from a source checkout: the stub server is
a test fake, tests/fakes/stub_server.py).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.fakes import import_fake
from scoring.backend import AgentConfig
from scoring.cache import AnswerCache
from scoring.config import BackendSettings, ScoringConfig
from scoring.pool import RayExecutor
from scoring.scorer import Scorer, ScoreTable, SerialExecutor

logger = logging.getLogger(__name__)

WEIGHTS = {"safety": 0.25, "task_alignment": 0.45, "efficiency": 0.1, "feasibility": 0.2}
VIEWS = ("front", "top", "side")
# Distinct prompt variants / temperatures, as a real ensemble would have (and so cache keys differ per agent).
AGENTS = (
    AgentConfig("qwen-0", "openai", "stub-vlm", {"prompt": "v1", "temperature": 0.0}),
    AgentConfig("qwen-1", "openai", "stub-vlm", {"prompt": "v1-terse", "temperature": 0.0}),
    AgentConfig("qwen-2", "openai", "stub-vlm", {"prompt": "v1", "temperature": 0.7}),
)
KILLED_AGENT = "qwen-1"
KILL_AFTER_S = 0.3


def _timed_step(scorer: Scorer, request: Any) -> tuple[float, ScoreTable]:
    start = time.perf_counter()
    table = scorer.score(request)
    return time.perf_counter() - start, table


def _row(case: str, executor: str, walls_s: list[float], table: ScoreTable | None, note: str = "") -> dict[str, Any]:
    ok = sum(1 for c in table.calls if c.ok) if table is not None else None
    return {
        "case": case,
        "executor": executor,
        "runs": len(walls_s),
        "median_s": statistics.median(walls_s),
        "min_s": min(walls_s),
        "max_s": max(walls_s),
        "M_prime": table.M_prime if table is not None else None,
        "calls_ok": None if table is None else f"{ok}/{len(table.calls)}",
        "cache_hit_rate": None if table is None else table.cache_hit_rate,
        "note": note,
    }


def run_pool_benchmark(repeats: int = 5, delay_s: float = 1.0) -> list[dict[str, Any]]:
    """Measure the pool (see the module docstring); returns one dict per table row."""
    if repeats < 1:
        raise ValueError(f"repeats: expected an integer >= 1, got {repeats!r}")
    if not delay_s >= 0:
        raise ValueError(f"delay_s: expected a number >= 0, got {delay_s!r}")
    rows: list[dict[str, Any]] = []
    stub_server = import_fake("stub_server")
    request = stub_server.make_stub_request(n_candidates=4, view_names=VIEWS)
    with stub_server.StubVLMServer("good", delay_s=delay_s) as stub, tempfile.TemporaryDirectory() as tmp:
        settings = {
            "openai": BackendSettings(
                kwargs={"base_url": stub.openai_base_url, "structured": "json_schema"},
                timeout_s=max(10.0, 5.0 * delay_s),
                max_retries=0,
            )
        }
        config = ScoringConfig(weights=WEIGHTS, lambda_C=0.5, agents=AGENTS, views=VIEWS, backends=settings)
        n_calls = len(AGENTS) * len(VIEWS)

        # Serial baseline first, in this process, once: it takes n_calls x delay_s.
        with Scorer.from_config(config, executor=SerialExecutor(config.backends)) as serial:
            serial_s, serial_table = _timed_step(serial, request)
        rows.append(_row("(a) one step, calls one after another", "serial", [serial_s], serial_table))

        executor = RayExecutor.from_config(config)
        start = time.perf_counter()
        executor.start(AGENTS)
        startup_s = time.perf_counter() - start
        rows.append(
            {
                **_row("startup: ray + 3 agent actors", "ray", [startup_s], None),
                "note": f"ray {executor.ray_startup_s:.2f} s, actors {executor.last_actor_startup_s:.2f} s",
            }
        )
        try:
            scorer = Scorer.from_config(config, executor=executor)
            walls, table = [], None
            for _ in range(repeats):
                wall_s, table = _timed_step(scorer, request)
                walls.append(wall_s)
            median_s = statistics.median(walls)
            rows.append(
                _row(
                    "(a) one step, all calls in flight",
                    "ray",
                    walls,
                    table,
                    f"serial/pool = {serial_s / median_s:.1f}x; server saw up to {stub.max_in_flight} "
                    f"of {n_calls} calls at once",
                )
            )

            kill_walls, after_walls, kill_table, after_table = [], [], None, None
            for _ in range(min(repeats, 3)):
                victim = executor.actors[KILLED_AGENT]
                killer = threading.Timer(KILL_AFTER_S, _kill, args=(victim,))
                killer.start()
                wall_s, kill_table = _timed_step(scorer, request)
                killer.join()
                kill_walls.append(wall_s)
                wall_s, after_table = _timed_step(scorer, request)
                after_walls.append(wall_s)
            died = sorted({c.agent for c in kill_table.calls if c.error and "actor died" in c.error})
            example = next((c.error for c in kill_table.calls if c.agent in died), "")
            rows.append(
                _row(
                    f"(b) actor of {KILLED_AGENT} killed at {KILL_AFTER_S} s",
                    "ray",
                    kill_walls,
                    kill_table,
                    f"died: {', '.join(died) or 'none'}; record: {example[:90]}",
                )
            )
            rows.append(_row("(b) next step, actor re-created", "ray", after_walls, after_table))

            cache = AnswerCache(Path(tmp) / "answers.sqlite")
            try:
                cached_scorer = Scorer.from_config(config, executor=executor, cache=cache)
                cold_s, cold_table = _timed_step(cached_scorer, request)
                rows.append(_row("(c) cache cold (fills it)", "ray+cache", [cold_s], cold_table))
                warm_walls, warm_table = [], None
                for _ in range(repeats):
                    wall_s, warm_table = _timed_step(cached_scorer, request)
                    warm_walls.append(wall_s)
                same = warm_table.S == cold_table.S
                rows.append(
                    _row("(c) cache warm, same step", "ray+cache", warm_walls, warm_table,
                         f"S identical to the cold step: {same}")
                )
            finally:
                cache.close()
        finally:
            executor.close()
        if stub.failed_checks:
            logger.warning("stub server rejected requests: %s", stub.failed_checks[:3])
    return rows


def _kill(actor: Any) -> None:
    import ray

    ray.kill(actor)


def format_pool_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of run_pool_benchmark's rows (seconds; medians over the runs)."""
    header = ("case", "executor", "runs", "median s", "min s", "max s", "M'", "calls ok", "cache hits", "note")
    lines = []
    for row in rows:
        hit = row.get("cache_hit_rate")
        lines.append(
            (
                row["case"],
                row["executor"],
                str(row["runs"]),
                f"{row['median_s']:.2f}",
                f"{row['min_s']:.2f}",
                f"{row['max_s']:.2f}",
                "" if row.get("M_prime") is None else str(row["M_prime"]),
                row.get("calls_ok") or "",
                "" if hit is None else f"{100 * hit:.0f}%",
                row.get("note", ""),
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    out.append("Backend: openai (real client) -> StubVLMServer on 127.0.0.1; 3 agents x 3 views.")
    return "\n".join(out)


def run(args) -> int:
    """`antigrounding bench scoring-pool [--repeats N]`."""
    print("Agent pool: a stub API server that answers after 1.0 s, the real OpenAI-compatible backend, "
          "3 agents x 3 views per step", flush=True)
    print(format_pool_table(run_pool_benchmark(repeats=args.repeats or 5, delay_s=1.0)), flush=True)
    return 0
