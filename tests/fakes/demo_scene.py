"""A small twin with a Panda, two blocks and a tray, and sampler-like candidates; shared by the render tests.

Run from the repository root to regenerate the README's example picture:
    python -m tests.fakes.demo_scene [docs/img/example_view.png]
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pybullet_data

import configs
from sim.geometry import Pose
from sim.rollout import Candidate
from sim.scene import ObjectSpec, RobotSpec, SceneSpec
from sim.world import World

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DATA = pybullet_data.getDataPath()
RED_XYZ = (0.56, 0.13, 0.025)
BLUE_XYZ = (0.50, -0.12, 0.025)


def panda() -> RobotSpec:
    return RobotSpec.from_yaml(str(configs.shipped("robots", "panda.yaml")))


def build_world(client: int, robot: RobotSpec | None = None, fast_render: bool = True) -> World:
    robot = robot or panda()
    objects = (
        ObjectSpec("red_block", Pose.from_xyz_rpy_deg(RED_XYZ, (0, 0, 20)), urdf=f"{DATA}/cube_small.urdf",
                   rgba=(0.85, 0.12, 0.10, 1.0), symmetry="cube"),
        ObjectSpec("blue_block", Pose.from_xyz_rpy_deg(BLUE_XYZ, (0, 0, -10)), urdf=f"{DATA}/cube_small.urdf",
                   rgba=(0.12, 0.25, 0.85, 1.0), symmetry="cube"),
        ObjectSpec("tray", Pose((0.40, -0.33, 0.0)), urdf=f"{DATA}/tray/traybox.urdf", scale=0.4,
                   rgba=(0.55, 0.55, 0.58, 1.0), symmetry="square", fixed=True),
    )
    world = World.from_scene(client, SceneSpec(robot, objects), fast_render=fast_render)
    world.step(30)  # let the blocks settle so rollouts start from rest
    return world


def down(robot: RobotSpec, xyz, yaw_deg: float = 0.0) -> Pose:
    """A top-down TCP pose: the robot's tcp_down orientation turned by yaw about world z."""
    return Pose(tuple(float(v) for v in xyz)) @ Pose.from_xyz_rpy_deg((0, 0, 0), (0, 0, yaw_deg)) @ robot.tcp_down


def sampled_candidates(world: World, n: int, seed: int = 0, radius_m: float = 0.3) -> list[Candidate]:
    """Goals in a sphere around the TCP, biased towards the red block, via a raised midpoint (like the sampler)."""
    robot = world.spec.robot
    rng = np.random.default_rng(seed)
    start = world.tcp_pose().position
    towards = np.asarray(RED_XYZ) + (0, 0, 0.06) - start
    towards /= np.linalg.norm(towards)
    out = []
    for i in range(n):
        direction = towards + rng.normal(0.0, 0.55, 3)
        direction /= np.linalg.norm(direction)
        goal = start + radius_m * rng.uniform(0.55, 1.0) * direction
        goal = np.clip(goal, (0.25, -0.4, 0.04), (0.75, 0.4, 0.55))
        mid = 0.5 * (start + goal) + (0.0, 0.0, rng.uniform(0.0, 0.06))
        yaw = float(rng.uniform(-60, 60))
        out.append(Candidate(i, (down(robot, mid, yaw), down(robot, goal, yaw)), "keep"))
    return out


def main(path: str) -> None:
    import pybullet as p

    from render import Renderer, load_views

    client = p.connect(p.DIRECT)
    try:
        world = build_world(client)
        rollouts = [world.rollout(c) for c in sampled_candidates(world, 12, seed=4)]
        renderer = Renderer(load_views(os.path.join(REPO, "configs", "views.yaml")))
        views = renderer.render(world, rollouts, highlight=5)
    finally:
        p.disconnect(client)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(views[0].png)   # the front view


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "docs", "img", "example_view.png"))
