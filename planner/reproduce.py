"""Reproducible runs: what a run record must name to be re-run, and how two runs are compared.

`run_identity` is written into every run's header (run.json, key "reproduce"): the code version (git commit
and whether the tree had local changes, else the package version), every config the run read by content
hash (task file, scoring config, prompt templates, robot, cameras), the seeds (lab layout and noise, planner
sampler: both the task seed), the library versions whose numerics enter a step, and the process settings
that make a run repeat (PYTHONHASHSEED, one OpenMP thread).

`diff_runs` compares two run directories step by step with every timing removed (`strip_timings`): two runs of
the same task, seed and scoring config must give identical step records. `antigrounding compare A B` prints
the first differences.

The run itself repeats without any process setting: what made runs differ was Open3D's threaded RANSAC plane and
ICP (reconstruction/repeatable.py). `DETERMINISM_ENV` (PYTHONHASHSEED=0, one OpenMP thread per episode) is set for
batch workers as a guard for code that might one day iterate a set of strings or reduce on an OpenMP team, and
the header records whether the run had it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from planner.runlog import read_header, read_records

# Keys whose values are wall-clock measurements or moments: they differ between identical runs.
TIMING_KEYS = frozenset({"timings_s", "latency_s", "time_s", "stage_time_s", "started", "wall_s",
                         "ray_startup_s", "timestamp_s"})
# Absolute paths differ between two run directories of the same run.
PATH_KEYS = frozenset({"run_dir", "task_path", "log_path"})
DETERMINISM_ENV = {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
LIBRARIES = ("numpy", "scipy", "pybullet", "open3d", "trimesh", "antigrounding")


def deterministic_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) with the settings that make a run repeat; values already set are kept."""
    env = dict(os.environ if base is None else base)
    for key, value in DETERMINISM_ENV.items():
        env.setdefault(key, value)
    return env


def environment_is_deterministic(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return all(env.get(k) == v for k, v in DETERMINISM_ENV.items())


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(data: Any) -> str:
    """Hash of canonical JSON (sorted keys): the same content hashes the same whatever its file layout."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def sha256_dir(path: str | os.PathLike[str]) -> str:
    """Hash of every file's relative name and content under a directory (a prompt template)."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0" + bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


def code_version() -> dict[str, Any]:
    """The git commit of the source tree this code runs from (and whether it had local changes), else only the
    installed package version."""
    from planner.doctor import package_version

    out: dict[str, Any] = {"package": package_version(), "git_commit": None, "git_dirty": None}
    src = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return out   # an installed package without its repository: the version is all there is
    out["git_commit"] = commit or None
    out["git_dirty"] = bool(status.strip())
    return out


def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def prompt_hashes(scoring_config) -> dict[str, str]:
    """Content hash of each prompt template an agent of the config uses (VLM backends read them)."""
    from scoring.prompts import DEFAULT_PROMPT, resolve_template_dir

    out: dict[str, str] = {}
    for agent in scoring_config.agents:
        if agent.backend == "simjudge":
            continue   # it reads rollout metrics, never a prompt
        name = agent.params.get("prompt", DEFAULT_PROMPT)
        if name not in out:
            out[name] = sha256_dir(resolve_template_dir(name))
    return out


def robot_hash(robot) -> str:
    """The robot config by content: its URDF by the file's hash, not its path (an absolute path into the virtual
    environment, so two checkouts of one commit hashed the same robot differently)."""
    spec = robot.to_dict()
    if os.path.isfile(str(spec.get("urdf", ""))):
        spec["urdf"] = sha256_file(spec["urdf"])
    return sha256_json(spec)


def run_identity(task, scoring_config, seed: int, mpc_config=None, max_steps: int | None = None) -> dict[str, Any]:
    """Everything needed to reproduce a run, for its header. `task` is a PlannerTask."""
    import dataclasses

    configs_by_hash: dict[str, Any] = {
        "task": {"path": task.path, "sha256": sha256_file(task.path) if os.path.isfile(task.path) else None},
        "scoring": {"sha256": sha256_json(scoring_config.to_dict()), "content": scoring_config.to_dict()},
        "prompts": prompt_hashes(scoring_config),
        "robot": robot_hash(task.robot),
        "cameras": {c.name: sha256_json(_jsonable(c)) for c in task.cameras},
    }
    mpc = dataclasses.asdict(mpc_config) if mpc_config is not None else None
    return {
        "code": code_version(),
        "configs": configs_by_hash,
        "seeds": {"lab": int(seed), "planner": int(seed)},
        "mpc_config": mpc,
        "max_steps": max_steps,
        "libraries": library_versions(),
        "environment": {k: os.environ.get(k) for k in DETERMINISM_ENV},
        "deterministic_environment": environment_is_deterministic(),
    }


def _jsonable(obj: Any) -> Any:
    import dataclasses

    import numpy as np

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


# ---------------------------------------------------------------- comparing runs
def strip_timings(obj: Any) -> Any:
    """A record without wall-clock values and absolute paths (the parts that differ between identical runs)."""
    if isinstance(obj, dict):
        return {k: strip_timings(v) for k, v in obj.items() if k not in TIMING_KEYS and k not in PATH_KEYS}
    if isinstance(obj, list):
        return [strip_timings(v) for v in obj]
    return obj


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{where or '.'}: {_short(a)} != {_short(b)}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}.{k}: present in only one run"
            found = _first_difference(a[k], b[k], f"{where}.{k}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{where or '.'}: {_short(a)} != {_short(b)}"


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def step_records(run_dir: str) -> list[dict]:
    """The run's step and end records with timings stripped (events are human messages, also compared)."""
    return [strip_timings(r) for r in read_records(run_dir)]


def diff_runs(run_a: str, run_b: str, max_differences: int = 10) -> list[str]:
    """The first differences between two runs' records, ignoring timings; [] when they are identical."""
    a, b = step_records(run_a), step_records(run_b)
    out: list[str] = []
    ha, hb = read_header(run_a).get("reproduce", {}), read_header(run_b).get("reproduce", {})
    for key in ("configs", "seeds", "mpc_config", "max_steps"):
        found = _first_difference(strip_timings(ha.get(key)), strip_timings(hb.get(key)), f"header.{key}")
        if found:
            out.append(found)
    for i, (x, y) in enumerate(zip(a, b)):
        found = _first_difference(x, y, f"record {i} ({x.get('type')} {x.get('step', '')})")
        if found:
            out.append(found)
            if len(out) >= max_differences:
                return out
    if len(a) != len(b):
        out.append(f"{len(a)} records != {len(b)} records")
    return out


def chosen_sequence(run_dir: str) -> list[int | None]:
    return [r.get("chosen") for r in read_records(run_dir) if r.get("type") == "step"]
