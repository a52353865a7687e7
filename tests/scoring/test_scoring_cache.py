"""The SQLite answer cache on its own and in the scorer: hits, misses, persistence, only valid answers stored."""

import hashlib
import json
import subprocess
import sys
import threading

import pytest

from scoring.backend import AgentConfig, Backend
from scoring.cache import AnswerCache
from scoring.config import ScoringConfig
from scoring.request import ScoreRequest

WEIGHTS = {"safety": 0.25, "task_alignment": 0.45, "efficiency": 0.1, "feasibility": 0.2}


def test_get_put_counters_and_persistence(tmp_path):
    path = tmp_path / "sub" / "answers.sqlite"
    with AnswerCache(path) as cache:
        assert cache.get("k1") is None
        cache.put("k1", '{"a": 1}', backend="openai", model="qwen")
        assert cache.get("k1") == '{"a": 1}'
        assert (cache.hits, cache.misses, cache.puts) == (1, 1, 1)
        assert cache.stats()["hit_rate"] == 0.5 and len(cache) == 1 and "k1" in cache
        assert cache.created_at("k1") > 0
    with AnswerCache(path) as again:  # a new instance (a later run) reads the same file
        assert again.get("k1") == '{"a": 1}'
        assert (again.hits, again.misses) == (1, 0)  # counters belong to the instance
        assert again.delete("k1") and not again.delete("k1") and len(again) == 0
    with pytest.raises(ValueError, match="non-empty string key"):
        AnswerCache(path).put("", "x")


def test_wal_mode_and_closed_cache(tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    mode = cache._conn().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    cache.close()
    with pytest.raises(RuntimeError, match="is closed"):
        cache.get("k")


def test_threads_share_one_cache(tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    errors = []

    def work(n):
        try:
            for i in range(25):
                cache.put(f"t{n}-{i}", f"answer {n} {i}")
                assert cache.get(f"t{n}-{i}") == f"answer {n} {i}"
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) == 100 and cache.hits == 100
    cache.close()


def test_processes_share_one_file(tmp_path):
    path = tmp_path / "c.sqlite"
    script = (
        "import sys\nfrom scoring.cache import AnswerCache\nc = AnswerCache(sys.argv[1])\n"
        "for i in range(50): c.put(f'{sys.argv[2]}-{i}', 'x')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), name]) for name in ("p", "q")]
    with AnswerCache(path) as cache:
        for i in range(50):
            cache.put(f"main-{i}", "y")
        assert [p.wait(timeout=60) for p in procs] == [0, 0]
        assert len(cache) == 150


class Keyed(Backend):
    """Answers fixed text per view and has a cache key; counts its calls."""

    name = "keyed"

    def __init__(self, text_by_view=None, fail=False, key_fails=False):
        self.text_by_view = text_by_view or {}
        self.fail = fail
        self.key_fails = key_fails
        self.calls = 0

    def answer(self, request, view, agent):
        self.calls += 1
        if self.fail:
            raise RuntimeError("down")
        return self.text_by_view.get(view.name, valid(request.candidate_ids))

    def cache_key(self, request, view, agent):
        if self.key_fails:
            raise ValueError("cannot hash")
        # A real backend hashes its rendered prompt, which names the view; here the name stands in for it.
        prompt = [agent.params.get("prompt", "v1"), view.name, list(request.candidate_ids)]
        content = [self.name, agent.model, prompt, view.png_sha256]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def valid(ids, score=6):
    return json.dumps(
        {
            "view_clarity": 8,
            "candidates": [
                {"id": j, "safety": score, "task_alignment": score, "efficiency": score, "feasibility": score}
                for j in ids
            ],
        }
    )


def make_request(view):
    return ScoreRequest("stack", "", (1, 2), (view("front"), view("top", width=320)))


def cfg(agents):
    return ScoringConfig(weights=WEIGHTS, lambda_C=0.5, agents=tuple(agents), views=("front", "top"))


def scorer_for(agents, backend, cache):
    from scoring.scorer import Scorer

    return Scorer(agents, cfg(agents), backends={"keyed": backend}, cache=cache)


AGENTS = [AgentConfig("k0", "keyed", "m", {"prompt": "v1"}), AgentConfig("k1", "keyed", "m", {"prompt": "v1-terse"})]


def test_scorer_hits_the_cache_on_the_second_step_and_across_instances(tmp_path, view):
    path = tmp_path / "answers.sqlite"
    request = make_request(view)
    backend = Keyed()
    with AnswerCache(path) as cache:
        first = scorer_for(AGENTS, backend, cache).score(request)
        assert (first.cache_lookups, first.cache_hits) == (4, 0) and backend.calls == 4
        assert not any(c.cached for c in first.calls) and len(cache) == 4
        second = scorer_for(AGENTS, backend, cache).score(request)
        assert (second.cache_lookups, second.cache_hits) == (4, 4) and backend.calls == 4
        assert all(c.cached and c.attempts == 0 and c.ok for c in second.calls)
        assert second.S == first.S and second.cache_hit_rate == 1.0
        data = second.to_dict()
        assert data["cache_hits"] == 4 and data["cache_lookups"] == 4 and data["calls"][0]["cached"] is True
    # A later run opens the file by path; the scorer owns (and closes) that cache.
    scorer = scorer_for(AGENTS, Keyed(), str(path))
    third = scorer.score(request)
    assert third.cache_hits == 4 and third.S == first.S
    scorer.close()
    with pytest.raises(RuntimeError, match="closed"):
        scorer.cache.get("x")


def test_a_changed_image_or_prompt_misses(tmp_path, view):
    from scoring.request import ViewImage

    request = make_request(view)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        scorer_for(AGENTS, Keyed(), cache).score(request)
        other_prompt = [AgentConfig("k0", "keyed", "m", {"prompt": "v2"})]
        assert scorer_for(other_prompt, Keyed(), cache).score(request).cache_hits == 0
        redrawn = ScoreRequest("stack", "", (1, 2), (ViewImage("front", b"other pixels", 640, 480), request.views[1]))
        table = scorer_for(AGENTS, Keyed(), cache).score(redrawn)
        assert (table.cache_lookups, table.cache_hits) == (4, 2)  # only the unchanged "top" view hits


def test_failed_and_invalid_answers_are_never_stored(tmp_path, view):
    request = make_request(view)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        raising = scorer_for(AGENTS, Keyed(fail=True), cache).score(request)
        assert raising.S == {} and len(cache) == 0
        chatty = Keyed(text_by_view={"front": "I like candidate 1", "top": valid((1, 2, 99))})
        table = scorer_for(AGENTS, chatty, cache).score(request)
        assert table.S == {} and len(cache) == 0
        # One valid view: only it is stored.
        half = Keyed(text_by_view={"front": "no idea"})
        table = scorer_for(AGENTS, half, cache).score(request)
        assert table.M_prime == 2 and len(cache) == 2


def test_a_stored_answer_that_no_longer_parses_is_dropped_and_asked_again(tmp_path, view):
    request = make_request(view)
    backend = Keyed()
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        scorer_for(AGENTS[:1], backend, cache).score(request)
        key = backend.cache_key(request, request.views[0], AGENTS[0])
        cache.put(key, "garbage")
        table = scorer_for(AGENTS[:1], backend, cache).score(request)
        assert table.cache_hits == 1 and backend.calls == 3  # front asked again, top from the cache
        assert cache.get(key) != "garbage"


def test_a_failing_cache_key_only_skips_the_cache(tmp_path, view):
    request = make_request(view)
    backend = Keyed(key_fails=True)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        table = scorer_for(AGENTS, backend, cache).score(request)
        assert table.M_prime == 2 and table.cache_lookups == 0 and len(cache) == 0


def test_backends_without_a_key_are_not_cached(tmp_path, request_with, evidence):
    from scoring.scorer import Scorer

    request = request_with([evidence(1), evidence(2)])
    agents = [AgentConfig("sj", "simjudge", "rollout-metrics")]
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        table = Scorer(agents, cfg(agents), cache=cache).score(request)
        assert table.M_prime == 1 and table.cache_lookups == 0 and len(cache) == 0
