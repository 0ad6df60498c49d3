from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from plait.config import DataConfig
from plait.data.labels import LabelSpace, label_key
from plait.data.splits import split_table


def _round_trip(space: LabelSpace) -> LabelSpace:
    return LabelSpace.from_dict(json.loads(json.dumps(space.to_dict())))


def test_classification_classes_and_encoding():
    train = pd.DataFrame({"y": [10, 2, 2, 3.0, "10"]})
    space = LabelSpace.fit(train, ["y"], "classification")
    assert space.names == ["2", "3", "10"]  # integer-like classes sort numerically
    assert space.encode([2, "3", 10.0]).tolist() == [0, 1, 2]
    assert space.decode(torch.tensor([[0.1, 0.2, 0.7]])) == ["10"]
    weights = space.class_weights()
    assert weights.tolist() == pytest.approx([5 / 6, 5 / 3, 5 / 6])
    assert _round_trip(space).encode([10]).tolist() == [2]

    class Rows:  # counts from the rows actually trained on (e.g. PreparedData.train)
        labels = torch.tensor([0, 0, 0, 1])

    assert space.class_weights(Rows()).tolist() == pytest.approx([4 / 9, 4 / 3, 4 / 3])


def test_classification_problems():
    space = LabelSpace.fit(pd.DataFrame({"y": ["cat", "dog"]}), ["y"], "classification")
    valid = pd.DataFrame({"y": ["cat", "bird", None, " "]})
    problems = space.validate(valid, "valid.csv")
    assert [(p.row, p.column) for p in problems] == [(2, "y"), (3, "y"), (4, "y")]
    assert "unknown label 'bird'" in problems[0].reason
    assert problems[1].reason == "missing label"
    assert "valid.csv, row 2, column 'y'" in str(problems[0])


def test_multilabel_joined_and_columns():
    joined = LabelSpace.fit(pd.DataFrame({"y": ["a|b", "b", None]}), ["y"], "multilabel")
    assert joined.names == ["a", "b"]
    assert joined.encode(["b|a", "", "a"]).tolist() == [[1, 1], [0, 0], [1, 0]]
    assert joined.decode(torch.tensor([[0.9, 0.1]])) == [["a"]]
    assert "unknown label" in joined.validate(pd.DataFrame({"y": ["a|zz"]}), "f")[0].reason
    assert joined.class_weights().tolist() == pytest.approx([2.0, 0.5])

    frame = pd.DataFrame({"x": [1, 0, "true"], "z": [0, 0, "no"]})
    cols = _round_trip(LabelSpace.fit(frame, ["x", "z"], "multilabel"))
    assert cols.encode(frame).tolist() == [[1, 0], [0, 0], [1, 0]]
    bad = cols.validate(pd.DataFrame({"x": [np.nan, "maybe"], "z": [0, 1]}), "f")
    assert [p.reason.split(" ")[0] for p in bad] == ["missing", "expected"]


def test_regression_standardisation_and_problems():
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [10, 10, 10]})
    space = _round_trip(LabelSpace.fit(train, ["a", "b"], "regression"))
    encoded = space.encode(train)
    assert encoded.shape == (3, 2)
    assert encoded[:, 0].mean().abs() < 1e-6 and encoded[:, 1].abs().max() < 1e-6  # std 0 -> 1
    assert torch.allclose(
        space.destandardize(encoded), torch.tensor(train.values, dtype=torch.float32)
    )
    assert space.decode(encoded)[2] == pytest.approx([3.0, 10.0])
    assert space.denormalize(encoded.numpy())[2] == pytest.approx([3.0, 10.0])  # numpy too
    problems = space.validate(pd.DataFrame({"a": ["abc", None, "inf"], "b": [1, 2, "x"]}), "f")
    reasons = {(p.row, p.column): p.reason for p in problems}
    assert "wrong label type" in reasons[(1, "a")] and "not a number" in reasons[(3, "b")]
    assert "missing label" in reasons[(2, "a")] and "finite" in reasons[(3, "a")]
    assert space.class_weights() is None


def _config(method: str, **split) -> DataConfig:
    return DataConfig(
        train="x.csv", label="y", group="g", split={"method": method, "seed": 0, **split}
    )


def test_grouped_split_keeps_groups_apart():
    df = pd.DataFrame({"g": [f"spk{i // 4}" for i in range(80)], "y": [0, 1] * 40})
    train, valid, test = split_table(df, _config("group", valid=0.2, test=0.2))
    assert len(train) + len(valid) + len(test) == 80
    groups = [set(df.g.iloc[idx]) for idx in (train, valid, test)]
    assert (
        not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    )
    assert len(valid) > 0 and len(test) > 0


def test_stratified_split_keeps_proportions_and_is_deterministic():
    labels = ["a"] * 80 + ["b"] * 20
    df = pd.DataFrame({"y": labels, "g": 0})
    config = _config("stratified", valid=0.2, test=0.1)
    train, valid, test = split_table(df, config, labels)
    assert (len(train), len(valid), len(test)) == (70, 20, 10)
    assert (df.y.iloc[valid] == "b").sum() == 4 and (df.y.iloc[test] == "b").sum() == 2
    again = split_table(df, config, labels)
    assert all(np.array_equal(x, y) for x, y in zip((train, valid, test), again, strict=True))
    other = split_table(df, _config("stratified", valid=0.2, test=0.1, seed=1), labels)
    assert not np.array_equal(other[1], valid)
    assert np.array_equal(np.sort(np.concatenate([train, valid, test])), np.arange(100))


def test_singleton_class_stays_in_train_and_the_rest_is_stratified(caplog):
    labels = ["a"] * 19 + ["b"] * 10 + ["typo"]
    df = pd.DataFrame({"y": labels})
    for seed in range(5):  # a random split would miss these proportions for some seed
        config = _config("stratified", valid=0.2, test=0.1, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a Plait log line, not a raw Python warning
            train, valid, test = split_table(df, config, labels)
        assert 29 in train  # the singleton row
        assert (len(train), len(valid), len(test)) == (21, 6, 3)
        assert sorted(df.y.iloc[valid]) == ["a"] * 4 + ["b"] * 2
        assert sorted(df.y.iloc[test]) == ["a"] * 2 + ["b"]


def test_stratified_falls_back_to_random_with_a_log_line_when_it_cannot_hold(caplog):
    labels = ["a", "b", "c"] * 2
    df = pd.DataFrame({"y": labels})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.INFO, logger="plait"):
            train, valid, test = split_table(df, _config("stratified", valid=0.2), labels)
    assert len(valid) == 2 and len(train) + len(valid) + len(test) == 6
    assert "random split" in caplog.text


def test_text_cells_compare_as_before():
    assert label_key("3") == label_key("3.0") == label_key(3.0) == label_key(3) == "3"
    assert label_key(" 2.50 ") == label_key(2.5) == "2.5"
    assert label_key("0001") == "1"  # numbers compare by value, as when CSVs were parsed
    for text in ("None", "NA", "N/A", "null", "nan", "NaN", "inf"):
        assert label_key(text) == text  # NA-looking words are class names
    assert label_key("true") == label_key(True) == "True"  # pandas read these as booleans
    assert label_key("   ") is None and label_key(float("nan")) is None and label_key(None) is None
    space = LabelSpace.fit(pd.DataFrame({"y": ["1.0", "0", "1", "0.0"]}), ["y"], "classification")
    assert space.names == ["0", "1"] and space.counts == [2, 2]
    flags = pd.DataFrame({"x": ["1.0", "0.0", "1"], "z": ["0", "1.0", "2"]})
    space = LabelSpace.fit(flags, ["x", "z"], "multilabel")
    assert space.counts == [2, 1]
    [problem] = space.validate(flags, "f")
    assert (problem.row, problem.column) == (3, "z")


def test_random_split_and_zero_fractions():
    df = pd.DataFrame({"y": range(10)})
    train, valid, test = split_table(df, _config("random", valid=0.0, test=0.0))
    assert len(train) == 10 and len(valid) == len(test) == 0
    train, valid, test = split_table(df, _config("random", valid=0.3, test=0.0))
    assert len(valid) == 3
