"""Reconstruction micro-benchmark: accuracy and per-stage timings on random scenes rendered in-process (not a test;
prints tables). The benchmark of record runs the shipped tasks through the sim lab: bench/reconstruction_lab.py.

    antigrounding bench reconstruction-scenes --scenes 12 [--repeats 3]   (from a source checkout: it builds
    its scenes with tests/fakes/recon_scenes.py)

Scenes alternate between two blocks + 3-4 clutter objects and a block + the tray + 3-4 clutter objects,
rendered by the three lab cameras with their noise. Each scene is reconstructed `--repeats` times; the
timing table uses every update after the first (the first includes one-off warm-up).
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.fakes import import_fake
from reconstruction import Reconstructor

BLOCKS = [("block_red", "block_blue"), ("block_green",), ("block_yellow", "block_blue"), ("block_red",)]


def run(args: argparse.Namespace) -> int:
    scenes = import_fake("recon_scenes")
    lab_cameras, models_for, pose_errors = scenes.lab_cameras, scenes.models_for, scenes.pose_errors
    random_scene, robot_spec, shoot = scenes.random_scene, scenes.robot_spec, scenes.shoot
    seed0, repeats, n_scenes = args.first_seed, args.repeats or 3, args.scenes
    robot, cams = robot_spec(), lab_cameras()
    rows, timings, first = [], [], []
    for k in range(n_scenes):
        rng = np.random.default_rng(seed0 + k)
        tray = k % 2 == 1
        scene, assets = random_scene(rng, robot, blocks=BLOCKS[k % len(BLOCKS)], tray=tray, n_clutter=3 + k % 2)
        shot = shoot(scene, cams, seed=seed0 + k)
        models = models_for(assets)
        with Reconstructor(models, robot, cams) as rec:
            for r in range(repeats):
                est = rec.update(shot.obs)
                (first if r == 0 else timings).append(est.timings_s)
        for name, obj in est.objects.items():
            dt, dr = pose_errors(obj.pose, shot.truth[name], models[name].symmetry)
            rows.append((k, name, obj.found, obj.fitness, obj.source, obj.n_points, dt * 1000, dr))
        print(f"scene {k}: {len(scene.objects)} objects, {len(est.clutter)} unknown ({len(est.unknown)} parts), "
              f"total {est.timings_s['total'] * 1000:.0f} ms  notes: {list(est.notes)}", flush=True)
    print("\nscene  object        found  fitness  hypothesis  points   err_mm  err_deg")
    for k, name, found, fit, src, n, dt, dr in rows:
        print(f"{k:5d}  {name:12s}  {found!s:5s}  {fit:7.2f}  {src:10s}  {n:6d}  {dt:7.2f}  {dr:7.2f}")
    err = np.array([(r[6], r[7]) for r in rows])
    print(f"\ntranslation mm: median {np.median(err[:, 0]):.2f}  p90 {np.percentile(err[:, 0], 90):.2f}  "
          f"max {err[:, 0].max():.2f}")
    print(f"rotation deg:   median {np.median(err[:, 1]):.2f}  p90 {np.percentile(err[:, 1], 90):.2f}  "
          f"max {err[:, 1].max():.2f}")
    warm = "warm"
    if not timings:   # --repeats 1: only first updates (they include the one-off warm-up)
        timings, warm = first, "first"
    print(f"\nstage timings over {len(timings)} {warm} updates (first updates: median total "
          f"{np.median([t['total'] for t in first]) * 1000:.0f} ms), ms")
    print("stage        median     p90     max")
    for stage in timings[0]:
        v = np.array([t[stage] for t in timings]) * 1000
        print(f"{stage:10s}  {np.median(v):7.1f} {np.percentile(v, 90):7.1f} {v.max():7.1f}")
    return 0

