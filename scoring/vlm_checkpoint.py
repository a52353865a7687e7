"""Finding a local VLM checkpoint without loading it, for the transformers backend: a directory or a Hugging Face
hub id resolved to where its files lie (`resolve_model`), the files' fingerprint that keys the answer cache
(`fingerprint`), and the check that its config names an image-text-to-text architecture (`check_architecture`),
each failing with a `BackendError` that says what is missing and where."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring.errors import BackendError

# Weight files from_pretrained can load (sharded checkpoints come with an index file next to the shards).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: ``source`` is what from_pretrained gets (an absolute directory or a hub id);
    ``directory`` is where its files lie on disk (None for a hub id that is not in the local cache)."""

    source: str
    directory: Path | None
    is_local_dir: bool


def _looks_like_path(model: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else with a separator, or starting with "." "~" "/", is a path.
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
    )


def _has_weights(directory: Path) -> bool:
    return any(entry.is_file() and entry.name.endswith(WEIGHT_SUFFIXES) for entry in directory.iterdir())


def fingerprint(directory: Path) -> str:
    """Hash of config.json's bytes and every file's (name, size, mtime): new weights, a new tokenizer or chat
    template, a new generation config all change it; reading only stat() keeps it cheap for 10 GB of weights."""
    digest = hashlib.sha256()
    config_path = directory / "config.json"
    if config_path.is_file():
        digest.update(config_path.read_bytes())
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        stat = entry.stat()  # follows the hub cache's symlinks to the blobs
        digest.update(f"{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def resolve_model(name: str) -> ModelRef:
    """Find the checkpoint on disk without loading it; BackendError says what is missing and where."""
    path = Path(name).expanduser()
    if path.exists() or _looks_like_path(name):
        path = path.resolve()
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is not a directory"
            raise BackendError(
                f"transformers model {str(path)!r} {what}: expected a checkpoint directory holding "
                "config.json, the weights (*.safetensors) and the processor files"
            )
        if not (path / "config.json").is_file():
            raise BackendError(
                f"transformers model directory {str(path)!r} has no config.json: expected a checkpoint "
                "saved with save_pretrained (config.json, *.safetensors, processor files)"
            )
        if not _has_weights(path):
            raise BackendError(
                f"transformers model directory {str(path)!r} holds no weights: expected *.safetensors "
                "(or pytorch_model*.bin, or a sharded checkpoint's index file)"
            )
        return ModelRef(source=str(path), directory=path, is_local_dir=True)
    # A hub id: the cached snapshot, if any (huggingface_hub comes with transformers).
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return ModelRef(source=name, directory=None, is_local_dir=False)
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError as err:  # huggingface_hub's HFValidationError: not a well-formed repo id
        raise BackendError(
            f"transformers model {name!r} is neither an existing directory nor a valid hub id: {err}"
        ) from None
    directory = Path(cached).parent if isinstance(cached, str) else None
    return ModelRef(source=name, directory=directory, is_local_dir=False)


def check_architecture(ref: ModelRef, transformers: Any, trust_remote_code: bool) -> None:
    """Refuse a checkpoint whose config is not an image-text-to-text model, before reading its weights."""
    assert ref.directory is not None
    config_path = ref.directory / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BackendError(f"transformers model {ref.source!r}: cannot read {config_path}: {err}") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        raise BackendError(f"transformers model {ref.source!r}: {config_path} has no model_type")
    if trust_remote_code and "AutoModelForImageTextToText" in (config.get("auto_map") or {}):
        return  # the checkpoint brings its own class
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise BackendError(
            f"transformers model {ref.source!r}: model_type {model_type!r} in {config_path} is not a "
            f"vision-language (image-text-to-text) architecture that transformers {transformers.__version__} "
            "knows; expected e.g. qwen2_5_vl, qwen2_vl, llava, idefics3, gemma3"
        )
