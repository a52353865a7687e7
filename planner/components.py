"""Factories that turn configs into the loop's parts: reconstructor, renderer, scorer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import configs
from planner.task import PlannerTask
from scoring import Scorer, ScoringConfig, backend_class, load_scoring_config
from scoring.cache import AnswerCache
from scoring.pool import RayExecutor
from scoring.thread_executor import ThreadExecutor

if TYPE_CHECKING:   # imported where used: open3d and the renderer cost seconds, and the command line checks a
    # scoring config (scoring_config_for) before it needs them, so bad input is rejected quickly
    from reconstruction.models import ObjectModel
    from reconstruction.reconstructor import Reconstructor
    from render.renderer import Renderer

DEFAULT_SCORING = "default"


def object_models(task: PlannerTask) -> dict[str, ObjectModel]:
    """The task's objects by name with their known models and the catalog's physics priors: never a pose or the
    lab's physics."""
    return {name: a.named(name) for name, a in task.objects.items()}


def build_reconstructor(task: PlannerTask) -> Reconstructor:
    from reconstruction.reconstructor import Reconstructor

    return Reconstructor(object_models(task), task.robot, cameras=task.cameras)


def build_renderer(views_path: str | None = None, names: tuple[str, ...] | None = None) -> Renderer:
    from render.renderer import Renderer
    from render.views import load_views

    return Renderer(load_views(views_path or str(configs.file("views.yaml")), names))


def scoring_config_for(path: str | None, backend: str | None) -> ScoringConfig:
    """The scoring config a run uses.

    --scoring-config (a name in the config folders' scoring/, or a path) wins; else --scorer NAME picks the
    scoring config NAME when one exists (anthropic, openai, transformers, mixture ship); else the default config
    with every agent switched to NAME.
    """
    if path is None and backend is not None and backend in configs.names("scoring"):
        path, backend = backend, None
    cfg = load_scoring_config(str(configs.find("scoring", path or DEFAULT_SCORING, "--scoring-config")))
    if backend is not None:
        try:
            backend_class(backend)   # an unknown name fails here, with a did-you-mean
        except configs.InputError as exc:
            raise configs.InputError(None, "--scorer", exc.expected, configs.Said(exc.got), hint=exc.hint) from None
        agents = tuple(dataclasses.replace(a, backend=backend, name=f"{backend}-{i}")
                       for i, a in enumerate(cfg.agents))
        cfg = dataclasses.replace(cfg, agents=agents)
    return cfg


@dataclass(frozen=True)
class PoolOptions:
    """How agent calls run: Ray (True; a local Ray unless ray_address names a cluster), one by one in process
    (False), or None: Ray when ray_address is given, else in process, model-calling agents' calls in flight
    together on threads; plus the answer cache file (None: no cache)."""

    use_ray: bool | None = None
    ray_address: str | None = None
    cache_path: str | None = None


def build_scorer(path: str | None = None, backend: str | None = None,
                 pool: PoolOptions | None = None, views: tuple[str, ...] | None = None) -> tuple[Scorer, str]:
    """A Scorer for the run: its agents, how their calls run, and the answer cache.

    use_ray None: agents that call a model run on threads of this process (their calls wait on I/O and go in
    flight together; nothing listens on the network); an all-simjudge ensemble answers in microseconds and
    runs serially. A Ray address implies Ray: it starts here, and the agents' actors build their backends in
    the background, overlapping the lab's start.
    """
    pool = pool or PoolOptions()
    cfg = scoring_config_for(path, backend)
    if views is not None:   # a planner variant's views (one view instead of the fused ones)
        cfg = dataclasses.replace(cfg, views=tuple(views))
    calls_models = any(a.backend != "simjudge" for a in cfg.agents)
    use_ray = pool.use_ray
    if use_ray is None:
        use_ray = pool.ray_address is not None
    executor = None
    if use_ray:
        executor = RayExecutor.from_config(cfg, address=pool.ray_address)
        executor.start_in_background(cfg.agents)
    elif calls_models and pool.use_ray is None:
        # In flight together on threads: nothing started, nothing listening (a local Ray binds every interface).
        executor = ThreadExecutor(cfg.backends, cfg.pool.step_timeout_s)
    cache = AnswerCache(pool.cache_path) if pool.cache_path and calls_models else None
    scorer = Scorer(None, cfg, executor=executor, cache=cache)
    name = "+".join(sorted({a.backend for a in cfg.agents}))
    return scorer, name
