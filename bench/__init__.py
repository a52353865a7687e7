"""Benchmarks behind `antigrounding bench WHICH`: they print tables and assert nothing (speed and accuracy are
measured here, never in tests).

Outside the product: `bench` may import every package (and the test fakes under tests/fakes/, from a source
checkout); no product package imports it, and the command line imports it only inside its `bench` command.
A benchmark is a module with `run(args) -> int` registered in BENCHMARKS; add one by adding a line.
"""

from __future__ import annotations

import argparse
import importlib

# name on the command line -> (module, one line for --help)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "episodes": ("bench.episodes", "success rate and per-stage seconds per MPC step over seeds (the default), "
                 "then the reconstruction table"),
    "reconstruction": ("bench.reconstruction_lab", "per object pose errors, time per scene, clutter Chamfer, twin "
                       "settling, through the sim lab (default: all five shipped tasks)"),
    "reconstruction-scenes": ("bench.reconstruction_scenes", "reconstruction accuracy and per-stage timings on "
                              "random in-process scenes (source checkout)"),
    "identification": ("bench.identification", "mass/friction identification vs the lab's truth (ident_blocks, "
                       "8 mass/friction cases per seed)"),
    "scoring-pool": ("bench.scoring_pool", "the Ray agent pool vs serial against a stub API server, a killed "
                     "actor, the answer cache (source checkout)"),
    "render": ("bench.render_timing", "twin frame, overlay and PNG encoding time per view for K candidates"),
    "batch-throughput": ("bench.batch_throughput", "episodes per hour of one grid, serial vs --parallel N worker "
                         "processes, in one run (default 2 tasks x 2 seeds, 2 steps)"),
    "malformed-inputs": ("bench.malformed_inputs", "every malformed-input corpus case through the real command: "
                         "exit code, wall time, peak RSS (source checkout; --tasks WORD filters the cases)"),
}


def run(args: argparse.Namespace) -> int:
    """Run the benchmark `args.which` (a key of BENCHMARKS)."""
    module, _ = BENCHMARKS[args.which]
    return importlib.import_module(module).run(args)
