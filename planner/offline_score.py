"""`antigrounding score`: ask the agents about saved pictures, outside any episode.

For debugging prompts and backends: score the PNGs of a logged step (``--step runs/<run>/step_003``, ids and
subtask read from the run log) or any PNGs (``--images front=a.png top=b.png --ids 0 1 2``). Nothing moves;
no lab is started. simjudge cannot answer here (it needs twin rollouts, which saved pictures do not carry).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image

import configs
from planner.errors import TaskError
from planner.runlog import read_records
from scoring import Scorer, ScoreRequest, ScoreTable, ViewImage

MAX_IMAGE_BYTES = 32 << 20


@dataclass(frozen=True)
class SavedStep:
    """What a logged step showed the agents: subtask text, candidate ids and view name -> PNG path."""

    subtask: str
    candidate_ids: tuple[int, ...]
    images: dict[str, str]


def load_logged_step(step_dir: str) -> SavedStep:
    """Read step N of a run from `<run>/step_NNN` and the run's steps.jsonl."""
    step_dir = os.path.normpath(step_dir)
    run_dir, leaf = os.path.split(step_dir)
    if not leaf.startswith("step_") or not leaf[5:].isdigit():
        raise TaskError(None, "--step", "a run's step folder like runs/<run>/step_003", step_dir)
    k = int(leaf[5:])
    try:
        records = read_records(run_dir)
    except OSError as exc:
        raise TaskError(None, "--step", f"a step folder of a readable run log ({exc.strerror or exc})",
                        step_dir) from None
    rec = next((r for r in records if r.get("type") == "step" and r.get("step") == k), None)
    if rec is None:
        raise TaskError(None, "--step", f"a step the run log records (it has no step {k})", step_dir)
    images = {view: os.path.join(run_dir, rel) for view, rel in rec.get("images", {}).items()}
    ids = tuple(int(c["id"]) for c in rec.get("candidates", []))
    return SavedStep(rec.get("subtask", ""), ids, images)


def parse_image_args(items: list[str]) -> dict[str, str]:
    """`view=path.png` pairs (or bare paths, named by their file stem) -> {view: path}."""
    images: dict[str, str] = {}
    for item in items:
        view, sep, path = item.partition("=")
        if not sep:
            path, view = item, os.path.splitext(os.path.basename(item))[0]
        if view in images:
            raise TaskError(None, "--images", "each view once", view)
        images[view] = path
    return images


def view_image(name: str, path: str) -> ViewImage:
    if os.path.isfile(path) and os.path.getsize(path) > MAX_IMAGE_BYTES:
        raise TaskError(path, "--images", f"an image of at most {MAX_IMAGE_BYTES} bytes", configs.Said("a larger file"))
    try:
        with open(path, "rb") as fh:
            png = fh.read()
        with Image.open(path) as img:
            img.verify()
            width, height = img.size
    except (OSError, SyntaxError) as exc:   # PIL reports a corrupt PNG as SyntaxError
        raise TaskError(path, "--images", f"a readable image for view {name!r}",
                        configs.Said(type(exc).__name__)) from None
    return ViewImage(name, png, width, height)


def score_images(scorer: Scorer, instruction: str, subtask: str, ids: tuple[int, ...],
                 images: dict[str, str]) -> ScoreTable:
    if not images:
        raise TaskError(None, "--images", "pictures to score (--step DIR or --images view=path.png ...)",
                        configs.Said("none"))
    if not ids:
        raise TaskError(None, "--ids", "candidate ids (--ids 0 1 2 ... for plain images)", configs.Said("none"))
    request = ScoreRequest(instruction=instruction, subtask=subtask, candidate_ids=ids,
                           views=tuple(view_image(v, p) for v, p in images.items()))
    return scorer.score(request)


def format_table(table: ScoreTable) -> str:
    """S_j per candidate, best first, then one line per call (backend named wherever a number is shown)."""
    lines = [f"M' = {table.M_prime} agent(s) answered; view confidence C': "
             + ", ".join(f"{v} {c:.2f}" for v, c in table.view_confidence.items())]
    lines.append(" id |   S_j")
    for j in sorted(table.S, key=lambda j: -table.S[j]):
        lines.append(f"{j:3d} | {table.S[j]:5.2f}")
    if table.error:
        lines.append(f"error: {table.error}")
    for c in table.calls:
        outcome = ("ok, from the cache" if c.cached else "ok") if c.ok else f"FAILED {c.error}"
        lines.append(f"  {c.agent} [{c.backend}/{c.model or '-'}] view {c.view}: {outcome} ({c.latency_s:.2f} s)")
    return "\n".join(lines)
