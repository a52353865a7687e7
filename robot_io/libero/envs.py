"""Building a LIBERO task's robosuite environment for the lab (inside the LIBERO virtual environment only).

The environment is LIBERO's own problem class for the BDDL file (its arena, objects, physics and checks),
with two lab choices: robosuite's JOINT_POSITION controller with the lab's gains (the planner sends joint
paths), and no camera observables in env.step (the lab renders only when asked to observe, which keeps a
control step at physics cost). Nothing about the task's physics or success checks is changed.
"""

from __future__ import annotations

import os

from robot_io.libero.controller import JointPositionControllerConfig

# LIBERO's evaluations let the policy run a few hundred steps; the lab's episode ends when the planner stops,
# so the horizon is set out of the way (env.step's `done` never leaves the lab anyway).
HORIZON = 1_000_000


def make_env(bddl_path: str, camera_names: tuple[str, ...] = ("agentview",), width: int = 256, height: int = 256,
             controller: JointPositionControllerConfig | None = None):
    """LIBERO's environment for `bddl_path` (the inner robosuite env, with LIBERO's check_success)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from libero.libero.envs import TASK_MAPPING, bddl_utils

    problem = bddl_utils.get_problem_info(bddl_path)["problem_name"]
    controller = controller or JointPositionControllerConfig()
    return TASK_MAPPING[problem](
        bddl_path,
        robots=["Panda"],
        controller_configs=controller.to_robosuite(),
        gripper_types="default",
        initialization_noise=None,
        use_camera_obs=False,
        has_renderer=False,
        has_offscreen_renderer=True,
        render_camera="frontview",
        render_gpu_device_id=-1,
        control_freq=20,
        horizon=HORIZON,
        ignore_done=True,
        hard_reset=False,
        camera_names=list(camera_names) or ["agentview"],
        camera_heights=height,
        camera_widths=width,
        camera_depths=False,
    )
