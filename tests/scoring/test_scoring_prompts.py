"""Prompt templates: every shipped variant loads and says what the agent needs; errors name the problem."""

import dataclasses
import hashlib
import re

import pytest

import configs
from scoring.backend import AgentConfig
from scoring.errors import AgentParamError, ConfigError
from scoring.prompts import (
    DEFAULT_PROMPT,
    build_prompt,
    check_prompt_param,
    load_template,
    prompt_variants,
)
from tests.fakes.stub_server import make_stub_request


def agent(prompt=None):
    return AgentConfig("a", "anthropic", "m", {} if prompt is None else {"prompt": prompt})


@pytest.fixture
def request_and_view():
    request = make_stub_request(5, ("front", "top"), with_evidence=True)
    return request, request.views[1]


def test_shipped_variants_include_the_default_and_a_second_one():
    variants = prompt_variants()
    assert DEFAULT_PROMPT in variants and len(variants) >= 2
    assert all((configs.shipped("prompts", v) / "user.md").is_file() for v in variants)


@pytest.mark.parametrize("variant", prompt_variants())
def test_every_variant_states_the_question(variant, request_and_view):
    request, view = request_and_view
    prompt = build_prompt(request, view, agent(variant))
    text = prompt.system + "\n" + prompt.user
    assert prompt.version == variant
    assert request.instruction in prompt.user and request.subtask in prompt.user
    assert "View: top" in prompt.user
    # the line the stub server (and a reader) finds the ids by
    assert re.search(r"Candidate ids: 0, 1, 2, 3, 4\b", prompt.user)
    for word in ("safety", "task_alignment", "efficiency", "feasibility", "view_clarity", "JSON", "0", "10"):
        assert word in text, (variant, word)
    # what the renderer draws, named exactly (render/palette.py: x red, y green, z blue)
    assert "x red, y green, z blue" in prompt.system
    # the gripper command the picture cannot show comes from the evidence
    assert "closes the gripper: 0" in prompt.user
    assert "$" not in text  # every placeholder was filled
    assert prompt.sha256 == hashlib.sha256((prompt.system + "\0" + prompt.user).encode()).hexdigest()


def test_default_is_v1_and_variants_differ(request_and_view):
    request, view = request_and_view
    default = build_prompt(request, view, agent())
    assert default == build_prompt(request, view, agent("v1"))
    terse = build_prompt(request, view, agent("v1-terse"))
    assert terse.sha256 != default.sha256 and len(terse.user + terse.system) < len(default.user + default.system)


def test_sha_changes_with_what_is_asked(request_and_view):
    request, view = request_and_view
    base = build_prompt(request, view, agent()).sha256
    other_instruction = dataclasses.replace(request, instruction="Put the blue block in the tray.")
    assert build_prompt(other_instruction, view, agent()).sha256 != base
    other_subtask = dataclasses.replace(request, subtask="place it")
    assert build_prompt(other_subtask, view, agent()).sha256 != base
    assert build_prompt(request, request.views[0], agent()).sha256 != base  # the view name is in the text
    assert build_prompt(request, view, agent()).sha256 == base  # and it is deterministic


def test_without_evidence_the_gripper_line_disappears(request_and_view):
    request, view = request_and_view
    bare = dataclasses.replace(request, evidence=None)
    prompt = build_prompt(bare, view, agent())
    assert "gripper:" not in prompt.user and "\n\n" not in prompt.user


def test_unknown_variant_gets_did_you_mean(request_and_view):
    request, view = request_and_view
    with pytest.raises(ConfigError, match=r"got 'v1-trese'; did you mean 'v1-terse'\?"):
        build_prompt(request, view, agent("v1-trese"))
    with pytest.raises(AgentParamError, match=r"^prompt: expected a known template name.*got 'v2'"):
        check_prompt_param({"prompt": "v2"})
    check_prompt_param({"prompt": "v1-terse"})
    check_prompt_param({})


def test_template_directory_by_path(tmp_path, request_and_view):
    request, view = request_and_view
    (tmp_path / "system.md").write_text("Judge $n_candidates curves in a ${width}x$height image. Costs $$0.\n")
    (tmp_path / "user.md").write_text("Do: $instruction\n$gripper_actions\nCandidate ids: $candidate_ids\n")
    prompt = build_prompt(request, view, agent(str(tmp_path)))
    assert prompt.system == "Judge 5 curves in a 96x72 image. Costs $0."
    assert prompt.user.startswith("Do: Put the red block") and prompt.version == tmp_path.name
    # an edited template is read again
    (tmp_path / "user.md").write_text("Only: $instruction; Candidate ids: $candidate_ids  \n")
    assert build_prompt(request, view, agent(str(tmp_path))).user.startswith("Only:")


def test_template_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError,
                       match="nowhere: field 'prompt': expected an existing template folder, got no such folder"):
        load_template(str(tmp_path / "nowhere"))
    (tmp_path / "system.md").write_text("x")
    with pytest.raises(ConfigError, match="got no user.md"):
        load_template(str(tmp_path))
    (tmp_path / "user.md").write_text("Task: $instrucion")
    with pytest.raises(ConfigError,
                       match=r"user\.md: field 'template': .*got '\$instrucion'; did you mean 'instruction'"):
        load_template(str(tmp_path))
    (tmp_path / "user.md").write_text("Costs $ 5")
    with pytest.raises(ConfigError, match=r"user\.md: field 'template': expected valid \$placeholders"):
        load_template(str(tmp_path))
