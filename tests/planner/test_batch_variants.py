"""Planner variants for batch and bench: data validated against MPCConfig's fields, applied to the run's config,
a grid dimension with its own result keys; and the local batch on worker processes."""

import dataclasses

import pytest

from configs import InputError
from planner.batch import DEFAULT_CONFIG, Episode, EpisodeOptions, make_grid, run_batch, summarise
from planner.batch_variants import (
    DEFAULT_VARIANT,
    PlannerVariant,
    grid_variants,
    load_variants,
    parse_planner_options,
    settable_fields,
)
from planner.mpc import MPCConfig

VARIANTS = """\
variants:
  full: {}
  slow: {speed_scale: 0.25, sampler.n_candidates: 6}
  single_view: {views: [front]}
"""


def _file(tmp_path, text):
    path = tmp_path / "variants.yaml"
    path.write_text(text)
    return str(path)


def test_variants_load_and_apply_to_mpc_config(tmp_path):
    full, slow, single = load_variants(_file(tmp_path, VARIANTS))
    assert (full.name, full.mpc, full.views) == ("full", (), None)
    assert single.views == ("front",) and single.apply(MPCConfig()) == MPCConfig()
    cfg = slow.apply(MPCConfig(seed=7))
    assert cfg.speed_scale == 0.25 and cfg.sampler.n_candidates == 6 and cfg.seed == 7
    assert isinstance(cfg.speed_scale, float)
    assert slow.describe() == "speed_scale=0.25, sampler.n_candidates=6"


def test_every_settable_field_is_an_mpc_config_field_and_seed_is_not():
    fields = settable_fields()
    assert "speed_scale" in fields and "sampler.n_candidates" in fields
    assert "seed" not in fields and "fast_render" not in fields
    names = {f.name for f in dataclasses.fields(MPCConfig)}
    assert {k.split(".")[0] for k in fields} <= names


@pytest.mark.parametrize("body, field, words", [
    ("  v: {speed_scal: 0.3}", "variants.v.speed_scal", "did you mean 'speed_scale'"),
    ("  v: {seed: 3}", "variants.v.seed", "a field a variant may set"),
    ("  v: {speed_scale: fast}", "variants.v.speed_scale", "a float"),
    ("  v: {speed_scale: 2.0}", "variants.v", "expected a fraction in (0, 1]"),
    ("  v: {sampler.n_candidates: true}", "variants.v.sampler.n_candidates", "an int"),
    ("  v: {views: [fron]}", "variants.v.views", "did you mean 'front'"),
    ("  v: {views: []}", "variants.v.views", "a non-empty list of view names"),
    ("  v: [speed_scale]", "variants.v", "a mapping of MPCConfig fields"),
    ("  'bad name!': {}", "variants", "a variant name"),
])
def test_a_bad_variant_names_the_file_the_field_and_what_was_expected(tmp_path, body, field, words):
    path = _file(tmp_path, "variants:\n" + body + "\n")
    with pytest.raises(InputError) as info:
        load_variants(path)
    err = info.value
    assert err.file == path and err.field == field and words in str(err)


def test_a_variants_file_by_name_and_a_missing_one(tmp_path):
    with pytest.raises(InputError, match="--variants: expected a variants YAML file"):
        load_variants("no_such_variants")
    with pytest.raises(InputError, match="one field, 'variants'"):
        load_variants(_file(tmp_path, "full: {}\n"))


def test_the_shipped_ablations_name_the_five_variants():
    """configs/ablations.yaml is validated against MPCConfig when it is read: until the planner has the three
    switches it names, reading it says which field is missing; after, the five variants load."""
    try:
        variants = load_variants("ablations")
    except InputError as exc:
        assert exc.field.startswith("variants.no_") and "a field of planner.mpc.MPCConfig" in str(exc)
        return
    assert [v.name for v in variants] == ["full", "no_anchored_proposals", "no_rotation_module",
                                          "no_failure_recovery", "single_view"]
    assert all(isinstance(value, bool) and not value for v in variants[1:4] for _, value in v.mpc)
    assert variants[4].views == ("front",)


def test_planner_options_from_the_command_line(tmp_path):
    assert parse_planner_options(["speed_scale=0.3", "views=[front, top]"]) == {"speed_scale": 0.3,
                                                                               "views": ["front", "top"]}
    [only] = grid_variants(None, None, ["speed_scale=0.3"])
    assert only.name == "speed_scale=0.3" and only.mpc == (("speed_scale", 0.3),)
    both = grid_variants(_file(tmp_path, VARIANTS), ["single_view", "full"], ["speed_scale=0.4"])
    assert [v.name for v in both] == ["single_view+speed_scale=0.4", "full+speed_scale=0.4"]
    assert both[0].views == ("front",) and both[0].mpc == (("speed_scale", 0.4),)
    for bad, words in ((["speed_scale"], "KEY=VALUE"), (["speed_scal=0.3"], "did you mean 'speed_scale'"),
                       (["views=[side, nope]"], "known view name")):
        with pytest.raises(InputError, match=words) as info:
            grid_variants(None, None, bad)
        assert info.value.field == "--planner-option"
    with pytest.raises(InputError, match="did you mean 'slow'"):
        grid_variants(_file(tmp_path, VARIANTS), ["slwo"], None)


def test_variants_are_a_grid_dimension_with_their_own_keys():
    grid = make_grid(["t1", "t2"], [0, 1], None, ["full", "single_view"])
    assert len(grid) == 8 and len({e.key for e in grid}) == 8
    assert grid[0] == Episode("t1", 0, DEFAULT_CONFIG, "full") and grid[2].variant == "single_view"
    assert Episode("t", 0).key == "t|0|default"            # a grid without variants keeps its old keys
    assert Episode("t", 0, "default", "full").key == "t|0|default|full"
    lines = [{"key": e.key, "task": e.task, "seed": e.seed, "config": e.config, "variant": e.variant,
              "success": e.variant == "full", "steps": 3, "run_dir": None, "time_s": 1.0} for e in grid]
    rows = summarise(lines)
    assert {(r["task"], r["variant"], r["success_rate"]) for r in rows} == {
        ("t1", "full", 1.0), ("t1", "single_view", 0.0), ("t2", "full", 1.0), ("t2", "single_view", 0.0)}


def test_episode_options_find_the_variant_by_name():
    v = PlannerVariant("slow", (("speed_scale", 0.25),))
    options = EpisodeOptions(variants=(v,))
    assert options.variant("slow") is v and options.variant(DEFAULT_VARIANT) is None
    with pytest.raises(InputError, match="one of the grid's variants"):
        options.variant("fast")


def test_local_batch_runs_on_worker_processes_and_records_each_episode(tmp_path):
    """Two episodes that cannot start (their task does not exist) on two worker processes: each becomes a result
    line with its error, none is lost, and a second call runs nothing again."""
    grid = [Episode(str(tmp_path / "missing_a.yaml"), 0), Episode(str(tmp_path / "missing_b.yaml"), 0)]
    result = run_batch(grid, str(tmp_path / "out"), EpisodeOptions(), parallel=2, progress=False)
    assert result.ran == 2 and result.not_finished == [] and result.parallel == 2
    assert [r["key"] for r in result.results] == [e.key for e in grid]
    assert all(r["success"] is False and "missing_" in r["error"] for r in result.results)
    again = run_batch(grid, str(tmp_path / "out"), EpisodeOptions(), parallel=2, progress=False)
    assert again.ran == 0 and len(again.results) == 2
