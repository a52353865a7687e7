"""Prompt templates for the VLM backends: versioned text files under configs/prompts/<name>/.

A template is a directory holding ``system.md`` and ``user.md``: plain text with ``string.Template``
placeholders (``$instruction`` or ``${instruction}``; ``$$`` is a literal dollar). Nothing is evaluated, and
a placeholder that is not in ``PLACEHOLDERS`` is an error naming the file. JSON braces need no escaping,
which is why this is ``string.Template`` and not ``str.format``.

Placeholders:
    instruction      the task instruction
    subtask          the current subtask ("(none given)" when empty)
    view_name        the view's name (front, top, ...)
    width, height    the image size in pixels
    candidate_ids    the ids drawn in the picture, "0, 1, 2"
    n_candidates     how many there are
    gripper_actions  one line naming the candidates that open or close the gripper at their end (the picture
                     cannot show it), or "" when the request carries no CandidateEvidence. A template line
                     holding only a placeholder that expands to "" is dropped, so no empty line is left.

An agent picks its template with ``params: {prompt: v1-terse}`` (default ``v1``): a directory name under
configs/prompts/, or a path to a directory (absolute, or relative to the working directory; anything with a
path separator or starting with "." counts as a path). Different agents of one ensemble may use different
templates ("mixture of agents"). ``Prompt.sha256`` hashes the rendered text, so caches and run logs can tell
prompt versions apart without storing them twice.

The rotation question (``scoring.rotation_question``) has its own pair of files beside them,
``rotation_system.md`` and ``rotation_user.md`` (placeholders: instruction, subtask, view_name, width, height,
held_object); a template folder without them uses those of ``v1``. Its version reads ``<folder>/rotation``.

Every line of the user prompt that the stub server and the parsers rely on ("Candidate ids: 0, 1, 2") must
stay in each template: ``tests/scoring/test_scoring_prompts.py`` checks every shipped template.
"""

from __future__ import annotations

import hashlib
import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import configs
from scoring.errors import AgentParamError, ConfigError, did_you_mean

if TYPE_CHECKING:
    from scoring.backend import AgentConfig
    from scoring.request import ScoreRequest, ViewImage
    from scoring.rotation_question import RotationRequest

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = "v1"
TEMPLATE_FILES = ("system.md", "user.md")
PLACEHOLDERS = (
    "instruction",
    "subtask",
    "view_name",
    "width",
    "height",
    "candidate_ids",
    "n_candidates",
    "gripper_actions",
)
ROTATION_FILES = ("rotation_system.md", "rotation_user.md")
ROTATION_PLACEHOLDERS = ("instruction", "subtask", "view_name", "width", "height", "held_object")


@dataclass(frozen=True)
class Prompt:
    """The rendered prompt for one (request, view, agent) call.

    version: the template's name (its directory name); sha256: hex digest of the rendered system and user
    text, the part of a cache key that changes whenever the words sent to the model change.
    """

    system: str
    user: str
    version: str
    sha256: str


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded template directory: the raw text of system.md and user.md."""

    version: str
    directory: str
    system: str
    user: str


def prompt_variants() -> tuple[str, ...]:
    """Names of the templates in the config folders' prompts/ (user folders, then shipped), sorted."""
    return tuple(configs.names("prompts"))


def resolve_template_dir(name_or_path: str) -> Path:
    """The directory of a template name (under a config folder's prompts/) or path; ConfigError with a
    did-you-mean."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ConfigError(None, "prompt", "a template name or a directory path", name_or_path, secret=True)
    try:
        directory = configs.find("prompts", name_or_path, "prompt")
    except configs.ConfigNotFoundError as exc:   # a path names its file; a name is not shown when it may be a key
        got = configs.Said(exc.got) if exc.file else name_or_path
        raise ConfigError(exc.file, "prompt", exc.expected, got, secret=True, hint=exc.hint) from None
    missing = [name for name in TEMPLATE_FILES if not (directory / name).is_file()]
    if missing:
        raise ConfigError(str(directory), "prompt", f"a template folder with {', '.join(TEMPLATE_FILES)}",
                          configs.Said(f"no {', '.join(missing)}"))
    return directory.resolve()


def _check_placeholders(text: str, path: Path, allowed: tuple[str, ...] = PLACEHOLDERS) -> None:
    # string.Template.get_identifiers (3.11) lists the names; an invalid "$" (e.g. "$ 5") is caught by
    # is_valid. Unknown names are errors now, at load, not at the first call in the middle of a run.
    template = string.Template(text)
    if not template.is_valid():
        raise ConfigError(str(path), "template", "valid $placeholders (write $$ for a literal dollar sign)",
                          configs.Said("a '$' that starts no placeholder"))
    unknown = [name for name in template.get_identifiers() if name not in allowed]
    if unknown:
        raise ConfigError(str(path), "template", f"placeholders among ${', $'.join(allowed)}",
                          f"${unknown[0]}", hint=did_you_mean(unknown[0], allowed))


@lru_cache(maxsize=64)
def _load_cached(directory: str, stamps: tuple[tuple[int, int], ...], files: tuple[str, str] = TEMPLATE_FILES,
                 ) -> PromptTemplate:
    # Keyed on the files' (mtime, size) so that an edited template is read again.
    del stamps
    path = Path(directory)
    allowed = ROTATION_PLACEHOLDERS if files == ROTATION_FILES else PLACEHOLDERS
    texts = []
    for name in files:
        file_path = path / name
        try:
            text = configs.read_text(file_path, "prompt template", max_bytes=256 << 10)
        except configs.InputError as err:
            raise ConfigError(err.file, err.field or "template", err.expected,
                              *(() if err.got is None else (configs.Said(err.got),))) from None
        _check_placeholders(text, file_path, allowed)
        texts.append(text.strip("\n"))
    if not texts[1].strip():
        raise ConfigError(str(path / files[1]), "template", "a non-empty user template", configs.Said("nothing"))
    version = path.name if files == TEMPLATE_FILES else f"{path.name}/rotation"
    return PromptTemplate(version=version, directory=str(path), system=texts[0], user=texts[1])


def load_template(name_or_path: str = DEFAULT_PROMPT) -> PromptTemplate:
    """Load (and cache) a template by name or directory path; ConfigError names the file and the problem."""
    directory = resolve_template_dir(name_or_path)
    stats = [(directory / name).stat() for name in TEMPLATE_FILES]
    return _load_cached(str(directory), tuple((st.st_mtime_ns, st.st_size) for st in stats))


def load_rotation_template(name_or_path: str = DEFAULT_PROMPT) -> PromptTemplate:
    """The rotation question's template of a template folder (v1's when the folder has none)."""
    directory = resolve_template_dir(name_or_path)
    if not all((directory / name).is_file() for name in ROTATION_FILES):
        directory = resolve_template_dir(DEFAULT_PROMPT)
    stats = [(directory / name).stat() for name in ROTATION_FILES]
    return _load_cached(str(directory), tuple((st.st_mtime_ns, st.st_size) for st in stats), ROTATION_FILES)


def check_prompt_param(params: Mapping[str, Any]) -> None:
    """AgentParamError('prompt', ...) when params names a template that cannot be loaded (for backends'
    check_agent_params, so a bad name fails when the config is loaded, not in the middle of a run)."""
    if "prompt" not in params:
        return
    try:
        load_template(params["prompt"])
    except ConfigError as err:
        raise AgentParamError("prompt", f"expected {err.expected}, got {err.got}{err.hint}") from None


def _gripper_actions(request: ScoreRequest) -> str:
    if request.evidence is None:
        return ""
    closing = [cid for cid in request.candidate_ids if request.evidence[cid].gripper == "close"]
    opening = [cid for cid in request.candidate_ids if request.evidence[cid].gripper == "open"]
    if not closing and not opening:
        return "No candidate opens or closes the gripper."
    parts = []
    if closing:
        parts.append("closes the gripper: " + ", ".join(map(str, closing)))
    if opening:
        parts.append("opens the gripper: " + ", ".join(map(str, opening)))
    return "At the end of its motion, " + "; ".join(parts) + ". The others leave it as it is."


def _render(text: str, values: Mapping[str, str]) -> str:
    lines = []
    for line in text.split("\n"):
        stripped = line.strip()
        # A line that is only a placeholder expanding to nothing disappears with its newline.
        if stripped.startswith("$") and stripped.strip("${}") in values and not values[stripped.strip("${}")]:
            continue
        lines.append(line)
    return string.Template("\n".join(lines)).substitute(values)


def placeholder_values(request: ScoreRequest, view: ViewImage) -> dict[str, str]:
    """The text each placeholder expands to for this request and view."""
    return {
        **_view_values(request.instruction, request.subtask, view),
        "candidate_ids": ", ".join(str(cid) for cid in request.candidate_ids),
        "n_candidates": str(len(request.candidate_ids)),
        "gripper_actions": _gripper_actions(request),
    }


def rotation_placeholder_values(request: RotationRequest, view: ViewImage) -> dict[str, str]:
    """The text each rotation-question placeholder expands to."""
    return {**_view_values(request.instruction, request.subtask, view), "held_object": request.held_object}


def _view_values(instruction: str, subtask: str, view: ViewImage) -> dict[str, str]:
    """The placeholders every question shares: the task and the picture."""
    return {"instruction": instruction.strip(), "subtask": subtask.strip() or "(none given)",
            "view_name": view.name, "width": str(view.width), "height": str(view.height)}


def render_template(template: PromptTemplate, request: ScoreRequest | RotationRequest, view: ViewImage) -> Prompt:
    """Fill a loaded template for one request and view."""
    from scoring.rotation_question import RotationRequest

    if isinstance(request, RotationRequest):
        values = rotation_placeholder_values(request, view)
    else:
        values = placeholder_values(request, view)
    system = _render(template.system, values)
    user = _render(template.user, values)
    digest = hashlib.sha256(system.encode("utf-8") + b"\0" + user.encode("utf-8")).hexdigest()
    return Prompt(system=system, user=user, version=template.version, sha256=digest)


def build_prompt(request: ScoreRequest | RotationRequest, view: ViewImage, agent: AgentConfig) -> Prompt:
    """The prompt for one (agent, view) call, from the template named by ``agent.params['prompt']`` (its
    rotation files for a RotationRequest)."""
    from scoring.rotation_question import RotationRequest

    name = agent.params.get("prompt", DEFAULT_PROMPT)
    if isinstance(request, RotationRequest):
        return render_template(load_rotation_template(name), request, view)
    return render_template(load_template(name), request, view)
