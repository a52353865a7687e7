"""The LIBERO lab: LIBERO's tasks (robosuite on MuJoCo) behind the sim lab's protocol.

`launcher` (planner side) starts `lab` in LIBERO's own virtual environment; `spec` is what it is told; `cameras`
and `controller` are the pure conversions both sides share; `envs` and `prepare` run only inside that
environment (`make libero`).
"""
