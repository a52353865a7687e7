"""Errors of the planner floor."""

import configs


class TaskError(configs.InputError):
    """A task or config file that cannot be used: file, field, expected, got."""


class RunAborted(RuntimeError):
    """The episode could not go on (the robot connection dropped, the lab died); the run log says why."""
