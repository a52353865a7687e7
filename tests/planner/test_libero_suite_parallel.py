"""`bench.libero_suite --parallel N`: the episodes go to planner.batch_pool's worker processes and every one is
counted once, in the table and the JSON line. The install is a stand-in (a manifest, LIBERO-Spatial's BDDL text
and pybullet_data models) whose lab interpreter exits at once, so each episode ends with the lab's start
error in its worker, the way a broken LIBERO install ends a real one; no LIBERO needed."""

from __future__ import annotations

import json
import os
import stat

import pybullet_data
import pytest
import yaml

from tests.planner.test_libero_start_hints import _spatial

CATEGORIES = ("akita_black_bowl", "cookies", "glazed_rim_porcelain_ramekin", "plate", "wooden_cabinet")
CAMERA = {"fovy_deg": 45.0, "T_base_camera": [[0, 0.628266, -0.777998, 1.318613], [1, 0, 0, 0],
                                              [0, -0.777998, -0.628266, 0.69835], [0, 0, 0, 1]]}   # agentview


@pytest.fixture
def fake_install(tmp_path, monkeypatch):
    """A prepared-assets folder for two LIBERO-Spatial tasks and a lab interpreter that exits 1 at once."""
    tasks = []
    for t, init in enumerate(("(On akita_black_bowl_1 main_table_between_plate_ramekin_region)\n"
                              "(On akita_black_bowl_2 main_table_next_to_ramekin_region)",
                              "(On akita_black_bowl_1 cookies_1)\n(On akita_black_bowl_2 wooden_cabinet_1_top_side)")):
        bddl = tmp_path / f"task{t}.bddl"
        bddl.write_text(_spatial("Pick the akita black bowl and place it on the plate", init))
        tasks.append({"id": t, "bddl": str(bddl), "problem": "libero_tabletop_manipulation", "n_init_states": 2})
    cube = os.path.join(pybullet_data.getDataPath(), "cube_small.urdf")
    manifest = {"version": 2, "suites": {"libero_spatial": tasks}, "failed_objects": {},
                "problems": {"libero_tabletop_manipulation": {
                    "T_world_base": [[1, 0, 0, -0.66], [0, 1, 0, 0], [0, 0, 1, 0.912], [0, 0, 0, 1]],
                    "cameras": {"agentview": CAMERA, "frontview": CAMERA}}},
                "objects": {c: {"urdf": cube, "mass_kg": 0.1, "bounds_m": [[-0.025] * 3, [0.025] * 3]}
                            for c in CATEGORIES}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    lab = tmp_path / "python"
    lab.write_text("#!/bin/sh\necho 'fake LIBERO: not installed for real' >&2\nexit 1\n")
    lab.chmod(lab.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("ANTIGROUNDING_LIBERO_ASSETS", str(tmp_path))
    monkeypatch.setenv("ANTIGROUNDING_LIBERO_PYTHON", str(lab))
    return tmp_path


def test_parallel_runs_every_episode_once_on_worker_processes(fake_install, tmp_path, capsys):
    from bench.libero_suite import main

    out = tmp_path / "runs"
    rc = main(["--suite", "libero_spatial", "--tasks", "0-1", "--inits", "0-1", "--max-steps", "1",
               "--parallel", "2", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["episodes"] == 4 and summary["successes"] == 0
    assert summary["per_task"] == {"0": [0, 2], "1": [0, 2]}
    assert "2 in parallel" in captured.err
    for t in (0, 1):
        for n in (0, 1):
            assert f"task {t} init {n}: failed" in captured.err
    # each worker wrote its episode's run directory (the pool's layout: OUT/runs/<config>/...)
    assert len(list((out / "runs" / "default").iterdir())) == 4


def test_parallel_must_be_positive(fake_install, capsys):
    from bench.libero_suite import main

    assert main(["--suite", "libero_spatial", "--tasks", "0", "--inits", "0", "--parallel", "0"]) == 2
    assert "--parallel" in capsys.readouterr().err


def test_start_hints_reach_the_planner_task(fake_install):
    from planner.libero_task import load_libero_task

    task = load_libero_task("libero:libero_spatial/1").planner
    assert [c.name for c in task.cameras] == ["agentview", "frontview"]
    hints = task.start_hints
    assert set(hints) == {"akita_black_bowl_1", "akita_black_bowl_2"}
    # on the cookies (5 cm), in the planner's world: the base frame lowered onto the table (base at z = 0.012)
    assert task.robot.base_pose.xyz == pytest.approx((0.0, 0.0, 0.012))
    assert hints["akita_black_bowl_1"].xyz_m == pytest.approx((0.73, 0.03, 0.05))


def test_dump_shows_the_planner_view(fake_install):
    from planner.libero_task import dump

    view = yaml.safe_load(dump("libero:libero_spatial/1"))
    assert view["objects"]["akita_black_bowl_1"] == "akita_black_bowl"
    assert view["subtasks"][0]["done"] == {"grasped": "akita_black_bowl_1"}
