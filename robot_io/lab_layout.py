"""Per-seed randomisation of the sim lab's true scene: objects jittered in xy and yaw, stacks kept together."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pybullet as p
from scipy.spatial.transform import Rotation

from robot_io.labspec import Randomize
from sim.geometry import Pose
from sim.scene import SceneSpec
from sim.world import World

log = logging.getLogger("robot_io.simlab")

MIN_GAP_M = 0.01             # randomised objects keep at least this much xy space between their AABBs
MAX_LAYOUT_TRIES = 200


def _xy_gap_m(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Separation of two AABBs in the xy plane (negative when their footprints overlap)."""
    gap_x = max(b[0][0] - a[1][0], a[0][0] - b[1][0])
    gap_y = max(b[0][1] - a[1][1], a[0][1] - b[1][1])
    return float(max(gap_x, gap_y))


def _groups(names: list[str], touching: set[tuple[str, str]]) -> list[list[str]]:
    """Connected components of the 'footprints already overlap in the task' relation (stacks, nests)."""
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    for a, b in touching:
        parent[root(a)] = root(b)
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(root(n), []).append(n)
    return list(out.values())


def randomize_scene(scene: SceneSpec, randomize: Randomize, seed: int) -> SceneSpec:
    """Jitter every movable object's xy within +-xy_m and yaw within +-yaw_deg, deterministically per seed.

    Objects whose footprints already overlap in the task (a block standing on another) form a group that
    moves as one rigid piece, so a stack stays a stack. Layouts in which two groups come closer than
    MIN_GAP_M in xy are resampled; after MAX_LAYOUT_TRIES the task's own layout is kept (logged).
    """
    movable = [o.name for o in scene.objects if not o.fixed]
    if not movable or (randomize.xy_m == 0 and randomize.yaw_deg == 0):
        return scene
    rng = np.random.default_rng(seed)
    client = p.connect(p.DIRECT)
    try:
        world = World.from_scene(client, scene)
        names = [o.name for o in scene.objects]
        p.performCollisionDetection(physicsClientId=client)
        boxes = {n: world.object_aabb(n) for n in names}
        touching = {(a, b) for i, a in enumerate(names) for b in names[i + 1:]
                    if _xy_gap_m(boxes[a], boxes[b]) < MIN_GAP_M}
        groups = _groups(names, touching)
        for attempt in range(MAX_LAYOUT_TRIES):
            poses: dict[str, Pose] = {}
            for group in groups:
                # Draw for every group (fixed ones too) so a seed gives the same layout whatever is fixed.
                d_xy = rng.uniform(-randomize.xy_m, randomize.xy_m, size=2)
                d_yaw = float(rng.uniform(-randomize.yaw_deg, randomize.yaw_deg))
                if any(scene.object(n).fixed for n in group):
                    continue
                R = Rotation.from_euler("z", d_yaw, degrees=True)
                centre = np.mean([scene.object(n).pose.position for n in group], axis=0)
                for n in group:
                    pose = scene.object(n).pose
                    xyz = centre + R.apply(pose.position - centre)
                    xyz[:2] += d_xy
                    quat = (R * Rotation.from_quat(pose.quat_xyzw)).as_quat()
                    poses[n] = Pose(tuple(xyz), tuple(quat))
            for n, pose in poses.items():
                p.resetBasePositionAndOrientation(world.body_ids[n], pose.xyz, pose.quat_xyzw,
                                                  physicsClientId=client)
            p.performCollisionDetection(physicsClientId=client)
            boxes = {n: world.object_aabb(n) for n in names}
            clash = next(((a, b) for gi, ga in enumerate(groups) for gb in groups[gi + 1:]
                          for a in ga for b in gb if _xy_gap_m(boxes[a], boxes[b]) < MIN_GAP_M), None)
            if clash is None:
                log.info("seed %d: randomised layout found after %d tr%s", seed, attempt + 1,
                         "y" if attempt == 0 else "ies")
                return replace(scene, objects=tuple(
                    replace(o, pose=poses.get(o.name, o.pose)) for o in scene.objects))
        log.warning("seed %d: no randomised layout keeps %.0f cm between objects after %d tries; "
                    "using the task's layout", seed, MIN_GAP_M * 100, MAX_LAYOUT_TRIES)
        return scene
    finally:
        p.disconnect(physicsClientId=client)
