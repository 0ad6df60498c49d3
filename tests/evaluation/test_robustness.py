"""Robustness conditions: dropping hides a modality exactly like an empty cell, noise is
confined to one modality and reproducible, text noise never touches padding, and the
robustness table reuses the evaluate path (its clean row equals `predictor.evaluate`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.data import prepare_inference
from plait.data.batch import Batch
from plait.errors import PlaitError
from plait.evaluation import (
    Condition,
    apply_condition,
    default_conditions,
    evaluate_robustness,
    robustness_section,
    write_report,
)
from plait.evaluation.robustness import TextIds

MODALITIES = ["caption", "image", "audio"]


@pytest.fixture(scope="module")
def predictor(tiny_config, tmp_path_factory):
    """One tiny 2-epoch concat model over caption, image and audio."""
    raw = tiny_config(tmp_path_factory.mktemp("runs"), "robust")
    return fit(PlaitConfig.from_dict(raw)).predictor


@pytest.fixture(scope="module")
def test_set(predictor, demo_data):
    dataset, _ = prepare_inference(
        demo_data / "test.csv",
        predictor.config,
        predictor.processors,
        predictor.labels,
        require_labels=True,
        progress=False,
    )
    return dataset


@pytest.fixture()
def batch(test_set) -> Batch:
    """All 16 test rows in one batch; the demo test split has an empty cell per modality."""
    loader = DataLoader(test_set, batch_size=len(test_set), collate_fn=test_set.collate)
    return next(iter(loader))


def _same(a: Batch, b: Batch, modality: str) -> bool:
    return torch.equal(a.presence[modality], b.presence[modality]) and all(
        torch.equal(a.inputs[modality][k], b.inputs[modality][k]) for k in a.inputs[modality]
    )


def _clone(batch: Batch) -> Batch:
    return Batch(
        inputs={m: {k: v.clone() for k, v in d.items()} for m, d in batch.inputs.items()},
        presence={m: p.clone() for m, p in batch.presence.items()},
        labels=batch.labels,
        ids=list(batch.ids),
    )


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------ conditions


def test_default_conditions_names():
    names = [c.name for c in default_conditions(MODALITIES)]
    assert names[0] == "clean"
    assert names[1:4] == ["missing:caption", "missing:image", "missing:audio"]
    assert names[4:] == [f"noise:{m}@{lvl}" for m in MODALITIES for lvl in ("0.5", "1")]
    single = [c.name for c in default_conditions(["image"], noise_levels=(2.0,))]
    assert single == ["clean", "noise:image@2"]  # nothing left to hide with one modality


def test_condition_validates_and_normalises():
    condition = Condition("x", drop="image", noise={"audio": 1})
    assert condition.drop == ("image",) and condition.noise == {"audio": 1.0}
    assert Condition("c").is_clean and Condition("z", noise={"image": 0.0}).is_clean
    with pytest.raises(ValueError, match="noise level"):
        Condition("bad", noise={"image": -1.0})
    with pytest.raises(ValueError, match="noise level"):
        Condition("bad", noise={"image": float("nan")})


def test_unknown_modality_is_an_error(batch):
    with pytest.raises(ValueError, match="unknown modalities"):
        apply_condition(batch, Condition("x", drop=("video",)), _gen())


# ------------------------------------------------------------------------ drop / noise


def test_drop_hides_the_modality_for_every_sample_and_nothing_else(batch):
    before = _clone(batch)
    out = apply_condition(batch, Condition("missing:image", drop=("image",)), _gen())
    assert out is not batch
    assert not out.presence["image"].any() and len(out.presence["image"]) == len(batch)
    assert torch.equal(out.inputs["image"]["pixel_values"], batch.inputs["image"]["pixel_values"])
    for modality in ("caption", "audio"):
        assert _same(out, batch, modality)
    assert out.ids == batch.ids and torch.equal(out.labels, batch.labels)
    for modality in MODALITIES:  # the input batch is not modified
        assert _same(batch, before, modality)


def test_noise_touches_only_the_named_modality_and_is_seeded(batch):
    before = _clone(batch)
    condition = Condition("noise:image@0.5", noise={"image": 0.5})
    first = apply_condition(batch, condition, _gen(3))
    again = apply_condition(batch, condition, _gen(3))
    other = apply_condition(batch, condition, _gen(4))

    pixels, clean = first.inputs["image"]["pixel_values"], batch.inputs["image"]["pixel_values"]
    present = batch.presence["image"]
    assert (~present).any(), "the demo test split should hold a sample without an image"
    assert torch.equal(pixels, again.inputs["image"]["pixel_values"])
    assert not torch.equal(pixels, other.inputs["image"]["pixel_values"])
    diff = pixels - clean
    assert torch.equal(diff[~present], torch.zeros_like(diff[~present]))  # placeholders kept
    assert diff[present].std().item() == pytest.approx(0.5, rel=0.1)
    assert torch.equal(first.presence["image"], present)
    for modality in ("caption", "audio"):
        assert _same(first, batch, modality)
    for modality in MODALITIES:
        assert _same(batch, before, modality)


def test_audio_noise_is_float_noise(batch):
    out = apply_condition(batch, Condition("a", noise={"audio": 1.0}), _gen())
    present = batch.presence["audio"]
    diff = out.inputs["audio"]["features"] - batch.inputs["audio"]["features"]
    assert diff[present].abs().max() > 0 and diff[~present].abs().max() == 0
    assert _same(out, batch, "image") and _same(out, batch, "caption")


def _text_batch(rows: int = 64, length: int = 40) -> Batch:
    g = _gen(0)
    ids = torch.randint(2, 500, (rows, length), generator=g)
    lengths = torch.randint(1, length + 1, (rows,), generator=g)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    ids = ids * mask  # pad id 0 after each text
    presence = torch.ones(rows, dtype=torch.bool)
    presence[:4] = False
    return Batch(
        inputs={"text": {"input_ids": ids, "attention_mask": mask}},
        presence={"text": presence},
        ids=[str(i) for i in range(rows)],
    )


def test_text_noise_replaces_a_fraction_of_tokens_and_never_padding():
    batch = _text_batch()
    ids, mask = batch.inputs["text"]["input_ids"], batch.inputs["text"]["attention_mask"]
    out = apply_condition(batch, Condition("t", noise={"text": 0.3}), _gen(1))
    new = out.inputs["text"]["input_ids"]
    assert new.dtype == ids.dtype and torch.equal(out.inputs["text"]["attention_mask"], mask)
    changed = new != ids
    assert torch.all(new[changed] == 1)  # the unknown id
    assert not changed[mask == 0].any()  # padding untouched
    assert not changed[~batch.presence["text"]].any()  # absent samples untouched
    eligible = (mask == 1) & batch.presence["text"][:, None]
    fraction = changed.sum().item() / eligible.sum().item()
    assert 0.25 < fraction < 0.35, fraction
    assert torch.equal(
        new,
        apply_condition(batch, Condition("t", noise={"text": 0.3}), _gen(1)).inputs["text"][
            "input_ids"
        ],
    )

    everything = apply_condition(batch, Condition("t", noise={"text": 5.0}), _gen(1))
    assert torch.all(everything.inputs["text"]["input_ids"][eligible] == 1)
    assert torch.equal(everything.inputs["text"]["input_ids"][mask == 0], ids[mask == 0])


def test_text_noise_spares_special_tokens_and_uses_the_tokenizer_unk():
    batch = _text_batch()
    ids = batch.inputs["text"]["input_ids"].clone()
    ids[:, 0] = 101  # a [CLS]-like token
    batch.inputs["text"]["input_ids"] = ids
    text_ids = {"text": TextIds(pad=0, unk=100, special=(101,))}
    out = apply_condition(batch, Condition("t", noise={"text": 1.0}), _gen(), text_ids=text_ids)
    new = out.inputs["text"]["input_ids"]
    assert torch.all(new[:, 0] == 101)
    present = batch.presence["text"][:, None] & (batch.inputs["text"]["attention_mask"] == 1)
    present &= ids != 101  # the random ids may hold 101 elsewhere too
    assert torch.all(new[present] == 100) and torch.all(new[ids == 101] == 101)


def test_dropping_a_modality_equals_an_empty_cell(predictor, test_set, demo_data, tmp_path):
    """One missing-modality policy: hiding a modality gives the predictions the model
    makes when that column is empty in the data."""
    frame = pd.read_csv(demo_data / "test.csv")
    for column in ("image", "audio"):
        frame[column] = [str(demo_data / v) if isinstance(v, str) else v for v in frame[column]]
    frame["image"] = np.nan
    blank = tmp_path / "no-image.csv"
    frame.to_csv(blank, index=False)

    condition = Condition("missing:image", drop=("image",))
    _, dropped, _ = predictor.outputs(
        test_set, transform=lambda b: apply_condition(b, condition, _gen())
    )
    _, empty, _ = predictor.outputs(blank)
    np.testing.assert_allclose(dropped, empty, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ the table


def test_evaluate_robustness_table(predictor, test_set, demo_data):
    conditions = [
        Condition("missing:audio", drop=("audio",)),
        Condition("clean"),
        Condition("noise:caption@0.5", noise={"caption": 0.5}, seed=1),
    ]
    frame = evaluate_robustness(predictor, demo_data / "test.csv", conditions, batch_size=5)
    assert list(frame.index) == ["clean", "missing:audio", "noise:caption@0.5"]
    assert frame.index.name == "condition"
    assert list(frame.columns) == ["accuracy", "balanced_accuracy", "f1_macro", "drop_vs_clean"]
    assert frame.attrs == {"task": "classification", "headline": "accuracy", "n": len(test_set)}

    reference = predictor.evaluate(test_set)
    for metric in ("accuracy", "balanced_accuracy", "f1_macro"):
        assert frame.loc["clean", metric] == pytest.approx(reference[metric], abs=1e-12)
    assert frame.loc["clean", "drop_vs_clean"] == 0.0
    assert frame["drop_vs_clean"].to_numpy() == pytest.approx(
        frame.loc["clean", "accuracy"] - frame["accuracy"].to_numpy()
    )

    # the same seeds give the same table; a prepared dataset is accepted as well
    again = evaluate_robustness(predictor, test_set, conditions, batch_size=5)
    pd.testing.assert_frame_equal(frame, again)


def test_default_table_and_a_clean_row_is_added(predictor, test_set):
    frame = evaluate_robustness(predictor, test_set)
    assert list(frame.index) == [c.name for c in default_conditions(MODALITIES)]
    only = evaluate_robustness(predictor, test_set, [Condition("x", drop=("image",))])
    assert list(only.index) == ["clean", "x"]


def test_dropping_every_modality_still_gives_finite_metrics(predictor, test_set):
    nothing = Condition("nothing", drop=tuple(MODALITIES))
    frame = evaluate_robustness(predictor, test_set, [nothing])
    row = frame.loc["nothing"]
    assert all(math.isfinite(v) for v in row.to_numpy())
    _, out, _ = predictor.outputs(test_set, transform=lambda b: apply_condition(b, nothing, _gen()))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, np.broadcast_to(out[:1], out.shape), atol=1e-6)


def test_large_noise_changes_predictions(predictor, test_set):
    loud = Condition("noise:image@100", noise={"image": 100.0})
    _, clean, _ = predictor.outputs(test_set)
    _, noisy, _ = predictor.outputs(test_set, transform=lambda b: apply_condition(b, loud, _gen()))
    assert np.abs(noisy - clean).max() > 0.05
    # ... and only through the image: a loud noise on a hidden image changes nothing
    hidden = Condition("both", drop=("image",), noise={"image": 100.0})
    dropped = Condition("drop", drop=("image",))
    _, a, _ = predictor.outputs(test_set, transform=lambda b: apply_condition(b, hidden, _gen()))
    _, b, _ = predictor.outputs(test_set, transform=lambda b: apply_condition(b, dropped, _gen()))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bad_conditions_are_refused(predictor, test_set):
    with pytest.raises(PlaitError, match="unknown modalities"):
        evaluate_robustness(predictor, test_set, [Condition("x", drop=("video",))])
    with pytest.raises(PlaitError, match="unique"):
        evaluate_robustness(predictor, test_set, [Condition("x"), Condition("x")])
    with pytest.raises(PlaitError, match="must not drop"):
        evaluate_robustness(predictor, test_set, [Condition("clean", drop=("image",))])


def test_robustness_section_in_a_report(tmp_path: Path):
    frame = pd.DataFrame(
        {"accuracy": [0.9, 0.5], "balanced_accuracy": [0.9, 0.5], "f1_macro": [0.8, 0.4]},
        index=pd.Index(["clean", "missing:<b>&x"], name="condition"),
    )
    frame["drop_vs_clean"] = 0.9 - frame["accuracy"]
    frame.attrs["headline"] = "accuracy"
    heading, body = robustness_section(frame)
    assert "Robustness" in heading
    assert "missing:&lt;b&gt;&amp;x" in body and "<b>&x" not in body
    assert "<table>" in body and "drop_vs_clean" in body and "0.4000" in body
    metrics = {"task": "classification", "n": 2, "accuracy": 0.9}
    page = write_report(
        tmp_path, metrics, task="classification", extra_sections=[(heading, body)]
    ).read_text()
    assert heading in page and "missing:&lt;b&gt;&amp;x" in page
