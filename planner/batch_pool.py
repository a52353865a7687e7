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
    not_finished: list[str] = []
    with ProcessPoolExecutor(max_workers=min(parallel, len(pending)), mp_context=ctx,
                             initializer=_die_with_driver, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_episode, ep, out_dir, options): ep for ep in pending}
        while futures:
            done, _ = wait(futures, timeout=POLL_S, return_when=FIRST_COMPLETED)
            for fut in done:
                ep = futures.pop(fut)
                try:
                    rec = fut.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker (BrokenProcessPool): no line, rerun retries
                    log.error("episode %s: its worker process died: %s", ep.key, exc)
                    not_finished.append(ep.key)
                    continue
                finish(rec)
            if bar is not None and not done:
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
        not_finished: list[str] = []
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
            for ref in ready:
                ep = refs.pop(ref)
                try:
                    rec = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    # the worker died (killed, out of memory): nothing is written, so a rerun retries it
                    log.error("episode %s: its Ray task died: %s", ep.key, exc)
                    not_finished.append(ep.key)
                    continue
                finish(rec)
            if bar is not None and not ready:
                bar.update()
        return not_finished
    finally:
        if owns:
            ray.shutdown()
