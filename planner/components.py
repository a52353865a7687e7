"""Factories that turn configs into the loop's parts: reconstructor, renderer, scorer."""

from __future__ import annotations

import dataclasses

from planner.errors import TaskError
from planner.paths import config_path
from planner.task import PlannerTask
from reconstruction.models import ObjectModel
from reconstruction.reconstructor import Reconstructor
from render.renderer import Renderer
from render.views import load_views
from scoring import AgentConfig, ConfigError, Scorer, load_scoring_config

DEFAULT_SCORING = config_path("scoring", "default.yaml")
DEFAULT_VIEWS = config_path("views.yaml")


def build_reconstructor(task: PlannerTask) -> Reconstructor:
    """Only the objects' names and known models go in: never a pose or the lab's physics."""
    models = {name: ObjectModel(name=name, urdf=a.urdf, scale=a.scale, rgba=a.rgba, symmetry=a.symmetry)
              for name, a in task.objects.items()}
    return Reconstructor(models, task.robot, cameras=task.cameras)


def physics_priors(task: PlannerTask) -> dict[str, dict]:
    """The catalog's mass/friction for the twin (the lab's true values stay in the lab)."""
    return {name: {"mass_kg": a.mass_kg, "friction": a.friction, "fixed": a.fixed} for name, a in task.objects.items()}


def build_renderer(views_path: str | None = None, names: tuple[str, ...] | None = None) -> Renderer:
    return Renderer(load_views(views_path or DEFAULT_VIEWS, names))


def build_scorer(path: str | None = None, backend: str | None = None) -> tuple[Scorer, str]:
    """The scoring config's agents; `backend` (the CLI's --scorer) replaces every agent's backend."""
    try:
        cfg = load_scoring_config(path or DEFAULT_SCORING)
    except ConfigError as exc:
        raise TaskError(str(exc)) from None
    if backend is not None:
        if backend == "simjudge":
            agents = (AgentConfig("simjudge-0", "simjudge", "rollout-metrics"),)
        else:
            agents = tuple(dataclasses.replace(a, backend=backend, name=f"{backend}-{i}")
                           for i, a in enumerate(cfg.agents))
        cfg = dataclasses.replace(cfg, agents=agents)
    scorer = Scorer.from_config(cfg)
    name = "+".join(sorted({a.backend for a in cfg.agents}))
    return scorer, name
