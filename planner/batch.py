"""`antigrounding batch`: a task x seed x scoring-config x planner-variant grid of sim-lab episodes, resumable.

Every episode starts its own lab process and runs `planner.episode.run_task`. The driver appends one JSON line
per finished episode to OUT/results.jsonl (flushed and fsync'ed before the next line): `task`, `seed`, `config`,
`success`, `steps`, `run_dir` (plus `variant`, `error`, `time_s`, `stage_time_s`, `task_name`, `key`). A batch
started again with the same OUT skips the episodes already in that file, so a batch killed at any moment
(kill -9 included) finishes its grid without repeating or losing an episode: an episode whose line was not
written is run again, one whose line was written is never run again. A torn last line (the driver died
mid-write) is cut off before anything is appended.

Where episodes run (`planner/batch_pool.py`): as many at once as the machine has cores (`--parallel N` to
change it) in worker processes of this machine, nothing listening on the network; `--ray-address` runs them as
Ray tasks on a cluster (the nodes need this package and the task files at the same paths). `--parallel 1`
runs them one after another in this process (the serial rate the benchmark compares with). Planner variants
(`planner/batch_variants.py`) set MPCConfig fields and the rendered views per grid column.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import configs
from planner.batch_variants import DEFAULT_VARIANT, PlannerVariant
from planner.errors import TaskError

log = logging.getLogger(__name__)

RESULTS_NAME = "results.jsonl"
LOCK_NAME = ".batch.lock"
DEFAULT_CONFIG = "default"
RESULT_FIELDS = ("task", "seed", "config", "success", "steps", "run_dir")


@dataclass(frozen=True)
class Episode:
    """One cell of the grid: a task (name or path, as given), a seed, a scoring config (name or path) and a
    planner variant (its name; the default variant keeps the key of grids that had none)."""

    task: str
    seed: int
    config: str = DEFAULT_CONFIG
    variant: str = DEFAULT_VARIANT

    @property
    def key(self) -> str:
        base = f"{self.task}|{self.seed}|{self.config}"
        return base if self.variant == DEFAULT_VARIANT else f"{base}|{self.variant}"


MAX_GRID_SEEDS = 100_000   # a range is expanded into a set: bound it before it is


def parse_seeds(text: str | Iterable[str]) -> list[int]:
    """'0-9', '0,3,5', '2-4,8' (or several such arguments) -> sorted unique seeds; TaskError on anything else."""
    parts = [text] if isinstance(text, str) else list(text)
    seeds: set[int] = set()
    for part in parts:
        for item in str(part).split(","):
            item = item.strip()
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
            if not m:
                raise TaskError(f"--seeds: expected N, A-B or a comma list of them (0-9, 0,3,5), got {item!r}")
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            if b < a:
                raise TaskError(f"--seeds: range {item!r} runs backwards; write {b}-{a}")
            if b - a >= MAX_GRID_SEEDS or len(seeds) + b - a >= MAX_GRID_SEEDS:
                raise TaskError(f"--seeds: at most {MAX_GRID_SEEDS} seeds in one batch, got {item!r}")
            seeds.update(range(a, b + 1))
    if not seeds:
        raise TaskError("--seeds: no seed given")
    return sorted(seeds)


def make_grid(tasks: Iterable[str], seeds: Iterable[int], configs_: Iterable[str] | None = None,
              variants: Iterable[str] | None = None) -> list[Episode]:
    """Tasks x seeds x configs x variants, seeds outermost (so early results already cover every task and
    variant)."""
    cfgs = list(configs_ or [DEFAULT_CONFIG])
    names = list(variants or [DEFAULT_VARIANT])
    tasks = list(tasks)
    return [Episode(t, s, c, v) for s in seeds for c in cfgs for v in names for t in tasks]


def check_grid(grid: list[Episode]) -> None:
    """Every task and scoring config must exist before a single episode starts (TaskError names the bad one)."""
    from planner.components import scoring_config_for
    from planner.task import load_task

    for task in sorted({e.task for e in grid}):
        load_task(task)
    for cfg in sorted({e.config for e in grid}):
        scoring_config_for(None if cfg == DEFAULT_CONFIG else cfg, None)


# ---------------------------------------------------------------- the results file
class ResultsFile:
    """OUT/results.jsonl: one JSON object per finished episode, appended and fsync'ed line by line."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, RESULTS_NAME)
        os.makedirs(out_dir, exist_ok=True)
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """One batch per OUT at a time: a second one would run the same episodes twice."""
        fd = os.open(os.path.join(self.out_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TaskError(f"--out {self.out_dir}: another batch is running in this folder") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def repair(self) -> None:
        """Cut a torn last line (no newline: the writer died mid-line) so the next append starts clean."""
        try:
            with open(self.path, "rb+") as f:
                data = f.read()
                if data and not data.endswith(b"\n"):
                    cut = data.rfind(b"\n") + 1
                    log.warning("%s: dropping a torn last line (%d bytes)", self.path, len(data) - cut)
                    f.truncate(cut)
        except FileNotFoundError:
            pass

    def read(self) -> list[dict]:
        out = []
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(rec, dict) and "key" in rec:
                        out.append(rec)
        except FileNotFoundError:
            pass
        return out

    def done_keys(self) -> set[str]:
        return {r["key"] for r in self.read()}

    def append(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


# ---------------------------------------------------------------- one episode (driver or worker)
@dataclass(frozen=True)
class EpisodeOptions:
    max_steps: int | None = None
    n_candidates: int | None = None
    config_dirs: tuple[str, ...] = ()
    scorer: str | None = None
    variants: tuple[PlannerVariant, ...] = ()   # the definitions of the grid's variant names
    fast_render: bool = True

    def variant(self, name: str) -> PlannerVariant | None:
        if name == DEFAULT_VARIANT:
            return next((v for v in self.variants if v.name == name), None)
        for v in self.variants:
            if v.name == name:
                return v
        raise TaskError(None, "variant", f"one of the grid's variants ({', '.join(v.name for v in self.variants)})",
                        name)


def run_episode(ep: Episode, out_dir: str, options: EpisodeOptions) -> dict:
    """Run one episode and return its results line (never raises for a failed episode: error says why)."""
    from planner.episode import run_task

    configs.set_user_dirs(list(options.config_dirs))
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(ep.config))[0])
    runs = os.path.join(out_dir, "runs", slug)
    if ep.variant != DEFAULT_VARIANT:
        runs = os.path.join(runs, re.sub(r"[^A-Za-z0-9_.-]+", "_", ep.variant))
    start = time.perf_counter()
    head = {"key": ep.key, "task": ep.task, "seed": ep.seed, "config": ep.config, "variant": ep.variant}
    try:
        variant = options.variant(ep.variant)
        out = run_task(ep.task, seed=ep.seed, scorer=options.scorer, out_dir=runs,
                       scoring_config=None if ep.config == DEFAULT_CONFIG else ep.config,
                       max_steps=options.max_steps, n_candidates=options.n_candidates,
                       fast_render=options.fast_render, variant=variant)
    except Exception as exc:  # noqa: BLE001 - a bad episode is a result line, not the end of the batch
        log.exception("episode %s failed to run", ep.key)
        return {**head, "success": False, "steps": 0, "run_dir": None, "error": f"{type(exc).__name__}: {exc}",
                "time_s": round(time.perf_counter() - start, 2), "task_name": None}
    return {**head, "success": bool(out.success), "steps": out.steps, "run_dir": os.path.abspath(out.run_dir),
            "error": out.error, "time_s": round(out.time_s, 2), "task_name": out.task, "scorer": out.scorer,
            "stage_time_s": {k: round(v, 3) for k, v in out.stage_time_s.items()}}


# ---------------------------------------------------------------- progress
class Progress:
    """A one-line progress bar with ETA on stderr (a plain line per episode when stderr is not a terminal)."""

    def __init__(self, total: int, done_before: int, stream=None, width: int = 28) -> None:
        self.total, self.done_before, self.width = total, done_before, width
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.finished = 0
        self.successes = 0

    def eta_s(self) -> float | None:
        remaining = self.total - self.done_before - self.finished
        if self.finished == 0:
            return None
        return (time.monotonic() - self.start) / self.finished * remaining

    def line(self) -> str:
        done = self.done_before + self.finished
        fill = int(self.width * done / max(1, self.total))
        eta = self.eta_s()
        eta_text = "--:--" if eta is None else _hms(eta)
        return (f"[{'#' * fill}{'.' * (self.width - fill)}] {done}/{self.total} episodes, "
                f"{self.successes} ok this run, elapsed {_hms(time.monotonic() - self.start)}, ETA {eta_text}")

    def update(self, result: dict | None = None) -> None:
        if result is not None:
            self.finished += 1
            self.successes += bool(result.get("success"))
            if not self.tty:
                verdict = "success" if result.get("success") else ("ERROR" if result.get("error") else "fail")
                variant = result.get("variant") or DEFAULT_VARIANT
                column = result["config"] if variant == DEFAULT_VARIANT else f"{result['config']} / {variant}"
                print(f"  {result['task']} seed {result['seed']} [{column}]: {verdict} in "
                      f"{result['steps']} steps, {result.get('time_s', 0):.0f} s | {self.line()}",
                      file=self.stream, flush=True)
        if self.tty:
            print("\r" + self.line(), end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=self.stream, flush=True)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


# ---------------------------------------------------------------- the batch
@dataclass(frozen=True)
class BatchResult:
    results: list[dict]          # every line of results.jsonl that belongs to the grid, in grid order
    ran: int                     # episodes finished by this call
    wall_s: float                # this call's wall time
    parallel: int
    not_finished: list[str]      # keys whose Ray task died before it could report (run again to retry)

    @property
    def episodes_per_hour(self) -> float:
        return 3600.0 * self.ran / self.wall_s if self.wall_s > 0 else 0.0


def run_batch(grid: list[Episode], out_dir: str, options: EpisodeOptions | None = None, parallel: int | None = None,
              ray_address: str | None = None, progress: bool = True,
              on_result: Callable[[dict], None] | None = None) -> BatchResult:
    """Run every episode of the grid not yet in OUT/results.jsonl; returns the grid's results."""
    options = options or EpisodeOptions()
    out_dir = os.path.abspath(out_dir)
    results = ResultsFile(out_dir)
    results.lock()
    try:
        results.repair()
        done = results.done_keys()
        pending = [e for e in dict.fromkeys(grid) if e.key not in done]
        parallel = max(1, parallel or os.cpu_count() or 1)
        bar = Progress(len(dict.fromkeys(grid)), len(dict.fromkeys(grid)) - len(pending)) if progress else None
        if bar is not None and len(pending) < len(dict.fromkeys(grid)):
            print(f"antigrounding batch: resuming in {out_dir}: {len(dict.fromkeys(grid)) - len(pending)} of "
                  f"{len(dict.fromkeys(grid))} episodes already done", file=sys.stderr, flush=True)

        def finish(rec: dict) -> None:
            results.append(rec)
            if bar is not None:
                bar.update(rec)
            if on_result is not None:
                on_result(rec)

        start = time.monotonic()
        not_finished: list[str] = []
        if pending:
            if parallel == 1 and ray_address is None:
                for ep in pending:
                    finish(run_episode(ep, out_dir, options))
            elif ray_address is None:
                from planner.batch_pool import run_in_processes  # it imports this module

                not_finished = run_in_processes(pending, out_dir, options, parallel, finish, bar)
            else:
                from planner.batch_pool import run_on_ray

                not_finished = run_on_ray(pending, out_dir, options, parallel, ray_address, finish, bar)
        wall = time.monotonic() - start
        if bar is not None:
            bar.close()
        by_key = {r["key"]: r for r in results.read()}
        ordered = [by_key[e.key] for e in dict.fromkeys(grid) if e.key in by_key]
        return BatchResult(ordered, len(pending) - len(not_finished), wall, parallel, not_finished)
    finally:
        results.unlock()



# ---------------------------------------------------------------- summary
def summarise(results: list[dict]) -> list[dict]:
    """One row per (task, config, variant): episodes, successes, success rate, median steps, mean seconds, errors."""
    import statistics

    rows: dict[tuple[str, str, str], list[dict]] = {}
    for r in results:
        key = (r.get("task_name") or _task_label(r["task"]), r["config"], r.get("variant") or DEFAULT_VARIANT)
        rows.setdefault(key, []).append(r)
    out = []
    for (task, cfg, variant), rs in sorted(rows.items()):
        out.append({"task": task, "config": cfg, "variant": variant, "episodes": len(rs),
                    "successes": sum(bool(r["success"]) for r in rs),
                    "success_rate": sum(bool(r["success"]) for r in rs) / len(rs),
                    "median_steps": statistics.median(r["steps"] for r in rs),
                    "mean_time_s": statistics.fmean(r.get("time_s") or 0.0 for r in rs),
                    "errors": sum(1 for r in rs if r.get("error"))})
    return out


def _task_label(task: str) -> str:
    return os.path.splitext(os.path.basename(task))[0]


def format_summary(rows: list[dict], backend_note: str = "") -> str:
    """The summary table; a variant column when the grid has planner variants."""
    variants = any(r.get("variant", DEFAULT_VARIANT) != DEFAULT_VARIANT for r in rows)
    head = f"{'variant':24s} " if variants else ""
    lines = [f"{'task':22s} {'config':22s} {head}{'episodes':>8s} {'success':>8s} {'steps med':>9s} "
             f"{'s/episode':>9s} {'errors':>6s}"]
    for r in rows:
        col = f"{r.get('variant', DEFAULT_VARIANT)[:24]:24s} " if variants else ""
        lines.append(f"{r['task'][:22]:22s} {_task_label(r['config'])[:22]:22s} {col}{r['episodes']:8d} "
                     f"{r['success_rate']:8.0%} {r['median_steps']:9.1f} {r['mean_time_s']:9.1f} {r['errors']:6d}")
    if backend_note:
        lines.append(backend_note)
    return "\n".join(lines)


def results_for_dicts(results: list[dict]) -> list[dict]:
    """The contract fields of each result line first (task, seed, config, success, steps, run_dir)."""
    return [{**{k: r.get(k) for k in RESULT_FIELDS}, **{k: v for k, v in r.items() if k not in RESULT_FIELDS}}
            for r in results]


def episode_from_dict(d: dict) -> Episode:
    return Episode(str(d["task"]), int(d["seed"]), str(d.get("config", DEFAULT_CONFIG)),
                   str(d.get("variant") or DEFAULT_VARIANT))


def replace_config(grid: list[Episode], config: str) -> list[Episode]:
    return [dataclasses.replace(e, config=config) for e in grid]

