"""The transformers backend on a tiny VLM built from configs into a temp dir and loaded with from_pretrained.

The model's weights are random, so its answers are gibberish: the tests check the machinery (processor,
image-token expansion, generate, decoding, lazy loading, cache keys, errors), and that the scorer records a
gibberish answer as a failed call.
"""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image, ImageDraw  # noqa: E402

from scoring.backend import AgentConfig, backend_class, make_backend  # noqa: E402
from scoring.config import BackendSettings, ScoringConfig  # noqa: E402
from scoring.errors import AgentParamError, AnswerError, BackendError  # noqa: E402
from scoring.request import ScoreRequest, ViewImage  # noqa: E402
from scoring.schema import parse_answer  # noqa: E402
from scoring.scorer import Scorer, SerialExecutor  # noqa: E402
from scoring.transformers_backend import TransformersBackend  # noqa: E402
from tests.fakes.tiny_vlm import build_tiny_vlm, torchvision_available  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_NEW_TOKENS = 12
WEIGHTS = {"safety": 0.25, "task_alignment": 0.45, "efficiency": 0.1, "feasibility": 0.2}
MODEL_CLASSES = {"llava": "LlavaForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}
ARCHS = [
    "llava",
    pytest.param(
        "qwen2_5_vl",
        marks=pytest.mark.skipif(
            not torchvision_available(), reason="transformers 5.x Qwen2.5-VL processors need torchvision"
        ),
    ),
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The tiny model gains nothing from threads, and on a shared 2-core machine two OpenMP threads that wait
    # on each other made generate() 5-10x slower than one.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """arch -> checkpoint directory, each built on first use and shared by the module's tests."""
    root = tmp_path_factory.mktemp("tiny_vlm")
    built = {}

    def get(arch="llava"):
        if arch not in built:
            built[arch] = build_tiny_vlm(root / arch, arch=arch)
        return built[arch]

    return get


def png_bytes(color=(200, 30, 30), size=(640, 480)):
    image = Image.new("RGB", size, (235, 235, 235))
    draw = ImageDraw.Draw(image)
    draw.line([(60, 420), (320, 120)], fill=color, width=8)
    draw.line([(60, 420), (560, 300)], fill=(30, 30, 200), width=8)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_request(png=None, instruction="Put the red block on the blue block."):
    view = ViewImage("front", png or png_bytes(), 640, 480, {1: (320.0, 120.0), 2: (560.0, 300.0)})
    return ScoreRequest(instruction, "grasp the red block", (1, 2), (view,))


def agent(model="", **params):
    return AgentConfig("local-vlm", "transformers", model, params)


@pytest.mark.parametrize("arch", ARCHS)
def test_answer_runs_the_real_processor_and_generate(tiny_dirs, arch):
    model_dir = tiny_dirs(arch)
    backend = TransformersBackend(model=str(model_dir), max_new_tokens=MAX_NEW_TOKENS)
    request = make_request()
    text = backend.answer(request, request.views[0], agent())
    assert isinstance(text, str)
    stats = backend.last_stats
    assert stats.model == str(model_dir.resolve())
    assert 1 <= stats.new_tokens <= MAX_NEW_TOKENS
    # The one image placeholder of the chat template became one token per (merged) image patch.
    assert stats.image_tokens > 1
    # ... and the prompt text (instruction, candidate lines, JSON format) is there besides the image tokens.
    assert stats.input_tokens > stats.image_tokens + 100
    assert stats.load_s > 0.0
    assert backend.loaded_models == (str(model_dir.resolve()),)
    assert type(backend._loaded[str(model_dir.resolve())].model).__name__ == MODEL_CLASSES[arch]
    # Random weights write no valid answer; the strict parser says so.
    with pytest.raises(AnswerError):
        parse_answer(text, request.candidate_ids)
    # Greedy decoding: the same input gives the same text, in this instance and in a fresh one.
    assert backend.answer(request, request.views[0], agent()) == text
    assert backend.last_stats.load_s == 0.0  # loaded once
    other = TransformersBackend(model=str(model_dir), max_new_tokens=MAX_NEW_TOKENS)
    assert other.answer(request, request.views[0], agent()) == text
    backend.close()
    other.close()
    assert backend.loaded_models == ()


def test_scorer_treats_gibberish_as_a_failed_call(tiny_dirs):
    model_dir = str(tiny_dirs())
    local = agent(model_dir)
    # The scorer builds the backend itself from the config's backends section, as a run does.
    settings = BackendSettings(kwargs={"max_new_tokens": MAX_NEW_TOKENS, "device": "cpu"}, timeout_s=60.0)
    config = ScoringConfig(
        weights=WEIGHTS, lambda_C=0.5, agents=(local,), views=("front",), backends={"transformers": settings}
    )
    request = make_request()
    with Scorer(None, config, executor=SerialExecutor()) as scorer:
        table = scorer.score(request)
        built = scorer.backends["transformers"]
        assert isinstance(built, TransformersBackend) and built.timeout_s == 60.0
        assert built.max_new_tokens == MAX_NEW_TOKENS and built.loaded_models == (str(Path(model_dir).resolve()),)
    assert built.loaded_models == ()  # the scorer closed the backend it built
    assert table.S == {} and table.M_prime == 0 and table.best() is None
    assert "all 1 agent calls failed" in table.error and "AnswerError" in table.error
    (call,) = table.calls
    assert call.backend == "transformers" and call.model == model_dir and call.parsed is None
    assert call.error.startswith("AnswerError: ")
    # The model's words are kept in the record, exactly as the backend wrote them.
    reference = TransformersBackend(max_new_tokens=MAX_NEW_TOKENS)
    assert call.raw_text == reference.answer(request, request.views[0], local)
    reference.close()


def test_generation_past_timeout_s_fails_the_call(tiny_dirs):
    backend = TransformersBackend(model=str(tiny_dirs()), max_new_tokens=MAX_NEW_TOKENS, timeout_s=1e-4)
    request = make_request()
    with pytest.raises(BackendError, match=r"stopped at timeout_s=0.0001 s after \d+ of at most 12 new tokens"):
        backend.answer(request, request.views[0], agent())
    assert backend.last_stats is None


def test_the_registry_resolves_the_backend():
    assert backend_class("transformers") is TransformersBackend
    assert isinstance(make_backend("transformers", model="some/model"), TransformersBackend)


def test_constructing_and_cache_key_load_nothing(tiny_dirs):
    # In a fresh interpreter, so "torch was never imported" is a fact about this code, not about the tests.
    code = (
        "import sys\n"
        "from scoring.backend import AgentConfig, make_backend\n"
        "from scoring.request import ScoreRequest, ViewImage\n"
        f"backend = make_backend('transformers', model={str(tiny_dirs())!r})\n"
        f"view = ViewImage('front', {png_bytes()!r}, 640, 480)\n"
        "request = ScoreRequest('Put the red block on the blue block.', '', (1, 2), (view,))\n"
        "key = backend.cache_key(request, view, AgentConfig('local-vlm', 'transformers'))\n"
        "assert len(key) == 64, key\n"
        "assert backend.loaded_models == ()\n"
        "heavy = sorted({'torch', 'transformers', 'tokenizers'} & set(sys.modules))\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_cache_key_is_stable_and_follows_what_changes_the_answer(tiny_dirs, tmp_path):
    model_dir = str(tiny_dirs())
    request = make_request()
    view = request.views[0]

    def key(backend=None, request=request, view=view, agent_config=None):
        backend = backend or TransformersBackend(model=model_dir)
        return backend.cache_key(request, view, agent_config or agent())

    base = key()
    assert len(base) == 64 and base == key()  # fresh instances agree
    assert key(TransformersBackend(), agent_config=agent(model_dir)) == base  # agent model = backend model
    other_image = make_request(png=png_bytes(color=(30, 160, 30)))
    changed = {
        "image": key(request=other_image, view=other_image.views[0]),
        "prompt text": key(request=make_request(instruction="Push the blue block.")),
        "prompt template": key(agent_config=agent(prompt="v1-terse")),
        "max_new_tokens": key(agent_config=agent(max_new_tokens=64)),
        "dtype": key(TransformersBackend(model=model_dir, dtype="float32")),
    }
    copy_dir = tmp_path / "copy"
    shutil.copytree(model_dir, copy_dir)
    changed["model path"] = key(TransformersBackend(model=str(copy_dir)))
    config = json.loads((copy_dir / "config.json").read_text())
    config["text_config"]["rms_norm_eps"] = 1e-3
    before = changed["model path"]
    (copy_dir / "config.json").write_text(json.dumps(config))
    changed["model config"] = key(TransformersBackend(model=str(copy_dir)))
    assert changed["model config"] != before
    for what, value in changed.items():
        assert value != base, f"the cache key ignores the {what}"
    assert len(set(changed.values())) == len(changed)


def test_a_hub_id_missing_from_the_cache_is_not_cached_and_not_downloaded():
    backend = TransformersBackend(model="nobody-here/no-such-vlm")
    request = make_request()
    assert backend.cache_key(request, request.views[0], agent()) is None
    with pytest.raises(BackendError, match=r"'nobody-here/no-such-vlm' is neither a local directory nor in"):
        backend.answer(request, request.views[0], agent())
    with pytest.raises(BackendError, match="neither an existing directory nor a valid hub id"):
        TransformersBackend(model="not a repo id!").answer(request, request.views[0], agent())


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "has no config.json"),
        (lambda d: (d.mkdir(), (d / "config.json").write_text('{"model_type": "llava"}')), "holds no weights"),
        (
            lambda d: (
                d.mkdir(),
                (d / "config.json").write_text('{"model_type": "bert"}'),
                (d / "model.safetensors").write_bytes(b"not really"),
            ),
            "model_type 'bert' .* is not a vision-language",
        ),
    ],
    ids=["missing", "no-config", "no-weights", "not-a-vlm"],
)
def test_bad_model_directories_name_the_path_and_what_was_expected(tmp_path, setup, message):
    model_dir = tmp_path / "model"
    setup(model_dir)
    backend = TransformersBackend(model=str(model_dir))
    request = make_request()
    with pytest.raises(BackendError, match=message) as err:
        backend.answer(request, request.views[0], agent())
    assert str(model_dir) in str(err.value)
    assert backend.loaded_models == ()


def test_cuda_without_cuda_is_a_clear_error(tiny_dirs):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    backend = TransformersBackend(model=str(tiny_dirs()), device="cuda")
    request = make_request()
    with pytest.raises(BackendError, match=r"device 'cuda' .* sees no CUDA GPU"):
        backend.answer(request, request.views[0], agent())


def test_missing_model_and_broken_png_fail_before_loading(tiny_dirs):
    request = make_request()
    with pytest.raises(BackendError, match="no model given"):
        TransformersBackend().answer(request, request.views[0], agent())
    backend = TransformersBackend(model=str(tiny_dirs()))
    broken = ViewImage("front", b"\x89PNG not really", 640, 480, {})
    with pytest.raises(BackendError, match="view 'front': the png bytes are not a decodable image"):
        backend.answer(make_request(png=broken.png), broken, agent())
    assert backend.loaded_models == ()


def test_settings_are_validated():
    with pytest.raises(ValueError, match="dtype"):
        TransformersBackend(dtype="fp8")
    with pytest.raises(ValueError, match="device"):
        TransformersBackend(device="gpu")
    with pytest.raises(ValueError, match="max_new_tokens"):
        TransformersBackend(max_new_tokens=0)
    with pytest.raises(ValueError, match="local_files_only"):
        TransformersBackend(local_files_only="no")
    with pytest.raises(ValueError, match="timeout_s"):
        TransformersBackend(timeout_s=0)
    with pytest.raises(AgentParamError, match="did you mean 'max_new_tokens'"):
        TransformersBackend.check_agent_params({"max_new_token": 5})
    with pytest.raises(AgentParamError, match="max_new_tokens"):
        TransformersBackend.check_agent_params({"max_new_tokens": -1})
    with pytest.raises(AgentParamError, match="prompt"):
        TransformersBackend.check_agent_params({"prompt": "no-such-template"})
    TransformersBackend.check_agent_params({"prompt": "v1-terse", "max_new_tokens": 64})
    request = make_request()
    with pytest.raises(BackendError, match=r"agent 'local-vlm': params\.temperature"):
        TransformersBackend(model="x").answer(request, request.views[0], agent(temperature=0.0))


def test_the_builder_is_deterministic(tmp_path):
    first = build_tiny_vlm(tmp_path / "a", arch="llava", seed=0)
    second = build_tiny_vlm(tmp_path / "b", arch="llava", seed=0)
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()


def test_the_failure_question_reaches_the_local_model_with_its_picture(tiny_dirs):
    from scoring.failure import FailureEvidence, FailureQuestion, ask_agents, ask_failure

    evidence = FailureEvidence("keep", 1, 0, "red_block", "red_block", "red_block", None, False, False)
    question = FailureQuestion("Put the red block on the blue block.", ("grasp the red block", "place it"), 1,
                               png_bytes(), 640, 480, evidence, ("gripper ON (closed)",))
    backend = TransformersBackend(model=str(tiny_dirs()), max_new_tokens=MAX_NEW_TOKENS)
    # Random weights write no valid failure answer: the strict parser refuses it, as it would a VLM's prose.
    with pytest.raises(AnswerError, match="failure answer"):
        ask_failure(backend, question, agent())
    stats = backend.last_stats
    assert stats.image_tokens > 1 and stats.input_tokens > stats.image_tokens + 100   # picture and facts went in
    (row,) = ask_agents([agent()], {"transformers": backend}, question)
    assert "failure answer" in row["error"] and "not asked" not in row["error"]
    with pytest.raises(BackendError, match="params.max_new_token"):
        ask_failure(backend, question, agent(max_new_token=3))
    backend.close()
