"""Build a tiny, randomly initialised VLM checkpoint directory for offline tests and docs.

Nothing is downloaded: a Qwen2-style byte-level BPE tokenizer is trained in-process on a small corpus, the
model is built from a config with seeded weights, and tokenizer, image processor, processor (with the
Qwen2.5-VL ChatML chat template) and model are written with ``save_pretrained``. The directory then loads
through the same path a user's real checkpoint takes: ``AutoProcessor.from_pretrained(dir)`` and
``AutoModelForImageTextToText.from_pretrained(dir)``.

Written against the transformers 5.x API (tokenizers-backed ``Qwen2Tokenizer(vocab=..., merges=...)``, PIL
image processor classes). Two shapes (``arch``):
- "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration + Qwen2_5_VLProcessor (about 0.18 M parameters; text
  hidden 64, 1 layer, M-RoPE; vision hidden 32, depth 1, 14 px patches merged 2x2). In transformers 5.x its
  processor cannot be built without torchvision (the video processor is torchvision-only).
- "llava" (default): LlavaForConditionalGeneration with a 1-layer CLIP vision tower and the same Qwen2 text
  model + LlavaProcessor (about 0.12 M parameters); PIL-only image processing, so it works wherever the
  local-vlm extra (torch, transformers, tokenizers) is installed.

Answers are random tokens: the model exercises the real processor (image -> patches -> expanded image
tokens), the real vision tower and the real generate loop, not the quality of any answer.

    python -m tests.scoring.tiny_vlm /tmp/tiny-vlm [llava|qwen2_5_vl]   # builds the directory, prints its path
"""

from __future__ import annotations

import sys
from pathlib import Path

# Token ids are fixed by the order of this list (they come first in the vocabulary); the config below reads
# them back from the tokenizer, so config and tokenizer cannot disagree.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<image>",  # LLaVA's image placeholder (unused by the Qwen2.5-VL variant)
)


def _chatml_template(image_placeholder: str) -> str:
    """The ChatML chat template Qwen2.5-VL-Instruct checkpoints ship (chat_template.json), with the text that
    stands for one image as a parameter (Qwen: <|vision_start|><|image_pad|><|vision_end|>; LLaVA: <image>)."""
    return (
        "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
        "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
        "{% else %}{% for content in message['content'] %}"
        "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
        "{% set image_count.value = image_count.value + 1 %}"
        "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
        + image_placeholder
        + "{% elif content['type'] == 'video' or 'video' in content %}"
        "{% set video_count.value = video_count.value + 1 %}"
        "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
        "<|vision_start|><|video_pad|><|vision_end|>"
        "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


QWEN25_VL_CHAT_TEMPLATE = _chatml_template("<|vision_start|><|image_pad|><|vision_end|>")
LLAVA_CHAT_TEMPLATE = _chatml_template("<image>\n")

# Enough English, JSON and robot vocabulary for the BPE to learn merges that look like a real tokenizer's;
# byte-level BPE encodes any other text through its 256 byte tokens, so nothing is ever unknown.
_CORPUS = (
    "You are scoring candidate robot trajectories drawn as numbered colored curves in an image. "
    "Put the red block on top of the blue block. Grasp the red block, then place it on the blue block. "
    'Answer with JSON only: {"view_clarity": 7, "candidates": [{"id": 1, "safety": 8, "task_alignment": 6, '
    '"efficiency": 5, "feasibility": 9}, {"id": 2, "safety": 3, "task_alignment": 4, "efficiency": 7, '
    '"feasibility": 2}]}. Safety: collisions and clearance to obstacles. Task alignment: does the curve '
    "advance the current subtask. Efficiency: short direct path. Feasibility: reach, joint limits, grasp. "
    "View clarity: how well this view shows every numbered curve. The x axis is red, y green, z blue. "
    "Scores are numbers from 0 to 10 for each candidate id drawn in the picture."
)

# Qwen2.5-VL pixel budget: a 640x480 render is resized to 56x56 -> 4x4 patches of 14 px -> 4 image tokens
# after the 2x2 merge. Small enough for a CPU test, large enough that the expansion is visible.
MIN_PIXELS = 28 * 28 * 4
MAX_PIXELS = 28 * 28 * 6


def build_tokenizer(vocab_size: int = 512):
    """A Qwen2-style byte-level BPE tokenizer trained on _CORPUS, with the Qwen2.5-VL special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    vocab = bpe.get_vocab()
    merges = [tuple(pair) for pair in _merges_of(bpe)]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=4096,
    )
    # Mark the chat and vision markers special (skip_special_tokens drops them from decoded answers).
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    return tokenizer


def _merges_of(bpe) -> list[list[str]]:
    import json

    return [m.split(" ") if isinstance(m, str) else list(m) for m in json.loads(bpe.to_str())["model"]["merges"]]


ARCHITECTURES = ("qwen2_5_vl", "llava")
TEXT_HIDDEN = 64


def _text_config(tokenizer, ids: dict[str, int]) -> dict:
    # A Qwen2-style decoder: hidden 64, 1 layer, 4 query heads sharing 2 key/value heads (head_dim 16).
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": TEXT_HIDDEN,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def torchvision_available() -> bool:
    """Qwen2.5-VL's processor needs torchvision in transformers 5.x (its video processor is torchvision-only)."""
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def build_tiny_vlm(out_dir: str | Path, arch: str = "llava", seed: int = 0) -> Path:
    """Write a tiny VLM checkpoint (model, tokenizer, image processor, processor) into ``out_dir``.

    arch: "qwen2_5_vl" (Qwen2_5_VLForConditionalGeneration + Qwen2_5_VLProcessor; needs torchvision with
    transformers 5.x) or "llava" (LlavaForConditionalGeneration with a CLIP vision tower and a Qwen2 text
    model + LlavaProcessor; PIL image processing only). Same tokenizer and ChatML template for both.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"build_tiny_vlm: arch {arch!r} is not one of {ARCHITECTURES}")
    if arch == "qwen2_5_vl" and not torchvision_available():
        raise RuntimeError("build_tiny_vlm: the qwen2_5_vl processor needs torchvision (transformers 5.x)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    model, processor = (_qwen2_5_vl if arch == "qwen2_5_vl" else _llava)(tokenizer, ids, seed)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _qwen2_5_vl(tokenizer, ids: dict[str, int], seed: int):
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    text = _text_config(tokenizer, ids)
    # head_dim 16 -> 8 rotary frequencies, split over (temporal, height, width) positions.
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [0],
            "out_hidden_size": TEXT_HIDDEN,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN25_VL_CHAT_TEMPLATE
    )
    return model, processor


# LLaVA variant: every image is resized and cropped to 28x28 px -> 4x4 patches of 7 px -> 16 image tokens.
LLAVA_IMAGE_PX = 28
LLAVA_PATCH_PX = 7


def _llava(tokenizer, ids: dict[str, int], seed: int):
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    text = _text_config(tokenizer, ids)
    text["model_type"] = "qwen2"
    config = LlavaConfig(
        text_config=text,
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": LLAVA_IMAGE_PX,
            "patch_size": LLAVA_PATCH_PX,
            "projection_dim": 32,
        },
        image_token_index=ids["<image>"],
        image_seq_length=(LLAVA_IMAGE_PX // LLAVA_PATCH_PX) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": LLAVA_IMAGE_PX}, crop_size={"height": LLAVA_IMAGE_PX, "width": LLAVA_IMAGE_PX}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=LLAVA_PATCH_PX,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,  # CLIP's class token, which the "default" strategy drops again
    )
    return model, processor


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.stderr.write(f"usage: python -m tests.scoring.tiny_vlm OUT_DIR [{'|'.join(ARCHITECTURES)}]\n")
        sys.exit(2)
    sys.stdout.write(f"{build_tiny_vlm(*sys.argv[1:])}\n")
