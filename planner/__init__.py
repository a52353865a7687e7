"""Top floor: task files, the annealed sampler, the MPC loop, the run log and report, the CLI and benchmarks."""
