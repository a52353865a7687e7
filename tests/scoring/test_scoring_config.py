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
    "data, field, fragment",
    [
        (mutate(["weights", "safety"], "x"), "weights.safety", "expected a finite number in [0, 1e6], got 'x'"),
        (mutate(["weights", "safety"], -0.1), "weights.safety", "expected a finite number in [0, 1e6], got -0.1"),
        (mutate(["weights", "safety"], True), "weights.safety", "got True"),
        (mutate(["weights", "saftey"], 0.1), "weights.saftey", "did you mean 'safety'?"),
        (mutate(["weights"], {"safety": 1}), "weights.task_alignment", "write 0 to ignore this dimension"),
        (
            mutate(["weights"], {"safety": 0, "task_alignment": 0, "efficiency": 0, "feasibility": 0}),
            "weights", "at least one weight > 0, got all zero",
        ),
        (mutate(["lambda_C"], -1), "lambda_C", "expected a finite number in [0, 1e6], got -1"),
        (mutate(["lambda_c"], 0.5), "lambda_c", "did you mean 'lambda_C'?"),
        (mutate(["agents"], []), "agents", "expected a list of 1 to 32"),
        (mutate(["agents", 0, "backend"], "simjugde"), "agents[0].backend", "did you mean 'simjudge'?"),
        (mutate(["agents", 0, "modle"], "x"), "agents[0].modle", "did you mean 'model'?"),
        (mutate(["agents", 0, "params"], {"noise_std": "lots"}), "agents[0].params.noise_std",
         "expected a number >= 0, got 'lots'"),
        (mutate(["agents", 0, "params"], {"seeed": 1}), "agents[0].params.seeed", "did you mean 'seed'?"),
        (mutate(["agents"], base()["agents"] + base()["agents"]), "agents[1].name", "a name not used by another agent"),
        (mutate(["views"], []), "views", "expected a list of 1 to 32 view names, got a list of 0 items"),
        (mutate(["views"], ["front", "front"]), "views", "expected unique view names"),
        ({k: v for k, v in base().items() if k != "views"}, "views", "expected this field (required)"),
    ],
)
def test_errors_name_file_field_and_expectation(tmp_path, data, field, fragment):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_scoring_config(path)
    assert (info.value.file, info.value.field) == (path, field), str(info.value)
    assert fragment in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_scoring_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected valid YAML"):
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


# --- backends: and pool: sections, and keeping credentials out of config files ---------------------------------

SHIPPED = sorted(
    os.path.join(REPO, "configs", "scoring", name)
    for name in os.listdir(os.path.join(REPO, "configs", "scoring"))
    if name.endswith(".yaml")
)


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_every_shipped_config_loads_and_round_trips(path):
    cfg = load_scoring_config(path)
    assert scoring_config_from_dict(cfg.to_dict()) == cfg
    for name in cfg.backends:
        assert name in {a.backend for a in cfg.agents}, f"{path}: settings for unused backend {name}"


def test_shipped_examples_cover_the_backends():
    names = {os.path.basename(p) for p in SHIPPED}
    assert {"default.yaml", "anthropic.yaml", "openai.yaml", "transformers.yaml", "mixture.yaml"} <= names
    assert {a.backend for a in load_scoring_config(DEFAULT).agents} == {"simjudge"}
    mixture = load_scoring_config(os.path.join(REPO, "configs", "scoring", "mixture.yaml"))
    assert len({a.backend for a in mixture.agents} - {"simjudge"}) >= 2
    assert len({a.params.get("prompt") for a in mixture.agents if a.backend != "simjudge"}) >= 2


def with_sections(backends=None, pool=None):
    data = base()
    if backends is not None:
        data["backends"] = backends
    if pool is not None:
        data["pool"] = pool
    return data


def test_backends_and_pool_sections_parse(tmp_path):
    from scoring.config import BackendSettings
    from scoring.openai_backend import OpenAIBackend
    from scoring.simjudge import SimJudgeBackend

    data = with_sections(
        backends={
            "openai": {"base_url": "http://127.0.0.1:8000/v1", "structured": "json_object", "timeout_s": 30,
                       "max_retries": 4, "backoff_s": 0.5, "max_concurrency": 3, "requests_per_minute": 120,
                       "burst": 4},
            "simjudge": {"timeout_s": 5},
        },
        pool={"step_timeout_s": 90},
    )
    cfg = load_scoring_config(write(tmp_path, data))
    openai = cfg.backends["openai"]
    assert openai.kwargs == {"base_url": "http://127.0.0.1:8000/v1", "structured": "json_object"}
    assert (openai.timeout_s, openai.max_retries, openai.backoff_s) == (30.0, 4, 0.5)
    assert (openai.max_concurrency, openai.requests_per_minute, openai.burst) == (3, 120.0, 4.0)
    assert openai.retry_policy().max_retries == 4
    # The pool's timeout also bounds the HTTP client when the constructor takes one; simjudge takes none.
    assert openai.constructor_kwargs(OpenAIBackend) == {**openai.kwargs, "timeout_s": 30.0}
    assert cfg.backends["simjudge"].constructor_kwargs(SimJudgeBackend) == {}
    assert cfg.pool.step_timeout_s == 90.0
    assert cfg.backend_settings("anthropic") == BackendSettings()  # defaults for a backend not listed
    assert scoring_config_from_dict(cfg.to_dict()) == cfg
    # The planner swaps agents with dataclasses.replace; the sections survive it.
    import dataclasses

    assert dataclasses.replace(cfg, agents=cfg.agents[:1]).backends == cfg.backends


@pytest.mark.parametrize(
    "data, field, fragment",
    [
        (with_sections(backends=[1]), "backends", "expected a mapping of backend name to settings, got a list"),
        (with_sections(backends={"opnai": {}}), "backends.opnai", "did you mean 'openai'?"),
        (with_sections(backends={"openai": {"base_ulr": "http://x"}}), "backends.openai.base_ulr",
         "a constructor argument of OpenAIBackend or a pool setting, got an unknown key; did you mean 'base_url'?"),
        (with_sections(backends={"openai": {"max_retries": -1}}), "backends.openai.max_retries",
         "expected an integer >= 0, got -1"),
        (with_sections(backends={"openai": {"timeout_s": 0}}), "backends.openai.timeout_s",
         "expected a number > 0 (seconds) or null, got 0"),
        (with_sections(backends={"openai": {"max_concurrency": 0}}), "backends.openai.max_concurrency",
         "expected an integer >= 1 or null, got 0"),
        (with_sections(backends={"openai": {"requests_per_minute": "fast"}}), "backends.openai.requests_per_minute",
         "expected a number > 0 or null, got 'fast'"),
        (with_sections(backends={"openai": {"burst": 3}}), "backends.openai.burst",
         "only meaningful with requests_per_minute"),
        (with_sections(backends={"openai": {"backoff_s": 5, "max_backoff_s": 1}}), "backends.openai.max_backoff_s",
         "expected a number >= backoff_s (5), got 1"),
        (with_sections(pool={"step_timeout": 5}), "pool.step_timeout", "did you mean 'step_timeout_s'?"),
        (with_sections(pool={"step_timeout_s": -1}), "pool.step_timeout_s",
         "expected a number > 0 (seconds) or null, got -1"),
    ],
)
def test_section_errors_name_file_field_and_expectation(tmp_path, data, field, fragment):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_scoring_config(path)
    assert (info.value.file, info.value.field) == (path, field), str(info.value)
    assert fragment in str(info.value)


SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize(
    "data, field_path",
    [
        (with_sections(backends={"openai": {"api_key": SECRET}}), "backends.openai.api_key"),
        (with_sections(backends={"anthropic": {"x-api-key": SECRET}}), "backends.anthropic.x-api-key"),
        (with_sections(backends={"openai": {"default_headers": {"Authorization": SECRET}}}),
         "backends.openai.default_headers.Authorization"),
        (mutate(["agents", 0, "params"], {"token": SECRET}), "agents[0].params.token"),
        (mutate(["agents", 0, "params"], {"hf_token": SECRET}), "agents[0].params.hf_token"),
        (with_sections(backends={"openai": {"base_url": f"https://user:{SECRET}@example.com/v1"}}),
         "backends.openai.base_url"),
        ({**base(), "key": SECRET}, "key"),
    ],
)
def test_credentials_are_rejected_without_echoing_them(tmp_path, data, field_path):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_scoring_config(path)
    message = str(info.value)
    assert message == (
        f"{path}: field '{field_path}': expected no credential in a config file (keys come from the environment: "
        "ANTHROPIC_API_KEY / OPENAI_API_KEY), got a credential-like key or value (not shown)"
    )
    assert SECRET not in message


@pytest.mark.parametrize(
    "data",
    [   # a credential under a key that is not named like one, where a value would be shown
        mutate(["weights", "safety"], SECRET),
        mutate(["lambda_C"], "0123456789abcdef0123456789abcdef"),
        mutate(["agents", 0, "model"], "x" * 300),
        mutate(["agents", 0, "name"], "0123456789abcdef0123456789abcdef0123456789abcdef"),
        mutate(["agents", 0, "backend"], "0123456789abcdef0123456789abcdef"),
        mutate(["agents", 0, "params"], {"noise_std": "0123456789abcdef0123456789abcdef"}),
        mutate(["views"], ["front", "0123456789abcdef0123456789abcdef0123456789abcdef"]),
        mutate(["views"], "0123456789abcdef0123456789abcdef"),
        with_sections(backends={"openai": "0123456789abcdef0123456789abcdef"}),
        with_sections(backends={"openai": {"timeout_s": "0123456789abcdef0123456789abcdef"}}),
        with_sections(backends={"0123456789abcdef0123456789abcdef0123456789abcdef": {}}),
        with_sections(pool={"step_timeout_s": "0123456789abcdef0123456789abcdef"}),
        {**base(), "openai_credential": "0123456789abcdef0123456789abcdef"},
    ],
)
def test_no_value_of_a_scoring_config_is_ever_echoed(tmp_path, data):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_scoring_config(path)
    assert info.value.file == path and info.value.field
    assert "0123456789abcdef" not in str(info.value) and SECRET not in str(info.value) and "xxxxxxxx" not in str(
        info.value)


def test_settings_and_configs_built_in_code_reject_credentials_too():
    from scoring.backend import AgentConfig
    from scoring.config import BackendSettings

    with pytest.raises(ValueError, match="keys come from the environment") as info:
        BackendSettings(kwargs={"api_key": SECRET})
    assert SECRET not in str(info.value)
    agent = AgentConfig("a", "simjudge", params={"secret": SECRET})
    with pytest.raises(ValueError, match="keys come from the environment") as info:
        ScoringConfig(weights=base()["weights"], lambda_C=0.5, agents=(agent,), views=("front",))
    assert SECRET not in str(info.value)
    # Names that merely contain "key"/"token" as words of another meaning are fine.
    assert BackendSettings(kwargs={"max_tokens": 10, "api_key_env": "MY_KEY_VAR"}).kwargs["max_tokens"] == 10
