"""The shared input edge: the one error (file, field, expected, got), the strict YAML reader, the checks."""

import os
import pickle

import pytest

import configs
from configs import checks
from configs.safe_yaml import MAX_BYTES, parse_yaml, read_yaml

BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(9))


def test_the_error_carries_its_fields_and_pickles():
    err = configs.InputError("t.yaml", "objects.a.pose.xyz", "3 numbers", [1, 2], hint="; see the docs")
    assert (err.file, err.field, err.expected, err.got) == ("t.yaml", "objects.a.pose.xyz", "3 numbers", "[1, 2]")
    assert str(err) == "t.yaml: field 'objects.a.pose.xyz': expected 3 numbers, got [1, 2]; see the docs"
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is configs.InputError and str(again) == str(err) and again.field == err.field
    placed = configs.InputError(None, "width", "a number", "x").located("cam.yaml", "cameras[0]")
    assert (placed.file, placed.field) == ("cam.yaml", "cameras[0].width")


def test_values_are_truncated_and_secrets_never_shown():
    long = configs.InputError("f", "name", "a short name", "n" * 100_000)
    assert len(str(long)) < 400
    secret = "sk-ant-api03-" + "Q" * 40
    hidden = configs.InputError("f", "weights.safety", "a number", secret, secret=True)
    assert secret not in str(hidden) and "a string of 53 characters (not shown)" in str(hidden)
    assert configs.safe_key("api_key") == "api_key"   # short identifier-like keys print as they are ...
    assert configs.safe_key(secret) == "<key of 53 characters>"   # ... a long one (a pasted credential) does not
    assert "characters" in configs.safe_key("a key: with punctuation!")


def test_did_you_mean():
    assert configs.did_you_mean("stack_block", ["stack_blocks", "pick_place_tray"]) == "; did you mean 'stack_blocks'?"
    assert configs.did_you_mean("zzz", ["a", "b"]) == "; choose from a, b"
    assert configs.did_you_mean("zzz", ["a", "b"], list_choices=False) == ""


def test_an_alias_bomb_is_refused_at_its_first_anchor():
    assert len(BOMB) < 1700
    with pytest.raises(configs.InputError, match="without anchors or aliases") as info:
        parse_yaml(BOMB, "bomb.yaml")
    assert info.value.file == "bomb.yaml" and info.value.field == "line 1, column 4"


@pytest.mark.parametrize("text, fragment", [
    ("a: 1\na: 2\n", "each key once per mapping"),
    ("base: {x: 1}\nother:\n  <<: {y: 2}\n", "without '<<' merge keys"),
    ("a: [1, .inf]\n", "a finite number"),
    ("a: {b: .nan}\n", "a finite number"),
    ("a: " + "[" * 50 + "]" * 50 + "\n", "nesting at most"),
    ("a: !!python/object/apply:os.system ['true']\n", "valid YAML"),
    ("a: [unclosed\n", "valid YAML"),
])
def test_the_reader_refuses(text, fragment):
    with pytest.raises(configs.InputError, match=fragment) as info:
        parse_yaml(text, "x.yaml")
    assert info.value.file == "x.yaml" and info.value.field


def test_files_are_bounded_utf8_and_regular(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" + b"#" * MAX_BYTES)
    with pytest.raises(configs.InputError, match="at most"):
        read_yaml(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(configs.InputError, match="UTF-8") as info:
        read_yaml(latin)
    assert info.value.field == "line 1"
    with pytest.raises(configs.InputError, match="regular file"):
        read_yaml(tmp_path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(configs.InputError, match="regular file"):   # refused before it is opened (no hang)
        read_yaml(fifo)
    ok = tmp_path / "ok.yaml"
    ok.write_text("a: [1, 2.5, x]\nb: {c: null}\n")
    assert read_yaml(ok) == {"a": [1, 2.5, "x"], "b": {"c": None}}


def test_checks_name_the_field_and_the_range():
    assert checks.number(2, "f", "x", 0, 5) == 2.0
    for bad in (True, "2", float("inf"), 6, -1):
        with pytest.raises(configs.InputError, match=r"expected a finite number in \[0, 5\]"):
            checks.number(bad, "f", "x", 0, 5)
    with pytest.raises(configs.InputError) as info:
        checks.numbers([1, "a", 3], "f", "xyz", 3)
    assert info.value.field == "xyz[1]"
    with pytest.raises(configs.InputError, match="did you mean 'width'") as info:
        checks.mapping({"widht": 1}, "f", "cam", "a camera", ("width", "height"))
    assert info.value.field == "cam.widht"
