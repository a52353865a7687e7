"""ANSWER_SCHEMA and the strict parser."""

import json

import pytest

from scoring.errors import AnswerError
from scoring.schema import (
    ANSWER_SCHEMA,
    DIMENSIONS,
    Answer,
    answer_schema,
    parse_answer,
    validate_against_schema,
)


def row(cid, safety=5, task_alignment=6, efficiency=7, feasibility=8):
    return {
        "id": cid,
        "safety": safety,
        "task_alignment": task_alignment,
        "efficiency": efficiency,
        "feasibility": feasibility,
    }


def good(**over):
    return {"view_clarity": 7.5, "candidates": [row(1), row(2, safety=0, feasibility=10)], **over}


def test_schema_is_plain_json_and_strict_for_api_use():
    # It must survive json round trip unchanged, to be usable verbatim as a tool / response_format schema.
    assert json.loads(json.dumps(ANSWER_SCHEMA)) == ANSWER_SCHEMA
    item = ANSWER_SCHEMA["properties"]["candidates"]["items"]
    assert item["required"] == ["id", *DIMENSIONS]
    assert item["additionalProperties"] is False and ANSWER_SCHEMA["additionalProperties"] is False
    for dim in DIMENSIONS:
        assert item["properties"][dim]["minimum"] == 0 and item["properties"][dim]["maximum"] == 10


def test_parse_dict_and_json_text_agree():
    from_dict = parse_answer(good(), [1, 2, 3])
    from_text = parse_answer(json.dumps(good()), (1, 2, 3))
    assert from_dict == from_text
    assert from_dict.view_clarity == 7.5
    assert from_dict.scores == {
        1: {"safety": 5.0, "task_alignment": 6.0, "efficiency": 7.0, "feasibility": 8.0},
        2: {"safety": 0.0, "task_alignment": 6.0, "efficiency": 7.0, "feasibility": 10.0},
    }
    # Candidate 3 is left out: allowed, it is unscored by this answer.
    assert 3 not in from_dict.scores


def test_to_dict_round_trips():
    answer = parse_answer(good(), [1, 2])
    assert parse_answer(answer.to_dict(), [1, 2]) == answer
    assert isinstance(answer, Answer)


@pytest.mark.parametrize(
    "answer, message",
    [
        (good(view_clarity="7"), "view_clarity: expected a number (finite), got '7'"),
        (good(view_clarity=True), "view_clarity: expected a number (finite), got True"),
        (
            good(candidates=[row(1), row(2, efficiency=None)]),
            "candidates[1].efficiency: expected a number (finite), got None",
        ),
        (good(candidates=[row(2.5)]), "candidates[0].id: expected an integer (finite), got 2.5"),
        ({"candidates": []}, "answer: missing required field 'view_clarity'"),
        (good(reason="because"), "answer: unexpected field(s) 'reason'"),
        (
            good(candidates=[{k: v for k, v in row(1).items() if k != "feasibility"}]),
            "candidates[0]: missing required field 'feasibility'",
        ),
        (
            good(candidates=[row(7)]),
            "candidates[0].id: 7 is not a candidate in this request (expected one of [1, 2])",
        ),
        (good(candidates=[row(1), row(2), row(1)]), "candidates[2].id: candidate 1 is scored more than once"),
        (good(candidates={"id": 1}), "candidates: expected an array"),
        ([1, 2], "answer: expected an object"),
    ],
)
def test_strict_rejections_name_the_field(answer, message):
    with pytest.raises(AnswerError) as info:
        parse_answer(answer, [1, 2])
    assert message in str(info.value)


@pytest.mark.parametrize(
    "answer, message",
    [
        (good(view_clarity=10.5), "view_clarity: expected a number in [0, 10], got 10.5"),
        (good(view_clarity=-0.1), "view_clarity: expected a number in [0, 10], got -0.1"),
        (good(candidates=[row(1, safety=11)]), "candidates[0].safety: expected a number in [0, 10], got 11"),
    ],
)
def test_out_of_range_breaks_the_schema_but_parse_answer_clamps_it(answer, message):
    # The schema (what the model is told) still says [0, 10]; parse_answer repairs such answers with a note
    # (tests/scoring/test_scoring_parse_tolerant.py covers the repairs).
    with pytest.raises(AnswerError) as info:
        validate_against_schema(answer, ANSWER_SCHEMA)
    assert message in str(info.value)
    parsed = parse_answer(answer, [1, 2])
    assert parsed.notes and "clamped" in parsed.notes[0]


def test_integral_float_id_is_accepted_as_int():
    # JSON-schema "integer" admits 2.0; the id comes back as a Python int.
    answer = parse_answer(good(candidates=[row(2.0)]), [1, 2])
    assert list(answer.scores) == [2] and isinstance(next(iter(answer.scores)), int)


def test_text_that_is_not_json_or_has_nan():
    with pytest.raises(AnswerError, match="not valid JSON"):
        parse_answer("Candidate 1 looks best.", [1])
    with pytest.raises(AnswerError, match="non-finite number NaN"):
        parse_answer('{"view_clarity": NaN, "candidates": []}', [1])


def test_answer_schema_with_ids_restricts_id_and_leaves_the_original_alone():
    schema = answer_schema([3, 1])
    assert schema["properties"]["candidates"]["items"]["properties"]["id"]["enum"] == [1, 3]
    assert "enum" not in ANSWER_SCHEMA["properties"]["candidates"]["items"]["properties"]["id"]
    with pytest.raises(AnswerError, match=r"candidates\[0\]\.id: expected one of \[1, 3\], got 2"):
        validate_against_schema(good(candidates=[row(2)]), schema)


def test_validator_refuses_keywords_it_does_not_implement():
    with pytest.raises(ValueError, match="pattern"):
        validate_against_schema("x", {"type": "string", "pattern": "^x$"})
