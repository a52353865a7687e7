"""Where a batch's episodes run at once: worker processes on this machine, or Ray tasks on a cluster.

Local (`run_in_processes`): a pool of `parallel` worker processes with the determinism settings in their
environment; each takes the next pending episode, so the cores stay busy until the grid is done. The workers are
forked from a fork server that imported the episode code once (forkserver with preload: a fresh interpreter,
no state of the driver's, and 4 CPU-seconds of imports paid once instead of once per worker). Nothing listens on
the network (a local Ray head would bind its ports on every interface, and its start cost a minute on a loaded
2-core machine). Every worker kills itself as soon as the driver ends (a pidfd of the driver, watched by a
thread), its lab follows its planner (PR_SET_PDEATHSIG), and the fork server ends when its last client has, so
a batch killed with kill -9 leaves nothing running. A worker that dies (out of memory, killed) breaks the pool:
the episodes without a result line are reported as not finished, and the same command runs them again.

Cluster (`run_on_ray`, with `--ray-address`): every episode is one Ray task with one CPU.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from planner.batch import Episode, EpisodeOptions, Progress, run_episode
from planner.reproduce import DETERMINISM_ENV

log = logging.getLogger(__name__)

POLL_S = 1.0           # the progress bar's clock ticks at least this often
PRELOAD = ["planner.episode"]   # what every episode imports (open3d, pybullet, the planner)


def render_threads(workers: int, cores: int | None = None) -> int:
    """Rendering threads per worker: the cores shared out. Mesa's llvmpipe (the EGL renderer of a machine
    without a GPU, in the twin and the lab) starts one thread per core in every process, so N workers would
    each render on all the cores at once."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


def _init_worker(driver_pid: int, lp_threads: int, environ: dict[str, str] | None = None) -> None:
    """Pool worker initializer: the driver's environment as it is now (the fork server keeps the one it started
    with, and a driver may have set e.g. ANTIGROUNDING_LIBERO_ASSETS since), llvmpipe's thread count (unless the
    user set one; the lab inherits it), and the worker's end with the driver's."""
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    os.environ.setdefault("LP_NUM_THREADS", str(lp_threads))
    _die_with_driver(driver_pid)


def _die_with_driver(driver_pid: int) -> None:
    """Pool worker initializer: SIGKILL this worker as soon as the driver process ends (killed with -9 included).

    A pidfd of the driver becomes readable when it exits; a daemon thread waits on it. (The worker's parent is
    the fork server, which outlives the driver while any worker lives: PR_SET_PDEATHSIG on it would never fire.)
    Where pidfds are missing (Linux < 5.3, other systems) the thread polls once a second whether the driver is
    still alive."""
    try:
        fd = os.pidfd_open(driver_pid)
    except (AttributeError, OSError):
        fd = None
    if fd is None and not _alive(driver_pid):
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])
        else:
            while _alive(driver_pid):
                time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)   # the lab follows: its PR_SET_PDEATHSIG is this worker

    threading.Thread(target=watch, name="driver-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_in_processes(pending: list[Episode], out_dir: str, options: EpisodeOptions, parallel: int,
                     finish: Callable[[dict], None], bar: Progress | None) -> list[str]:
    """Run the episodes on `parallel` worker processes; finish() gets each result line as it comes.
    Returns the keys of episodes that got no result (their worker died)."""
    for key, value in DETERMINISM_ENV.items():   # spawned workers start with this environment
        os.environ.setdefault(key, value)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)   # no effect once this process's fork server runs (it has them)
    workers = min(parallel, len(pending))
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(os.getpid(), render_threads(workers), dict(os.environ))) as pool:
        futures = {pool.submit(run_episode, ep, out_dir, options): ep for ep in pending}
        # any exception out of a future is a dead worker (BrokenProcessPool): run_episode catches the episode's own
        return _collect(futures, lambda fs: wait(fs, timeout=POLL_S, return_when=FIRST_COMPLETED)[0],
                        lambda fut: fut.result(), (Exception,), "worker process", finish, bar)


def _collect(handles: dict, wait_some: Callable[[list], set | list], result_of: Callable, died: tuple,
             what: str, finish: Callable[[dict], None], bar: Progress | None) -> list[str]:
    """Hand each episode's result line to finish() as it comes, ticking the bar while none does; returns the keys
    of the episodes whose worker died (`died`: the exceptions that say so; nothing was written, a rerun retries).

    handles: future or Ray ref -> its episode; wait_some(handles): the finished ones, after POLL_S at the most."""
    not_finished: list[str] = []
    while handles:
        ready = wait_some(list(handles))
        for handle in ready:
            ep = handles.pop(handle)
            try:
                rec = result_of(handle)
            except died as exc:
                log.error("episode %s: its %s died: %s", ep.key, what, exc)
                not_finished.append(ep.key)
                continue
            finish(rec)
        if bar is not None and not ready:
            bar.update()
    return not_finished


def run_on_ray(pending: list[Episode], out_dir: str, options: EpisodeOptions, parallel: int,
               ray_address: str, finish: Callable[[dict], None], bar: Progress | None) -> list[str]:
    """Run the episodes as Ray tasks on the cluster at `ray_address` (one CPU each)."""
    import ray

    owns = not ray.is_initialized()
    if owns:
        # Workers inherit the environment of the process that starts them: set the determinism settings here
        # (a runtime_env would cost every worker a start through Ray's runtime-env agent).
        for key, value in DETERMINISM_ENV.items():
            os.environ.setdefault(key, value)
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_episode)
        refs = {remote.remote(ep, out_dir, options): ep for ep in pending}
        # a RayError: the worker died (killed, out of memory)
        return _collect(refs, lambda rs: ray.wait(rs, num_returns=1, timeout=POLL_S)[0], ray.get,
                        (ray.exceptions.RayError,), "Ray task", finish, bar)
    finally:
        if owns:
            ray.shutdown()
