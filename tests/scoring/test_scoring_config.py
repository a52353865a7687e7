"""Scoring config files: the shipped default and the error messages for broken ones."""

import os

import pytest
import yaml

from scoring.config import ScoringConfig, load_scoring_config, scoring_config_from_dict
from scoring.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT = os.path.join(REPO, "configs", "scoring", "default.yaml")


def base():
    return {
        "weights": {"safety": 0.25, "task_alignment": 0.45, "efficiency": 0.1, "feasibility": 0.2},
        "lambda_C": 0.5,
        "agents": [{"name": "simjudge-0", "backend": "simjudge", "model": "rollout-metrics"}],
        "views": ["front", "top", "side"],
    }


def write(tmp_path, data, text=None):
    path = tmp_path / "scoring.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data))
    return str(path)


def test_default_config_loads_with_the_documented_values():
    cfg = load_scoring_config(DEFAULT)
    assert cfg.weights == {"safety": 0.25, "task_alignment": 0.45, "efficiency": 0.1, "feasibility": 0.2}
    assert cfg.normalized_weights == pytest.approx(cfg.weights)  # already sums to 1
    assert cfg.lambda_C == 0.5
    assert [(a.name, a.backend, a.model) for a in cfg.agents] == [
        ("simjudge-0", "simjudge", "rollout-metrics")
    ]
    assert cfg.views == ("front", "top", "side")


def test_round_trip_and_params(tmp_path):
    data = base()
    data["agents"].append({"name": "sj-1", "backend": "simjudge", "params": {"noise_std": 0.5, "seed": 7}})
    cfg = load_scoring_config(write(tmp_path, data))
    assert cfg.agents[1].params == {"noise_std": 0.5, "seed": 7} and cfg.agents[1].model == ""
    assert scoring_config_from_dict(cfg.to_dict()) == cfg


def mutate(path_keys, value):
    data = base()
    target = data
    for key in path_keys[:-1]:
        target = target[key]
    target[path_keys[-1]] = value
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        (mutate(["weights", "safety"], "x"), "field 'weights.safety': expected a number >= 0, got 'x'"),
        (mutate(["weights", "safety"], -0.1), "field 'weights.safety': expected a number >= 0, got -0.1"),
        (mutate(["weights", "safety"], True), "field 'weights.safety': expected a number >= 0, got True"),
        (
            mutate(["weights", "saftey"], 0.1),
            "field 'weights.saftey': unknown dimension; did you mean 'safety'?",
        ),
        (mutate(["weights"], {"safety": 1}), "field 'weights.task_alignment': missing"),
        (
            mutate(["weights"], {"safety": 0, "task_alignment": 0, "efficiency": 0, "feasibility": 0}),
            "field 'weights': all weights are zero",
        ),
        (mutate(["lambda_C"], -1), "field 'lambda_C': expected a number >= 0, got -1"),
        (mutate(["lambda_c"], 0.5), "field 'lambda_c': unknown key; did you mean 'lambda_C'?"),
        (mutate(["agents"], []), "field 'agents': expected a non-empty list"),
        (
            mutate(["agents", 0, "backend"], "simjugde"),
            "field 'agents[0].backend': unknown backend 'simjugde'; did you mean 'simjudge'?",
        ),
        (mutate(["agents", 0, "modle"], "x"), "field 'agents[0].modle': unknown key; did you mean 'model'?"),
        (
            mutate(["agents", 0, "params"], {"noise_std": "lots"}),
            "field 'agents[0].params.noise_std': expected a number >= 0, got 'lots'",
        ),
        (
            mutate(["agents", 0, "params"], {"seeed": 1}),
            "field 'agents[0].params.seeed': unknown simjudge parameter; did you mean 'seed'?",
        ),
        (
            mutate(["agents"], base()["agents"] * 2),
            "field 'agents[1].name': agent name 'simjudge-0' is used twice",
        ),
        (mutate(["views"], []), "field 'views': expected a non-empty list of view names, got []"),
        (mutate(["views"], ["front", "front"]), "field 'views': expected unique view names"),
        ({k: v for k, v in base().items() if k != "views"}, "field 'views': missing (required)"),
    ],
)
def test_errors_name_file_field_and_expectation(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_scoring_config(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_scoring_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scoring_config(write(tmp_path, None, text="weights: [1, 2\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_scoring_config(write(tmp_path, None, text="- 1\n- 2\n"))


def test_dataclass_validates_direct_construction():
    from scoring.backend import AgentConfig

    agent = AgentConfig("a", "simjudge")
    weights = base()["weights"]
    with pytest.raises(ValueError, match="unique"):
        ScoringConfig(weights=weights, lambda_C=0.5, agents=(agent, agent), views=("front",))
    with pytest.raises(ValueError, match="lambda_C"):
        ScoringConfig(weights=weights, lambda_C=float("nan"), agents=(agent,), views=("front",))
