"""batch: seeds, the grid, the crash-safe results file, the report's plots."""

import json
import os

import pytest

from planner.batch import Episode, Progress, ResultsFile, make_grid, parse_seeds, summarise
from planner.batch_report import write_batch_report
from planner.errors import TaskError


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds(["2-4,8", "0"]) == [0, 2, 3, 4, 8]
    for bad in ("a", "3-1", "1-", ""):
        with pytest.raises(TaskError, match="--seeds"):
            parse_seeds(bad)


def test_grid_keys_are_unique_and_cover_every_cell():
    grid = make_grid(["t1", "t2"], [0, 1, 2], ["c1", "c2"])
    assert len(grid) == 12 and len({e.key for e in grid}) == 12
    assert grid[0] == Episode("t1", 0, "c1") and grid[1] == Episode("t2", 0, "c1")


def _line(ep, success=True, steps=5):
    return {"key": ep.key, "task": ep.task, "seed": ep.seed, "config": ep.config, "success": success,
            "steps": steps, "run_dir": None, "time_s": 1.0, "task_name": ep.task}


def test_results_file_survives_a_torn_line_and_is_exclusive(tmp_path):
    res = ResultsFile(str(tmp_path))
    a, b = Episode("t", 0), Episode("t", 1)
    res.append(_line(a))
    with open(res.path, "a") as f:       # the writer died in the middle of the next line
        f.write(json.dumps(_line(b))[:25])
    res.repair()
    assert res.done_keys() == {a.key}
    res.append(_line(b))
    assert [r["key"] for r in res.read()] == [a.key, b.key]
    assert open(res.path).read().count("\n") == 2
    res.lock()
    with pytest.raises(TaskError, match="another batch"):
        ResultsFile(str(tmp_path)).lock()
    res.unlock()


def test_summary_and_report(tmp_path):
    results = [_line(Episode("t1", s, "c1"), success=s % 2 == 0, steps=3 + s) for s in range(4)]
    results += [_line(Episode("t1", s, "c2"), success=True, steps=2) for s in range(4)]
    rows = summarise(results)
    assert [(r["config"], r["success_rate"], r["median_steps"]) for r in rows] == [("c1", 0.5, 4.5), ("c2", 1.0, 2)]
    path = write_batch_report(str(tmp_path), rows, results, "test batch")
    html = open(path).read()
    assert html.count("<svg") == 2 and "2/4" in html and "4/4" in html


def test_progress_eta():
    class Sink:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    bar = Progress(10, 4, stream=Sink())
    assert bar.eta_s() is None
    bar.update(_line(Episode("t", 0)))
    assert bar.eta_s() is not None and "5/10 episodes" in bar.line()
    assert os.linesep in bar.stream.text or "\n" in bar.stream.text


def test_batch_flags_take_several_scoring_configs_and_reject_a_blank_one(tmp_path, capsys):
    from planner.cli import main

    # a blank second config: exit 2 with the flag named, before any lab starts (a list used to crash the check)
    assert main(["batch", "--tasks", "stack_blocks", "--scoring-config", "default", " ", "--out",
                 str(tmp_path / "b")]) == 2
    assert "--scoring-config" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_render_threads_share_the_cores_out_and_the_worker_sets_them(monkeypatch):
    from planner.batch_pool import _init_worker, render_threads

    assert [render_threads(w, cores=16) for w in (1, 2, 3, 16, 40)] == [16, 8, 5, 1, 1]
    monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    _init_worker(os.getpid(), 3)      # watches this (living) process: nothing happens to it
    assert os.environ["LP_NUM_THREADS"] == "3"
    monkeypatch.setenv("LP_NUM_THREADS", "7")
    _init_worker(os.getpid(), 3)      # the user's setting wins
    assert os.environ["LP_NUM_THREADS"] == "7"


class _Closable:
    def __init__(self, name, closed):
        self.name, self.closed = name, closed

    def close(self):
        self.closed.append(self.name)


@pytest.mark.parametrize("raised, error", [
    (None, None),
    ("robot", "arm-1: protective stop"),
    ("bug", "internal error: KeyError: 'x'"),
])
def test_run_errors_end_the_run_with_the_error_and_close_last_first(raised, error):
    from planner.episode import run_errors
    from robot_io.errors import RobotError

    closed: list[str] = []
    with run_errors("arm-1: ") as end:
        end.close_later(_Closable("scorer", closed))
        end.close_later(_Closable("planner", closed))
        if raised == "robot":
            raise RobotError("protective stop")
        if raised == "bug":
            raise KeyError("x")
    assert end.error == error
    assert closed == ["planner", "scorer"]
