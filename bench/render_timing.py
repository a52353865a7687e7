"""Render timing: twin frame, overlay drawing and PNG encoding per view, for K candidates.

    antigrounding bench render [--candidates 16] [--repeats 20] [--views FILE] [--tiny]

Benchmarks print tables; tests never assert timings (DESIGN.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pybullet as p
import pybullet_data

import configs
from render.overlay import draw_overlay
from render.renderer import Renderer, encode_png, render_scene_image, traces_of
from render.views import VirtualView, load_views
from sim.geometry import Pose
from sim.rollout import Candidate, Rollout
from sim.scene import ObjectSpec, RobotSpec, SceneSpec
from sim.world import World


@dataclass(frozen=True)
class RenderTiming:
    """Seconds, median over repeats (and the fastest repeat for the total)."""

    views: int
    candidates: int
    renderer: str
    twin_s: float          # all views' twin frames
    overlay_s: float       # all views' drawing
    png_s: float           # all views' PNG encoding
    total_s: float         # Renderer.render end to end
    total_min_s: float


def bench_render(world: World, rollouts: Sequence[Rollout], views: Sequence[VirtualView],
                 repeats: int = 20) -> RenderTiming:
    renderer = Renderer(views)
    traces = traces_of(rollouts)
    renderer.render(world, rollouts)  # warm-up: the first EGL frames and the font/label caches
    twin, overlay, png, total = [], [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        renderer.render(world, rollouts)
        total.append(time.perf_counter() - t0)
        t_twin = t_draw = t_png = 0.0
        for view, cam in zip(renderer.views, renderer.cameras):
            t0 = time.perf_counter()
            scene = render_scene_image(world, cam)
            t1 = time.perf_counter()
            drawn = draw_overlay(scene, cam, traces, view.name)
            t2 = time.perf_counter()
            encode_png(drawn.rgb)
            t3 = time.perf_counter()
            t_twin, t_draw, t_png = t_twin + t1 - t0, t_draw + t2 - t1, t_png + t3 - t2
        twin.append(t_twin)
        overlay.append(t_draw)
        png.append(t_png)
    name = "EGL" if world.renderer == p.ER_BULLET_HARDWARE_OPENGL else "TinyRenderer"
    med = statistics.median
    return RenderTiming(len(views), len(rollouts), name, med(twin), med(overlay), med(png), med(total), min(total))


def format_table(t: RenderTiming) -> str:
    rows = [("twin frames", t.twin_s), ("overlays", t.overlay_s), ("png encode", t.png_s),
            ("render() total", t.total_s), ("render() fastest", t.total_min_s)]
    head = f"{t.views} views x {t.candidates} candidates, {t.renderer}, {os.cpu_count()} CPUs"
    lines = [head, f"{'phase':<18}{'all views ms':>14}{'per view ms':>13}"]
    lines += [f"{name:<18}{1000 * s:>14.1f}{1000 * s / t.views:>13.1f}" for name, s in rows]
    return "\n".join(lines)


def demo_rollouts(world: World, n: int, seed: int = 0) -> list[Rollout]:
    """n straight-ish moves from the current TCP to goals in a 25 cm sphere, top-down orientation."""
    rng = np.random.default_rng(seed)
    robot = world.spec.robot
    start = world.tcp_pose().position
    out = []
    for i in range(n):
        d = rng.normal(size=3)
        goal = np.clip(start + 0.25 * d / np.linalg.norm(d), (0.25, -0.4, 0.05), (0.75, 0.4, 0.55))
        mid = 0.5 * (start + goal) + (0.0, 0.0, 0.04)
        rot = Pose.from_xyz_rpy_deg((0, 0, 0), (0, 0, rng.uniform(-60, 60))) @ robot.tcp_down
        out.append(world.rollout(Candidate(i, (Pose(tuple(mid)) @ rot, Pose(tuple(goal)) @ rot))))
    return out


def run(args: argparse.Namespace) -> int:
    """`antigrounding bench render [--candidates K] [--repeats N] [--views FILE] [--tiny]`."""
    client = p.connect(p.DIRECT)
    try:
        cube = os.path.join(pybullet_data.getDataPath(), "cube_small.urdf")
        scene = SceneSpec(RobotSpec.from_yaml(str(configs.find("robots", "panda", "robot"))), (
            ObjectSpec("red_block", Pose((0.55, 0.12, 0.025)), urdf=cube, rgba=(0.85, 0.12, 0.1, 1)),
            ObjectSpec("blue_block", Pose((0.5, -0.12, 0.025)), urdf=cube, rgba=(0.12, 0.25, 0.85, 1))))
        world = World.from_scene(client, scene, fast_render=args.fast_render and not args.tiny)
        views = load_views(args.views or str(configs.file("views.yaml")))
        timing = bench_render(world, demo_rollouts(world, args.candidates or 16), views, args.repeats or 20)
    finally:
        p.disconnect(client)
    print(format_table(timing), flush=True)
    return 0
