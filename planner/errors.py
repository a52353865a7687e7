"""Errors of the planner floor."""


class TaskError(ValueError):
    """A task or config file that cannot be used. The message names the file, the field and what was expected."""


class RunAborted(RuntimeError):
    """The episode could not go on (the robot connection dropped, the lab died); the run log says why."""
