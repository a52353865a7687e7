"""transformers: a local vision-language model (Qwen2.5-VL, LLaVA, ...) loaded with Hugging Face transformers.

The model is a local directory or a Hugging Face hub id already in the local cache: by default nothing is
downloaded (``local_files_only=True``); a user who wants a download sets ``local_files_only: false``
explicitly. Loading goes through the generic ``AutoProcessor`` / ``AutoModelForImageTextToText`` path, so any
image-text-to-text architecture transformers knows works, and the prompt is laid out by the checkpoint's own
chat template: a system message, then one user message holding the view image and the prompt text from
``scoring.prompts.build_prompt`` (the same words every backend sends).

Decoding is greedy (``do_sample=False``: temperature-0 semantics), and only the newly generated tokens are
decoded, with special tokens skipped. The text is returned as the model wrote it; the scorer parses it.

Weights load lazily on the first ``answer()`` for a model (constructing the backend and ``cache_key`` never
touch them), once per (model, device, dtype) per backend instance, under a lock, so a backend shared by
threads loads each model once. ``last_stats`` holds token counts and timings of the most recent call. Finding
the checkpoint on disk, its cache fingerprint and its architecture check live in ``scoring.vlm_checkpoint``.

Per-agent parameters (``AgentConfig.params``): ``prompt`` (template name or directory, see scoring.prompts)
and ``max_new_tokens`` (overrides the backend's). The agent's ``model`` overrides the backend's ``model``.

torch and transformers are optional dependencies (the ``local-vlm`` extra); they are imported on first load.
With transformers 5.x, Qwen2-VL / Qwen2.5-VL processors also need torchvision (their video processor is
torchvision-only even for image input); a missing torchvision is reported as such.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import numbers
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from scoring.backend import AgentConfig, Backend
from scoring.errors import AgentParamError, BackendError, ConfigError, did_you_mean
from scoring.prompts import Prompt, build_prompt, check_prompt_param
from scoring.request import ScoreRequest, ViewImage
from scoring.vlm_checkpoint import ModelRef, check_architecture, fingerprint, resolve_model

logger = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")
AGENT_PARAMS = ("prompt", "max_new_tokens")
DEFAULT_MAX_NEW_TOKENS = 512


def _check_max_new_tokens(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: expected an integer >= 1, got {value!r}")
    return int(value)


def _check_device(device: Any) -> str:
    # "cuda:1" picks a GPU; "mps" and others are left out on purpose: untested here.
    if not isinstance(device, str) or not (
        device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())
    ):
        raise ValueError(f"TransformersBackend.device: expected 'cpu', 'cuda' or 'cuda:<index>', got {device!r}")
    return device


@dataclass(frozen=True)
class GenerationStats:
    """What one answer() did: the model, token counts of the prompt and the answer, and timings.

    image_tokens: how many image placeholder tokens the processor expanded the image into (0 when the model
    config names no image token id). load_s: the model's one-time load duration (0.0 when already loaded).
    """

    model: str
    input_tokens: int
    image_tokens: int
    new_tokens: int
    load_s: float
    generate_s: float


@dataclass
class _Loaded:
    processor: Any
    model: Any
    image_token_id: int | None
    load_s: float
    lock: threading.Lock  # one generate() at a time per model: a shared GPU gains nothing from interleaving


class TransformersBackend(Backend):
    """Answers with a local VLM through AutoProcessor + AutoModelForImageTextToText and greedy generate().

    model: a local checkpoint directory or a hub id (the agent's ``model`` overrides it; one of the two must
    be set). device: "cpu" (default), "cuda" or "cuda:<index>". dtype: "auto" (the checkpoint's own),
    "float32", "bfloat16" or "float16". max_new_tokens: answer length limit (an agent's params may override).
    local_files_only: True (default) never downloads; False lets from_pretrained fetch from the hub.
    trust_remote_code: run Python code shipped with the checkpoint; False unless the user opts in.
    timeout_s: stop generating after this many seconds and fail the call (None: no limit); the scoring
    config passes its per-call ``timeout_s`` here, so a slow CPU model gives up when the pool would.
    """

    name: ClassVar[str] = "transformers"

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        dtype: str = "auto",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        local_files_only: bool = True,
        trust_remote_code: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ValueError(f"TransformersBackend.model: expected a directory or hub id, got {model!r}")
        if dtype not in DTYPES:
            raise ValueError(f"TransformersBackend.dtype: expected one of {DTYPES}, got {dtype!r}")
        for flag_name, flag in (("local_files_only", local_files_only), ("trust_remote_code", trust_remote_code)):
            if not isinstance(flag, bool):
                raise ValueError(f"TransformersBackend.{flag_name}: expected true or false, got {flag!r}")
        self.model = model
        self.device = _check_device(device)
        self.dtype = dtype
        self.max_new_tokens = _check_max_new_tokens(max_new_tokens, "TransformersBackend.max_new_tokens")
        if timeout_s is not None and (
            isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0
        ):
            raise ValueError(f"TransformersBackend.timeout_s: expected a number > 0 or null, got {timeout_s!r}")
        self.local_files_only = local_files_only
        self.trust_remote_code = trust_remote_code
        self.timeout_s = None if timeout_s is None else float(timeout_s)
        self._lock = threading.Lock()
        self._loaded: dict[str, _Loaded] = {}
        self.last_stats: GenerationStats | None = None

    @property
    def loaded_models(self) -> tuple[str, ...]:
        """The models loaded so far (directories or hub ids), in load order."""
        with self._lock:
            return tuple(self._loaded)

    def __repr__(self) -> str:
        return (
            f"TransformersBackend(model={self.model!r}, device={self.device!r}, dtype={self.dtype!r}, "
            f"max_new_tokens={self.max_new_tokens}, loaded={sorted(self._loaded)})"
        )

    # --- agent parameters ------------------------------------------------------------------------------

    @classmethod
    def check_agent_params(cls, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            if key not in AGENT_PARAMS:
                raise AgentParamError(key, f"unknown transformers parameter{did_you_mean(key, AGENT_PARAMS)}")
            if key == "max_new_tokens":
                try:
                    _check_max_new_tokens(value, key)
                except ValueError as err:
                    raise AgentParamError(key, str(err).removeprefix(f"{key}: ")) from None
        check_prompt_param(params)

    def _agent_settings(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> tuple[Prompt, int]:
        try:
            self.check_agent_params(agent.params)
            prompt = build_prompt(request, view, agent)
        except AgentParamError as err:
            raise BackendError(f"agent {agent.name!r}: params.{err}") from None
        except ConfigError as err:  # the template files themselves are broken
            raise BackendError(f"agent {agent.name!r}: {err}") from None
        return prompt, int(agent.params.get("max_new_tokens", self.max_new_tokens))

    # --- which model (found on disk by scoring.vlm_checkpoint, no weights loaded) ---------------------------

    def _model_name(self, agent: AgentConfig) -> str:
        name = agent.model.strip() or (self.model or "").strip()
        if not name:
            raise BackendError(
                f"agent {agent.name!r}: no model given; set the agent's model (a local checkpoint directory or "
                "a Hugging Face hub id) or the transformers backend's model setting"
            )
        return name

    # --- cache key ----------------------------------------------------------------------------------------

    def cache_key(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> str | None:
        """sha256 of (backend, model, the checkpoint's fingerprint, prompt hash, image hash, decoding settings).

        None (do not cache) for a hub id that is not in the local cache: nothing identifies its version yet.
        """
        prompt, max_new_tokens = self._agent_settings(request, view, agent)
        ref = resolve_model(self._model_name(agent))
        if ref.directory is None:
            return None
        content = {
            "backend": self.name,
            "model": ref.source,
            # a hub snapshot's directory name is its commit hash, so it goes in with the files' fingerprint
            "snapshot": "" if ref.is_local_dir else ref.directory.name,
            "fingerprint": fingerprint(ref.directory),
            "prompt_sha256": prompt.sha256,
            "image_sha256": view.png_sha256,
            "max_new_tokens": max_new_tokens,
            "decoding": "greedy",
            "dtype": self.dtype,
            # CPU and GPU kernels may round differently enough to flip a greedy token
            "device": self.device.partition(":")[0],
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    # --- loading --------------------------------------------------------------------------------------------

    def _load(self, ref: ModelRef) -> tuple[_Loaded, bool]:
        """The loaded (processor, model) for ref, loading it on first use; True when this call loaded it."""
        with self._lock:
            loaded = self._loaded.get(ref.source)
            if loaded is not None:
                return loaded, False
            loaded = self._load_locked(ref)
            self._loaded[ref.source] = loaded
            return loaded, True

    def _load_locked(self, ref: ModelRef) -> _Loaded:
        start = time.perf_counter()
        try:
            import torch
            import transformers
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as err:
            raise BackendError(
                f"the transformers backend needs torch and transformers (pip install '.[local-vlm]'): {err}"
            ) from None
        logger.debug("transformers: torch and transformers imported in %.2f s", time.perf_counter() - start)
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(
                f"transformers backend: device {self.device!r} was asked for model {ref.source!r}, but torch "
                f"{torch.__version__} sees no CUDA GPU; use device: cpu or install a CUDA build of torch"
            )
        if ref.is_local_dir or ref.directory is not None:
            check_architecture(ref, transformers, self.trust_remote_code)
        elif self.local_files_only:
            raise BackendError(
                f"transformers model {ref.source!r} is neither a local directory nor in the Hugging Face cache, "
                "and local_files_only is true (nothing is downloaded at run time): download it first "
                f"(hf download {ref.source}) or give a checkpoint directory"
            )
        common = {"local_files_only": self.local_files_only, "trust_remote_code": self.trust_remote_code}
        start = time.perf_counter()
        try:
            processor = AutoProcessor.from_pretrained(ref.source, **common)
        except Exception as err:  # from_pretrained raises OSError, ValueError, ImportError... name the model
            hint = ""
            if "torchvision" in str(err).lower() or "VideoProcessor" in str(err):
                hint = (
                    " (transformers 5.x needs torchvision for this model's processor: install the torchvision "
                    "release built for your torch, CPU or CUDA)"
                )
            raise BackendError(
                f"transformers model {ref.source!r}: cannot load its processor: {type(err).__name__}: {err}{hint}"
            ) from err
        if (
            not callable(getattr(processor, "apply_chat_template", None))
            or getattr(processor, "chat_template", None) is None
        ):
            raise BackendError(
                f"transformers model {ref.source!r}: its processor ({type(processor).__name__}) has no chat "
                "template; expected an instruction-tuned VLM checkpoint with chat_template.jinja or .json"
            )
        dtype_value: Any = self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)
        # transformers renamed torch_dtype to dtype in 4.56; 4.50-4.55 only know the old name
        version = tuple(int(p) for p in transformers.__version__.split(".")[:2] if p.isdigit())
        dtype_kw = "dtype" if version >= (4, 56) else "torch_dtype"
        try:
            model = AutoModelForImageTextToText.from_pretrained(ref.source, **{dtype_kw: dtype_value}, **common)
            model.to(self.device)
            model.eval()
        except Exception as err:  # out of memory, corrupt weights, shape mismatch: the message says which
            raise BackendError(
                f"transformers model {ref.source!r}: cannot load the weights onto {self.device}: "
                f"{type(err).__name__}: {err}"
            ) from err
        load_s = time.perf_counter() - start
        n_params = sum(p.numel() for p in model.parameters())
        logger.info(
            "transformers: loaded %s (%s, %.3g M parameters, %s) on %s in %.2f s",
            ref.source,
            type(model).__name__,
            n_params / 1e6,
            str(model.dtype).removeprefix("torch."),
            self.device,
            load_s,
        )
        image_token_id = getattr(model.config, "image_token_id", None)
        if image_token_id is None:
            image_token_id = getattr(processor, "image_token_id", None)
        return _Loaded(
            processor=processor,
            model=model,
            image_token_id=image_token_id,
            load_s=load_s,
            lock=threading.Lock(),
        )

    # --- answering ---------------------------------------------------------------------------------------

    @staticmethod
    def _decode_image(png: bytes, label: str) -> Any:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(png)) as image:
                return image.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise BackendError(f"{label}: the png bytes are not a decodable image: {err}") from None

    def answer(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> str:
        prompt, max_new_tokens = self._agent_settings(request, view, agent)
        return self.generate(prompt, view.png, agent, max_new_tokens, label=f"view {view.name!r}")

    def generate(self, prompt: Prompt, png: bytes, agent: AgentConfig, max_new_tokens: int | None = None,
                 label: str = "image") -> str:
        """The model's text for one picture and one prompt (system + user): every question this backend is
        asked (scoring, rotation, failure) comes through here. `label` names the picture in errors."""
        if max_new_tokens is None:
            max_new_tokens = int(agent.params.get("max_new_tokens", self.max_new_tokens))
        ref = resolve_model(self._model_name(agent))
        image = self._decode_image(png, label)
        loaded, just_loaded = self._load(ref)
        import torch

        messages = [
            {"role": "system", "content": [{"type": "text", "text": prompt.system}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt.user}]},
        ]
        processor, model = loaded.processor, loaded.model
        try:
            # Render the template to text, then let the processor expand the image placeholder into as many
            # image tokens as the image has patches: the path every transformers version since 4.45 supports.
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            inputs = processor(text=[text], images=[image], return_tensors="pt")
        except Exception as err:  # a template or processor failure is this call's failure, with the reason
            raise BackendError(
                f"transformers model {ref.source!r}: cannot build the model input for {label}: "
                f"{type(err).__name__}: {err}"
            ) from err
        # Floating tensors (pixel values) take the model's dtype; ids stay integers.
        inputs = inputs.to(model.device).to(model.dtype)
        input_ids = inputs["input_ids"]
        n_input = int(input_ids.shape[1])
        n_image = 0 if loaded.image_token_id is None else int((input_ids == loaded.image_token_id).sum())
        start = time.perf_counter()
        try:
            with loaded.lock, torch.inference_mode():
                # Greedy: do_sample=False; the sampling knobs a checkpoint's generation_config may carry are
                # unset so transformers does not warn that they are ignored.
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    max_time=self.timeout_s,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                )
        except Exception as err:  # e.g. CUDA out of memory: fail this call, keep the backend usable
            raise BackendError(
                f"transformers model {ref.source!r}: generate failed on {label}: {type(err).__name__}: {err}"
            ) from err
        generate_s = time.perf_counter() - start
        new_tokens = output[0, n_input:]
        if self.timeout_s is not None and generate_s >= self.timeout_s and new_tokens.shape[0] < max_new_tokens:
            # generate() stopped at max_time: the answer is cut off, so this call failed (not a parse error).
            raise BackendError(
                f"transformers model {ref.source!r}: generation on {label} stopped at timeout_s="
                f"{self.timeout_s:g} s after {int(new_tokens.shape[0])} of at most {max_new_tokens} new tokens"
            )
        answer = processor.decode(new_tokens, skip_special_tokens=True)
        self.last_stats = GenerationStats(
            model=ref.source,
            input_tokens=n_input,
            image_tokens=n_image,
            new_tokens=int(new_tokens.shape[0]),
            load_s=loaded.load_s if just_loaded else 0.0,
            generate_s=generate_s,
        )
        logger.debug(
            "transformers: agent %r, %s: %d input tokens (%d image), %d new tokens in %.2f s",
            agent.name,
            label,
            n_input,
            n_image,
            self.last_stats.new_tokens,
            generate_s,
        )
        return answer

    def close(self) -> None:
        """Drop every loaded model (and the GPU memory cached for it)."""
        with self._lock:
            had_cuda = any(str(item.model.device).startswith("cuda") for item in self._loaded.values())
            self._loaded.clear()
        if had_cuda:
            import torch

            torch.cuda.empty_cache()
