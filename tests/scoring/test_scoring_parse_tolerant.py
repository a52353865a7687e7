"""parse_answer's tolerance for real model output: fenced and chatty JSON, clamping, string ids, refusals."""

import json
import logging

import pytest

from scoring.errors import AnswerError, RefusalError
from scoring.schema import REFUSAL_MARKER, extract_json, looks_like_refusal, parse_answer


def row(cid, **over):
    return {"id": cid, "safety": 5, "task_alignment": 6, "efficiency": 7, "feasibility": 8, **over}


def answer(**over):
    return {"view_clarity": 7, "candidates": [row(1), row(2)], **over}


IDS = (1, 2, 3)


def test_bare_json_has_no_notes():
    parsed = parse_answer(json.dumps(answer()), IDS)
    assert parsed.notes == () and "notes" not in parsed.to_dict()
    assert parsed.scores[1]["feasibility"] == 8.0


@pytest.mark.parametrize("fence", ["```json\n{}\n```", "```\n{}\n```", "```JSON {} ```"])
def test_fenced_block(fence):
    text = "Sure! Here are my scores:\n" + fence.replace("{}", json.dumps(answer(), indent=2)) + "\nDone."
    parsed = parse_answer(text, IDS)
    assert parsed.view_clarity == 7.0 and set(parsed.scores) == {1, 2}
    assert parsed.notes == ("JSON taken from a fenced code block",)
    assert parsed.to_dict()["notes"] == ["JSON taken from a fenced code block"]


def test_chatty_text_with_braces_before_the_answer():
    # A brace in prose, an object without "candidates", and braces inside strings must not confuse it.
    text = (
        "Looking at {the picture}, candidate 2 is {\"unsure\": true} better.\n"
        + json.dumps(answer(candidates=[row(1), row(2, safety=1)]) | {"view_clarity": 4})
        + "\nThat's all {end}."
    )
    parsed = parse_answer(text, IDS)
    assert parsed.view_clarity == 4.0 and parsed.scores[2]["safety"] == 1.0
    assert parsed.notes[0].startswith("JSON taken from the text around it")


def test_json_with_braces_in_strings_is_still_found():
    obj = {"view_clarity": 5, "candidates": [row(1)]}
    text = 'note: "a {brace}" ' + json.dumps(obj)
    value, notes = extract_json(text)
    assert value == obj and notes


def test_clamping_records_notes_and_logs(caplog):
    caplog.set_level(logging.INFO, logger="scoring.schema")
    raw = answer(view_clarity=12, candidates=[row(1, safety=14), row(2, efficiency=-3)])
    parsed = parse_answer(json.dumps(raw), IDS)
    assert parsed.view_clarity == 10.0
    assert parsed.scores[1]["safety"] == 10.0 and parsed.scores[2]["efficiency"] == 0.0
    assert parsed.notes == (
        "view_clarity 12 clamped to 10",
        "candidate 1 safety 14 clamped to 10",
        "candidate 2 efficiency -3 clamped to 0",
    )
    assert any("clamped" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    # the caller's dict is not modified
    assert raw["candidates"][0]["safety"] == 14


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"view_clarity": NaN, "candidates": []}', "non-finite number NaN"),
        ('Scores: {"view_clarity": 5, "candidates": [{"id": 1, "safety": Infinity}]}', "non-finite number Infinity"),
        (json.dumps(answer(candidates=[row(1, safety="7")])), "candidates[0].safety: expected a number (finite)"),
        (json.dumps(answer(candidates=[row(1, safety=None)])), "candidates[0].safety: expected a number (finite)"),
        (json.dumps({"candidates": [row(1)]}), "missing required field 'view_clarity'"),
        (json.dumps(answer(candidates=[row(9)])), "9 is not a candidate in this request"),
        (json.dumps(answer(candidates=[row(1), row("1")])), "candidate 1 is scored more than once"),
        (json.dumps(answer(candidates=[row("one")])), "candidates[0].id: expected an integer"),
    ],
)
def test_still_strict_about_structure_and_numbers(bad, message):
    with pytest.raises(AnswerError) as info:
        parse_answer(bad, IDS)
    assert message in str(info.value)
    assert not isinstance(info.value, RefusalError)


def test_dict_input_with_nan_or_inf_is_not_clamped():
    for value in (float("nan"), float("inf")):
        with pytest.raises(AnswerError, match="expected a number"):
            parse_answer(answer(view_clarity=value), IDS)


def test_numeric_string_ids_are_read_as_integers_with_a_note():
    parsed = parse_answer(json.dumps(answer(candidates=[row("1"), row(" 2 ")])), IDS)
    assert set(parsed.scores) == {1, 2}
    assert parsed.notes == ("candidates[0].id '1' read as 1", "candidates[1].id ' 2 ' read as 2")


def test_unscored_candidates_stay_unscored():
    parsed = parse_answer(json.dumps(answer(candidates=[row(3)])), IDS)
    assert set(parsed.scores) == {3}


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I\u2019m sorry, but I can\u2019t assist with evaluating this image.",
        "I cannot assist with this request.",
        "Sorry, I can't provide scores for robot motions.",
        "I am unable to evaluate these trajectories.",
        "I must decline this request.",
    ],
)
def test_refusals_raise_refusal_error(text):
    assert looks_like_refusal(text)
    with pytest.raises(RefusalError, match="^refused: "):
        parse_answer(text, IDS)


def test_marker_means_refusal_whatever_the_words():
    with pytest.raises(RefusalError, match="refused: 'Policy.'"):
        parse_answer(f"{REFUSAL_MARKER} Policy.", IDS)
    with pytest.raises(RefusalError, match=r"\(no text\)"):
        parse_answer(REFUSAL_MARKER, IDS)


def test_json_wins_over_refusal_words():
    # A model that apologises and then answers anyway has answered.
    text = "I'm sorry, but the view is blurry. " + json.dumps(answer())
    assert set(parse_answer(text, IDS).scores) == {1, 2}


def test_plain_prose_and_broken_json_are_answer_errors_not_refusals():
    with pytest.raises(AnswerError, match="not valid JSON") as info:
        parse_answer("Candidate 1 looks best.", IDS)
    assert not isinstance(info.value, RefusalError)
    broken = json.dumps(answer())[:40]
    with pytest.raises(AnswerError, match="not valid JSON"):
        parse_answer(broken, IDS)
    with pytest.raises(AnswerError, match="fenced JSON block of the answer is not valid JSON"):
        parse_answer("```json\n" + broken + "\n```", IDS)
    with pytest.raises(AnswerError, match="empty"):
        parse_answer("   ", IDS)


def test_bytes_input_goes_through_the_same_path():
    parsed = parse_answer(("```json\n" + json.dumps(answer()) + "\n```").encode(), IDS)
    assert parsed.notes == ("JSON taken from a fenced code block",)
