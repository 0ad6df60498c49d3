"""The captioning task on tiny built-in data: both decoder kinds (scratch Transformer and
a hub causal LM with a ClipCap prefix), image and audio sources, training, decoding,
evaluation, saving and reloading offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import plait
from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.datasets.captioned_scenes import generate_captioned_scenes
from plait.datasets.tone_captions import generate_tone_captions
from plait.errors import ConfigError, DataError
from plait.tasks import TASKS
from plait.tasks.captioning_model import IGNORE, CaptionTokens
from plait.tasks.captioning_predictor import CaptioningPredictor


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    generate_captioned_scenes(root, n_train=32, n_valid=8, n_test=8, n_heldout=8, seed=0)
    return root


def scene_config(scenes: Path, out: Path, **captioning: Any) -> dict:
    return {
        "name": "cap",
        "output_dir": str(out),
        "data": {
            "train": str(scenes / "train.csv"),
            "valid": str(scenes / "valid.csv"),
            "test": str(scenes / "test.csv"),
            "id": "id",
        },  # fmt: skip
        "modalities": {
            "image": {
                "kind": "image",
                "column": "image",
                "size": 32,
                "augment": False,
                "encoder": {"type": "image_cnn", "dim": 16, "layers": 2},
            },  # fmt: skip
            "caption": {
                "kind": "text",
                "column": "caption",
                "max_length": 24,
                "encoder": {"type": "text_cnn"},
            },  # fmt: skip
        },
        "captioning": {"dim": 16, "heads": 2, "layers": 1, "max_length": 12, **captioning},
        "training": {
            "epochs": 2,
            "batch_size": 16,
            "lr": 3e-3,
            "progress": False,
            "tensorboard": False,
            "threads": 1,
            "accelerator": "cpu",
            "monitor": "valid/bleu_4",
        },  # fmt: skip
    }


def hub_config(scenes: Path, out: Path, gpt2: Path, **captioning: Any) -> dict:
    raw = scene_config(scenes, out, decoder="hub", model=str(gpt2), prefix_length=2,
                       **captioning)  # fmt: skip
    for key in ("dim", "heads", "layers"):
        del raw["captioning"][key]
    raw["modalities"]["caption"]["encoder"] = {"type": "huggingface", "model": str(gpt2)}
    return raw


def train_steps(raw: dict, steps: int, lr: float = 3e-3) -> tuple[Any, Any, list[float]]:
    """(model, prepared data, loss of each step) of `steps` Adam steps on one batch."""
    torch.manual_seed(0)
    config = PlaitConfig.from_dict(raw)
    task = TASKS["captioning"]
    data = prepare_data(config, progress=False)
    model = task.build(config, data.processors, data.labels)
    step = task.step(config, data)
    batch = next(iter(DataLoader(data.train, batch_size=16, collate_fn=data.train.collate)))
    params = [p for group in step.parameter_groups(model) for p in group["params"]]
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = step.terms(model, batch, None)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return model.eval(), data, losses


def test_targets_are_caption_tokens_then_end_with_padding_ignored():
    tokens = CaptionTokens(bos=10, eos=11, pad=0, vocab_size=12, special=frozenset({0}))
    ids = torch.tensor([[5, 6, 7], [8, 0, 0], [4, 4, 4]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 1]])
    keep = torch.tensor([True, True, False])
    expected = [[5, 6, 7, 11], [8, 11, IGNORE, IGNORE], [IGNORE] * 4]
    assert tokens.targets(ids, mask, keep).tolist() == expected


def test_scratch_decoder_learns_and_shapes(scenes: Path, tmp_path: Path):
    model, data, losses = train_steps(scene_config(scenes, tmp_path), 12, lr=1e-2)
    assert losses[-1] < 0.7 * losses[0]
    batch = next(iter(DataLoader(data.valid, batch_size=4, collate_fn=data.valid.collate)))
    targets = torch.full((4, 5), 2)
    assert model(batch.inputs, targets).shape == (4, 5, model.tokens.vocab_size)


def test_train_caption_evaluate_save_reload(scenes: Path, tmp_path: Path):
    run = plait.train(scene_config(scenes, tmp_path))
    metrics = run.metrics
    assert metrics["split"] == "test" and metrics["n"] == 8
    assert {"bleu_4", "rouge_l", "cider_d"} <= set(metrics) and "valid" in metrics
    assert metrics["examples"][0]["file"].endswith(".png")
    history = pd.read_csv(next((run.run_dir / "logs").rglob("metrics.csv")))
    assert {"valid/bleu_4", "valid/cider_d", "valid/loss"} <= set(history.columns)
    html = run.report_path.read_text()
    assert "Captions" in html and metrics["examples"][0]["generated"] in html

    model = plait.load(run.model_dir)
    assert isinstance(model, CaptioningPredictor)
    captions = model.caption(scenes / "test_heldout.csv", progress=False)
    assert list(captions.columns) == ["id", "caption"] and len(captions) == 8
    assert captions["caption"].str.len().gt(0).all()
    again = run.predictor.caption(scenes / "test_heldout.csv", progress=False)
    pd.testing.assert_frame_equal(captions, again)
    beams = model.caption(scenes / "test.csv", num_beams=3, no_repeat_ngram_size=2)
    assert len(beams) == 8
    sampled = [
        model.caption(scenes / "test.csv", do_sample=True, top_p=0.9, seed=s) for s in (1, 1)
    ]
    pd.testing.assert_frame_equal(*sampled)

    with_refs = model.evaluate(scenes / "test.csv", references=scenes / "references.csv")
    alone = model.evaluate(scenes / "test.csv")
    assert with_refs["n"] == alone["n"] == 8
    assert len(with_refs["examples"][0]["references"]) > 1
    assert with_refs["bleu_4"] != alone["bleu_4"]


def test_bad_rows_keep_their_row_with_an_error(scenes: Path, tmp_path: Path):
    model, data, _ = train_steps(scene_config(scenes, tmp_path), 1)
    predictor = CaptioningPredictor(model, PlaitConfig.from_dict(scene_config(scenes, tmp_path)),
                                    data.processors)  # fmt: skip
    frame = pd.read_csv(scenes / "test.csv").head(3)
    frame["image"] = [str(scenes / p) for p in frame["image"]]
    frame.loc[1, "image"] = str(scenes / "missing.png")
    out = predictor.caption(frame, progress=False)
    assert len(out) == 3 and out["caption"].isna().tolist() == [False, True, False]
    assert "missing.png" in out.loc[1, "error"]


def test_rows_with_no_source_are_bad_rows_not_captions_of_nothing(scenes: Path, tmp_path: Path):
    model, data, _ = train_steps(scene_config(scenes, tmp_path), 1)
    predictor = CaptioningPredictor(model, PlaitConfig.from_dict(scene_config(scenes, tmp_path)),
                                    data.processors)  # fmt: skip
    frame = pd.read_csv(scenes / "test.csv").head(4)
    frame["image"] = [str(scenes / p) for p in frame["image"]]
    frame.loc[1, "image"] = None
    frame.loc[3, "image"] = ""
    out = predictor.caption(frame, progress=False)
    assert out["id"].tolist() == frame["id"].astype(str).tolist()
    assert out["caption"].isna().tolist() == [False, True, False, True]
    assert out["error"].isna().tolist() == [True, False, True, False]
    assert "column 'image': empty cell" in out.loc[1, "error"]
    assert predictor.last_bad_rows is not None and predictor.last_bad_rows.rows == [2, 4]
    with pytest.raises(DataError, match=r"2 of 4 row\(s\).*row 2, column 'image': empty cell"):
        predictor.caption(frame, progress=False, on_error="raise")


def test_audio_captions(tmp_path: Path):
    root = tmp_path / "tones"
    generate_tone_captions(root, n_train=16, n_valid=4, n_test=4, n_heldout=0, seed=0)
    raw = {
        "data": {"train": str(root / "train.csv"), "valid": str(root / "valid.csv"), "id": "id"},
        "output_dir": str(tmp_path),
        "modalities": {
            "audio": {
                "kind": "audio",
                "column": "audio",
                "duration": 1.0,
                "n_mels": 16,
                "encoder": {"type": "audio_cnn", "dim": 16, "layers": 1},
            },  # fmt: skip
            "caption": {"kind": "text", "column": "caption"},
        },
        "captioning": {"dim": 16, "heads": 2, "layers": 1, "max_length": 8},
    }
    model, data, losses = train_steps(raw, 20)
    assert losses[-1] < losses[0]
    predictor = CaptioningPredictor(model, PlaitConfig.from_dict(raw), data.processors)
    out = predictor.caption(root / "valid.csv", progress=False)
    assert len(out) == 4 and out["caption"].map(lambda c: isinstance(c, str)).all()
    metrics = predictor.evaluate(root / "valid.csv")
    assert metrics["n"] == 4 and metrics["examples"][0]["kind"] == "audio"
    from plait.evaluation import write_report

    html = write_report(tmp_path / "report", metrics, task="captioning").read_text()
    assert html.count('<audio controls src="data:audio/wav;base64,') == 4


def test_hub_lm_with_prefix_frozen_learns_saves_and_reloads(
    scenes: Path, tiny_gpt2: Path, tmp_path: Path
):
    raw = hub_config(scenes, tmp_path, tiny_gpt2)
    torch.manual_seed(0)
    from transformers import GPT2LMHeadModel

    original = GPT2LMHeadModel.from_pretrained(tiny_gpt2).state_dict()
    model, data, losses = train_steps(raw, 40, lr=3e-2)
    # a frozen random LM: only the prefix (and the image tower) learn, so the loss on the
    # one batch falls slowly (6.38 -> 5.70 here); a prefix that got no gradient stays flat
    assert losses[-1] < 0.93 * losses[0]
    lm_state = model.decoder.lm.state_dict()
    assert all(torch.equal(lm_state[k], original[k]) for k in original)  # frozen LM untouched
    config = PlaitConfig.from_dict(raw)
    predictor = CaptioningPredictor(model, config, data.processors)
    for options in ({}, {"num_beams": 2, "length_penalty": 0.5}, {"no_repeat_ngram_size": 1}):
        first = predictor.caption(scenes / "test.csv", progress=False, **options)
        assert len(first) == 8
    sampled = predictor.caption(scenes / "test.csv", do_sample=True, top_k=5, seed=3)
    folder = predictor.save(tmp_path / "model")
    assert (folder / "hub" / "_decoder" / "config.json").is_file()
    loaded = plait.load(folder)
    assert isinstance(loaded, CaptioningPredictor) and loaded.model.kind == "hub"
    for options in ({}, {"num_beams": 2, "length_penalty": 0.5}):
        pd.testing.assert_frame_equal(
            loaded.caption(scenes / "test.csv", progress=False, **options),
            predictor.caption(scenes / "test.csv", progress=False, **options),
        )
    again = loaded.caption(scenes / "test.csv", do_sample=True, top_k=5, seed=3)
    pd.testing.assert_frame_equal(again, sampled)
    assert loaded.evaluate(scenes / "test.csv")["n"] == 8


def test_hub_lm_fine_tuned_changes_its_weights(scenes: Path, tiny_gpt2: Path, tmp_path: Path):
    from transformers import GPT2LMHeadModel

    original = GPT2LMHeadModel.from_pretrained(tiny_gpt2).state_dict()
    raw = hub_config(scenes, tmp_path, tiny_gpt2, freeze_lm=False)
    model, _, losses = train_steps(raw, 10, lr=1e-2)
    assert losses[-1] < 0.8 * losses[0]
    changed = model.decoder.lm.state_dict()
    assert not torch.equal(changed["transformer.h.0.attn.c_attn.weight"],
                           original["transformer.h.0.attn.c_attn.weight"])  # fmt: skip


def test_config_mistakes_say_what_to_write(scenes: Path, tmp_path: Path, tiny_gpt2: Path):
    raw = hub_config(scenes, tmp_path, tiny_gpt2)
    raw["modalities"]["caption"]["encoder"] = {"type": "text_cnn"}
    with pytest.raises(ConfigError, match="needs the LM's tokenizer"):
        PlaitConfig.from_dict(raw)
    raw = scene_config(scenes, tmp_path, source="caption")
    with pytest.raises(ConfigError, match="image or audio"):
        PlaitConfig.from_dict(raw)
    raw = scene_config(scenes, tmp_path, dim=10, heads=4)
    with pytest.raises(ConfigError, match="multiple of"):
        PlaitConfig.from_dict(raw)
    raw = scene_config(scenes, tmp_path, model="gpt2")
    with pytest.raises(ConfigError, match="only used with `decoder: hub`"):
        PlaitConfig.from_dict(raw)


def test_own_vocabulary_captions_read_as_text():
    from plait.config import TextModality
    from plait.data.text import TextProcessor
    from plait.tasks.captioning_model import caption_text

    processor = TextProcessor(TextModality(column="caption"))
    processor.fit(["there are two shapes: a red circle, a blue square"])
    tokens = CaptionTokens.of(processor)
    ids = processor.vocab.encode("there are two shapes: a red circle, a blue square")
    text = caption_text(processor, tokens, [tokens.bos, *ids, tokens.eos, 0])
    assert text == "there are two shapes: a red circle, a blue square"


def test_hub_image_encoder_feeds_the_scratch_decoder(scenes: Path, tmp_path: Path):
    """Cross-attention to a pretrained tower's sequence (a tiny random ViT here)."""
    import transformers as tf

    vit = tmp_path / "vit"
    config = tf.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=32)  # fmt: skip
    tf.ViTModel(config).save_pretrained(vit)
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(vit)
    raw = scene_config(scenes, tmp_path)
    raw["modalities"]["image"]["encoder"] = {"type": "huggingface", "model": str(vit)}
    model, data, losses = train_steps(raw, 4, lr=1e-2)
    assert losses[-1] < losses[0]
    predictor = CaptioningPredictor(model, PlaitConfig.from_dict(raw), data.processors)
    folder = predictor.save(tmp_path / "model")
    pd.testing.assert_frame_equal(
        plait.load(folder).caption(scenes / "test.csv", progress=False),
        predictor.caption(scenes / "test.csv", progress=False),
    )
