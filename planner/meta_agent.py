"""`antigrounding optimise`, part (b): a meta-agent proposes revised sub-question phrasing from the worst steps.

The digest: the steps where the logged choice was furthest from the best candidate the twin showed (lowest
u(chosen) / max u, see optimise.py), each with its pictures, the agents' mean scores of the chosen candidate
and of the best one, and what happened. The meta-agent (the first agent of any scoring config whose backend
calls a model: anthropic or openai, through their real client libraries) answers with one structured object:
`{"revisions": {dimension: new sub-question text}, "rationale": text}`, forced through a tool (Anthropic) or a
JSON schema response format (OpenAI). The revision is written as a new versioned prompt directory next to the
base template: user.md with the revised "- safety: ..." lines, system.md unchanged, and PROVENANCE.md saying
which steps, which model and why. Whether it is kept is decided on held-out runs (optimise_cli.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.errors import TaskError
from planner.optimise import StepData
from planner.replay import LoggedStep
from scoring.schema import DIMENSIONS

MAX_TEXT = 600          # characters of one revised sub-question
MAX_DIGEST_STEPS = 4    # pictures cost tokens: the worst few steps are enough to show a bias
TOOL_NAME = "propose_prompt_revision"
META_SYSTEM = (
    "You review a robot planner's scoring agents. Each MPC step, agents looked at pictures of numbered candidate "
    "trajectories and scored each candidate on safety, task_alignment, efficiency and feasibility (0-10), guided "
    "by one sub-question per dimension. Below are the steps where their choice was worst compared with the "
    "candidate a physics twin showed making the most progress. Find the bias in their judgement and rewrite the "
    "sub-questions to remove it. Keep each sub-question one or two sentences, neutral, and about what the "
    "picture shows.")


def revision_schema() -> dict:
    return {"type": "object", "required": ["revisions", "rationale"], "additionalProperties": False,
            "properties": {
                "revisions": {"type": "object", "additionalProperties": False,
                              "properties": {k: {"type": "string"} for k in DIMENSIONS}},
                "rationale": {"type": "string"}}}


@dataclass(frozen=True)
class DigestStep:
    step: LoggedStep
    value: float
    best_id: int
    chosen_id: int | None


def worst_steps(steps: list[LoggedStep], data: list[StepData], n: int = MAX_DIGEST_STEPS) -> list[DigestStep]:
    """The n steps whose logged choice was worth least relative to the best candidate in the pool."""
    by_key = {(s.run_dir, s.step): s for s in steps}
    rated = []
    for d in data:
        best = float(np.max(np.where(d.pool, d.u, -np.inf)))
        step = by_key.get((d.episode, d.step))
        if step is None or not best > 0 or step.chosen not in d.ids:
            continue
        value = float(d.u[d.ids.index(step.chosen)]) / best
        rated.append(DigestStep(step, value, d.ids[int(np.argmax(np.where(d.pool, d.u, -np.inf)))], step.chosen))
    rated.sort(key=lambda r: (r.value, r.step.run_dir, r.step.step))
    return [r for r in rated if r.value < 1.0][:n]


def digest_text(digest: list[DigestStep], template_user: str) -> str:
    lines = ["The sub-questions the agents were given (from the user prompt):"]
    lines += [ln for ln in template_user.splitlines() if any(ln.strip().startswith(f"- {k}:") for k in DIMENSIONS)]
    for i, r in enumerate(digest, 1):
        rows = r.step.rows
        lines.append(f"\nStep {i} (pictures {i}.*): subtask '{r.step.subtask}'. Candidate ids: "
                     f"{', '.join(map(str, r.step.candidate_ids))}")

        def describe(cid, rows=rows, r=r):
            row = rows.get(cid, {})
            ms = row.get("mean_scores", {})
            return (f"candidate {cid} ({row.get('label', '')}, gripper {row.get('gripper')}, path "
                    f"{row.get('path_length_m', 0):.2f} m): twin progress {r.step.progress(cid):.2f}, mean scores "
                    + ", ".join(f"{k} {ms.get(k, float('nan')):.1f}" for k in DIMENSIONS))

        lines.append(f"  chosen {describe(r.chosen_id)}")
        lines.append(f"  best   {describe(r.best_id)} (step progress before: {r.step.progress_now:.2f})")
    lines.append("\nPropose revised sub-questions (only for the dimensions that need it) and explain the bias.")
    return "\n".join(lines)


def _images(digest: list[DigestStep], max_views: int = 1) -> list[bytes]:
    out = []
    for r in digest:
        for _, path in list(r.step.images.items())[:max_views]:
            with open(path, "rb") as f:
                out.append(f.read())
    return out


def ask_meta_agent(backend, agent, text: str, images: list[bytes]) -> dict:
    """One call to the meta-agent through the backend's own client (anthropic or openai library)."""
    from scoring import BackendError

    client = backend._get_client()   # the backend resolves key, base URL and timeout exactly as for scoring
    model = agent.model or getattr(backend, "model", "")
    schema = revision_schema()
    b64 = [base64.b64encode(png).decode("ascii") for png in images]
    try:
        if backend.name == "anthropic":
            content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": d}}
                       for d in b64] + [{"type": "text", "text": text}]
            msg = client.messages.create(
                model=model, max_tokens=2048, system=META_SYSTEM, messages=[{"role": "user", "content": content}],
                tools=[{"name": TOOL_NAME, "description": "Submit revised sub-questions.", "input_schema": schema}],
                tool_choice={"type": "tool", "name": TOOL_NAME})
            block = next((b for b in msg.content if getattr(b, "type", "") == "tool_use"), None)
            if block is None:
                raise TaskError("meta-agent: the answer holds no tool call")
            answer = dict(block.input)
        elif backend.name == "openai":
            content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{d}"}} for d in b64]
            content.append({"type": "text", "text": text})
            completion = client.chat.completions.create(
                model=model, messages=[{"role": "system", "content": META_SYSTEM},
                                       {"role": "user", "content": content}],
                response_format={"type": "json_schema",
                                 "json_schema": {"name": TOOL_NAME, "schema": schema, "strict": False}})
            raw = completion.choices[0].message.content or ""
            match = re.search(r"\{.*\}", raw, re.S)
            answer = json.loads(match.group(0) if match else raw)
        else:
            raise TaskError(f"meta-agent: backend {backend.name!r} cannot write prompts; use an anthropic or "
                            "openai agent (--meta-config)")
    except (BackendError, TaskError):
        raise
    except json.JSONDecodeError as exc:
        raise TaskError(f"meta-agent: the answer is not JSON: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - client library errors, scrubbed of any key
        raise TaskError(f"meta-agent call failed: {backend._scrub(f'{type(exc).__name__}: {exc}')}") from None
    return check_revision(answer)


def check_revision(answer: object) -> dict:
    """{'revisions': {dim: text}, 'rationale': text}, validated; TaskError naming the field otherwise."""
    if not isinstance(answer, dict) or not isinstance(answer.get("revisions"), dict):
        raise TaskError(f"meta-agent: expected {{'revisions': {{...}}, 'rationale': ...}}, got {str(answer)[:200]}")
    revisions = {}
    for k, v in answer["revisions"].items():
        if k not in DIMENSIONS:
            raise TaskError(f"meta-agent: field 'revisions.{k}': not a dimension ({', '.join(DIMENSIONS)})")
        if not isinstance(v, str) or not v.strip() or len(v) > MAX_TEXT:
            raise TaskError(f"meta-agent: field 'revisions.{k}': expected text of 1-{MAX_TEXT} characters")
        revisions[k] = " ".join(v.split())
    if not revisions:
        raise TaskError("meta-agent: field 'revisions': no dimension revised")
    return {"revisions": revisions, "rationale": str(answer.get("rationale", "")).strip()}


def apply_revision(user_text: str, revisions: dict[str, str]) -> str:
    """The user template with each revised dimension's '- dim: ...' line replaced ('$' kept literal)."""
    out, seen = [], set()
    for line in user_text.splitlines():
        stripped = line.lstrip()
        dim = next((k for k in revisions if stripped.startswith(f"- {k}:")), None)
        if dim is None:
            out.append(line)
            continue
        indent = line[: len(line) - len(stripped)]
        out.append(f"{indent}- {dim}: {revisions[dim].replace('$', '$$')}")
        seen.add(dim)
    missing = sorted(set(revisions) - seen)
    if missing:
        raise TaskError(f"prompt revision: the base template has no '- {missing[0]}:' line to revise")
    return "\n".join(out) + "\n"


def next_version_dir(root: str, base_name: str) -> Path:
    """root/<base>-opt<N> for the first N not taken (versions are never overwritten)."""
    base = re.sub(r"-opt\d+$", "", base_name)
    n = 1
    while (Path(root) / f"{base}-opt{n}").exists():
        n += 1
    return Path(root) / f"{base}-opt{n}"


def write_prompt_dir(root: str, template, revision: dict, provenance: str) -> Path:
    """Write the revised template as a new versioned directory under root; returns it."""
    from scoring.prompts import load_template

    path = next_version_dir(root, template.version)
    path.mkdir(parents=True)
    (path / "system.md").write_text(template.system + "\n", encoding="utf-8")
    (path / "user.md").write_text(apply_revision(template.user, revision["revisions"]), encoding="utf-8")
    (path / "PROVENANCE.md").write_text(provenance, encoding="utf-8")
    load_template(str(path))   # the new version must load (placeholders checked) or it is not written
    return path


def propose_prompt(steps: list[LoggedStep], data: list[StepData], meta_scorer, base_prompt: str,
                   out_root: str) -> tuple[Path | None, dict, list[DigestStep]]:
    """Ask the meta-agent and write its revision; (None, {}, []) when no step was bad enough to learn from."""
    from scoring.prompts import load_template

    digest = worst_steps(steps, data)
    if not digest:
        return None, {}, []
    agent = next((a for a in meta_scorer.agents if a.backend in ("anthropic", "openai")), None)
    if agent is None:
        raise TaskError("--meta-config: the scoring config has no anthropic or openai agent to act as meta-agent")
    template = load_template(base_prompt)
    text = digest_text(digest, template.user)
    revision = ask_meta_agent(meta_scorer.backends[agent.backend], agent, text, _images(digest))
    provenance = "\n".join([
        f"# {next_version_dir(out_root, template.version).name}: revised from {template.version}",
        f"meta-agent: {agent.backend} / {agent.model or '(backend default)'}",
        "steps reviewed: " + ", ".join(f"{os.path.basename(r.step.run_dir)} step {r.step.step} "
                                      f"(value {r.value:.2f})" for r in digest),
        "", "## rationale", revision["rationale"] or "(none given)", "", "## revised sub-questions",
        *[f"- {k}: {v}" for k, v in revision["revisions"].items()], ""])
    return write_prompt_dir(out_root, template, revision, provenance), revision, digest
