"""Named objects with no colour hint (textured and uncoloured pybullet_data models, configs/tasks/duck_into_tray,
stack_textured_blocks, textured_*): found from their models alone, with their symmetry inferred from the mesh.

The lab's scene (truth, randomised per seed as the lab does it) is rendered by the task's cameras with their sensor
model; the reconstruction sees only the observation. Every named object is found, and none is wrongly placed:
a pose over 2 cm or 20 degrees off (symmetry-aware) must be reported low confidence.
"""

import os

import pytest

from planner.components import object_models
from planner.task import load_task
from reconstruction import Reconstructor
from reconstruction.accuracy import outcome, pose_errors
from robot_io.simlab import randomize_scene
from tests.fakes.recon_scenes import REPO, shoot


def _outcomes(task: str, seed: int) -> dict[str, tuple[str, float, float]]:
    loaded = load_task(os.path.join(REPO, "configs", "tasks", f"{task}.yaml"))
    task_ = loaded.planner
    assert all(a.rgba is None for a in task_.objects.values())
    scene = randomize_scene(loaded.lab.scene, loaded.lab.randomize, seed)
    shot = shoot(scene, task_.cameras, seed=seed, settle_s=1.0)
    with Reconstructor(object_models(task_), task_.robot, task_.cameras) as rec:
        est = rec.update(shot.obs)
    out = {}
    for name, asset in task_.objects.items():
        obj = est.objects[name]
        t_mm, r_deg = pose_errors(obj.pose, shot.truth[name], asset.symmetry) if obj.found else (None, None)
        nan = float("nan")
        out[name] = (outcome(obj.found, name in est.low_confidence, nan if t_mm is None else t_mm,
                             nan if r_deg is None else r_deg),
                     t_mm, r_deg)
    return out


def test_duck_and_tray_found_from_their_models():
    out = _outcomes("duck_into_tray", 0)
    assert {name: o[0] for name, o in out.items()} == {"duck": "found", "tray": "found"}, out
    assert all(o[1] < 8.0 and o[2] < 8.0 for o in out.values()), out


@pytest.mark.slow
@pytest.mark.parametrize("task,seed", [("textured_touching", 1), ("textured_edge_of_view", 2),
                                       ("stack_textured_blocks", 0)])
def test_textured_tasks_never_wrongly_placed(task, seed):
    out = _outcomes(task, seed)
    assert all(o[0] in ("found", "doubtful") for o in out.values()), out
