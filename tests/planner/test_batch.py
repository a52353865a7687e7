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
