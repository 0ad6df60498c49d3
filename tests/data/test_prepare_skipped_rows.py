"""prepare_data with rare classes and skipped rows: singletons are named, stratification
survives them, label counts and the bad-row list describe the rows actually used."""

from __future__ import annotations

import logging
import warnings

import pandas as pd
import pytest

from plait.data import prepare_data, read_table
from plait.data.splits import split_table


def _text_config(make_config, path, **data):
    return make_config(path, modalities={"t": {"kind": "text", "column": "text"}}, data=data)


def test_singleton_class_is_named_and_the_rest_stays_stratified(tmp_path, make_config, caplog):
    labels = ["cat"] * 20 + ["dog"] * 20
    labels.insert(17, "dgo")  # a typo: one row, data row 18
    path = tmp_path / "train.csv"
    pd.DataFrame({"text": [f"text {i}" for i in range(len(labels))], "label": labels}).to_csv(
        path, index=False
    )
    config = _text_config(
        make_config, path, split={"method": "stratified", "valid": 0.2, "test": 0.0}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw Python warning reaches the user
        with caplog.at_level(logging.INFO, logger="plait"):
            prepared = prepare_data(config)
    message = caplog.text
    assert "'dgo'" in message and "row 18" in message and "1 training row" in message
    assert str(path) in message
    valid_labels = [labels[r] for r in prepared.valid.rows]
    assert len(valid_labels) == 9 and "dgo" not in valid_labels  # ceil(0.2 * 41) rows
    assert abs(valid_labels.count("cat") - valid_labels.count("dog")) <= 1  # stratified
    assert 17 in prepared.train.rows  # the singleton stays where it can be learnt


def test_label_counts_exclude_skipped_rows(tmp_path, good_rows, make_config, media):
    rows = [dict(r) for r in good_rows]  # 6 cat, 6 dog
    rows[0]["image"] = str(media / "missing.png")  # a cat
    rows[2]["audio"] = str(media / "bad.wav")  # a cat
    path = tmp_path / "train.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    config = make_config(
        path, data={"on_error": "skip", "split": {"method": "random", "valid": 0.0, "test": 0.0}}
    )
    prepared = prepare_data(config)
    assert prepared.labels.names == ["cat", "dog"]
    assert prepared.labels.counts == [4, 6]
    assert prepared.labels.num_rows == 10


def test_class_left_without_rows_is_named(tmp_path, good_rows, make_config, media, caplog):
    rows = [dict(r) for r in good_rows]
    rows.append({**rows[0], "label": "bird", "image": str(media / "corrupt.png")})
    path = tmp_path / "train.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    config = make_config(
        path, data={"on_error": "skip", "split": {"method": "random", "valid": 0.0, "test": 0.0}}
    )
    with caplog.at_level(logging.WARNING, logger="plait"):
        prepared = prepare_data(config)
    assert prepared.labels.counts == [0, 6, 6]  # bird, cat, dog
    assert "'bird'" in caplog.text and "no usable training row" in caplog.text


def test_bad_rows_are_ordered_by_row_and_counted_per_split(tmp_path, good_rows, make_config, media):
    rows = [dict(r) for r in good_rows * 2]  # 24 rows
    for position in range(0, 24, 3):  # rows 1, 4, 7, ... 22 are bad
        rows[position]["image"] = str(media / f"missing-{position}.png")
    path = tmp_path / "train.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    config = make_config(
        path,
        data={"on_error": "skip", "split": {"method": "random", "valid": 0.5, "test": 0.0}},
    )
    prepared = prepare_data(config)
    found = [p.row for p in prepared.problems]
    assert found == list(range(1, 25, 3))
    train_split, valid_split, _ = split_table(read_table(path).frame, config.data)
    train_bad = [r for r in found if r - 1 in set(train_split)]
    valid_bad = [r for r in found if r - 1 in set(valid_split)]
    assert train_bad and valid_bad and min(valid_bad) < max(train_bad)  # really interleaved
    assert prepared.skipped_rows == {"train": len(train_bad), "valid": len(valid_bad)}


@pytest.mark.parametrize("method", ["stratified", "random"])
def test_no_raw_warning_when_stratification_cannot_hold(tmp_path, make_config, method, caplog):
    path = tmp_path / "train.csv"
    pd.DataFrame({"text": list("abcdef"), "label": ["x", "y", "z", "x", "y", "z"]}).to_csv(
        path, index=False
    )
    config = _text_config(make_config, path, split={"method": method, "valid": 0.2, "test": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.INFO, logger="plait"):
            prepared = prepare_data(config)
    assert len(prepared.train) + len(prepared.valid) == 6
