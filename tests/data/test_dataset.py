from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from plait.data import (
    Batch,
    EpochSampler,
    MultimodalDataset,
    prepare_data,
    prepare_inference,
    read_table,
)
from plait.data.manifest import check_columns
from plait.errors import DataError


def _write(tmp_path, rows, name="train.csv"):
    frame = pd.DataFrame(rows)
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


# ------------------------------------------------------------------------ manifests


@pytest.mark.parametrize("name", ["m.csv", "m.parquet", "m.jsonl"])
def test_read_formats(tmp_path, good_rows, name):
    table = read_table(_write(tmp_path, good_rows, name))
    assert len(table) == 12 and table.base_dir == tmp_path
    assert table.frame.label.tolist()[:2] == ["cat", "dog"]


def test_read_errors(tmp_path):
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(DataError, match="unknown manifest format '.xlsx'"):
        read_table(tmp_path / "x.xlsx")
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read as PARQUET"):
        read_table(tmp_path / "bad.parquet")


def test_missing_column_suggests_closest(tmp_path, good_rows, make_config):
    path = _write(tmp_path, [{**r, "imagee": r["image"]} for r in good_rows])
    frame = pd.read_csv(path).drop(columns=["image"])
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        check_columns(read_table(path), make_config(path))
    message = str(info.value)
    assert str(path) in message and "column 'image'" in message
    assert "did you mean 'imagee'?" in message


# -------------------------------------------------------------------- prepare_data


def test_prepare_data_end_to_end(tmp_path, good_rows, make_config):
    rows = [dict(r) for r in good_rows]
    rows[0]["text"] = None  # NaN text: presence False, not an error
    rows[1]["image"] = None
    path = _write(tmp_path, rows)
    config = make_config(
        path, data={"id": "id", "split": {"method": "random", "valid": 0.25, "test": 0.0}}
    )
    prepared = prepare_data(config)
    assert prepared.problems == [] and prepared.test is None
    assert len(prepared.train) == 9 and len(prepared.valid) == 3
    assert prepared.labels.names == ["cat", "dog"]
    assert prepared.processors["review"].vocab_size > 2

    loader = DataLoader(prepared.train, batch_size=4, collate_fn=prepared.train.collate)
    batches = list(loader)
    batch = batches[0]
    assert isinstance(batch, Batch) and len(batch) == 4
    assert batch.inputs["poster"]["pixel_values"].shape == (4, 3, 16, 16)
    assert batch.inputs["clip"]["features"].shape == (4, 1, 16, 26)
    assert batch.labels.dtype == torch.long and batch.labels.shape == (4,)
    assert batch.presence["clip"].all()
    samples = {
        sid: ds[i] for ds in (prepared.train, prepared.valid) for i, sid in enumerate(ds.ids)
    }
    assert samples["s0"]["presence"] == {"review": False, "poster": True, "clip": True}
    assert samples["s1"]["presence"] == {"review": True, "poster": False, "clip": True}
    assert samples["s0"]["inputs"]["review"]["input_ids"].tolist() == [0]  # placeholder


def test_bad_rows_raise_with_file_row_column(tmp_path, good_rows, make_config, media):
    rows = [dict(r) for r in good_rows]
    rows[2]["image"] = str(media / "does_not_exist.png")
    rows[3]["image"] = str(media / "corrupt.png")
    rows[4]["image"] = str(media / "truncated.jpg")
    rows[5]["audio"] = str(media / "empty.wav")
    rows[6]["audio"] = str(media / "bad.wav")
    rows[7].update(text=None, image=None, audio=None)
    path = _write(tmp_path, rows)
    config = make_config(path, data={"split": {"valid": 0.0, "test": 0.0}})
    with pytest.raises(DataError) as info:
        prepare_data(config)
    problems = info.value.problems
    found = {(p.row, p.column): p.reason for p in problems}
    assert all(p.file == str(path) for p in problems)
    assert "not found" in found[(3, "image")]
    assert "not a readable image" in found[(4, "image")]
    assert "truncated" in found[(5, "image")]
    assert "0 frames" in found[(6, "audio")]
    assert "cannot decode" in found[(7, "audio")]
    assert not any(p.row == 8 for p in problems)  # all modalities empty: kept, not bad
    assert len(problems) == 5
    message = str(info.value)
    assert f"{path}, row 3, column 'image'" in message and "row numbers count data rows" in message

    skipping = config.model_copy(
        update={"data": config.data.model_copy(update={"on_error": "skip"})}
    )
    prepared = prepare_data(skipping)
    assert len(prepared.train) == 7 and len(prepared.problems) == 5
    assert sorted(prepared.train.row_numbers) == [1, 2, 8, 9, 10, 11, 12]


def test_unknown_label_and_wrong_regression_type(tmp_path, good_rows, make_config):
    train = _write(tmp_path, good_rows)
    valid_rows = [dict(r) for r in good_rows[:3]]
    valid_rows[1]["label"] = "bird"
    valid = _write(tmp_path, valid_rows, "valid.csv")
    config = make_config(train, data={"valid": str(valid), "split": {"test": 0.0}})
    with pytest.raises(DataError) as info:
        prepare_data(config)
    [problem] = info.value.problems
    assert (problem.file, problem.row, problem.column) == (str(valid), 2, "label")
    assert "unknown label 'bird'" in problem.reason

    rows = [dict(r, label=float(i)) for i, r in enumerate(good_rows)]
    rows[4]["label"] = "high"
    path = _write(tmp_path, rows, "reg.csv")
    config = make_config(path, head={"task": "regression"}, data={"split": {"valid": 0, "test": 0}})
    with pytest.raises(DataError) as info:
        prepare_data(config)
    [problem] = info.value.problems
    assert (problem.row, problem.column) == (5, "label")
    assert "wrong label type: 'high' is not a number" in problem.reason


def test_grouped_split_in_prepare(tmp_path, good_rows, make_config):
    path = _write(tmp_path, good_rows)
    config = make_config(
        path, data={"group": "speaker", "split": {"method": "group", "valid": 0.25, "test": 0.25}}
    )
    prepared = prepare_data(config)
    speakers = [
        set(ds.table.frame.speaker.iloc[ds.rows])
        for ds in (prepared.train, prepared.valid, prepared.test)
    ]
    assert not (speakers[0] & speakers[1]) and not (speakers[0] & speakers[2])
    assert not (speakers[1] & speakers[2])


def test_relative_paths_and_inference(tmp_path, media, make_config):
    for name in ("rgb.png", "tone16k.flac"):
        shutil.copy(media / name, tmp_path / name)
    rows = [
        {"text": "hi there", "image": "rgb.png", "audio": "tone16k.flac", "label": y}
        for y in "abab"
    ]
    path = _write(tmp_path, rows)
    config = make_config(path, data={"split": {"valid": 0.0, "test": 0.0}})
    prepared = prepare_data(config)
    assert len(prepared.train) == 4

    frame = pd.DataFrame(
        {
            "text": ["hello", np.nan],
            "image": [np.zeros((5, 5, 3), dtype=np.uint8), None],
            "audio": [np.zeros(800, dtype=np.float32), np.ones(1600, dtype=np.float32) * 0.1],
        }
    )
    dataset, problems = prepare_inference(frame, config, prepared.processors, prepared.labels)
    assert problems == [] and dataset.labels is None
    batch = dataset.collate([dataset[0], dataset[1]])
    assert batch.presence["review"].tolist() == [True, False]
    assert batch.presence["poster"].tolist() == [True, False]
    assert batch.labels is None and batch.ids == ["1", "2"]
    with pytest.raises(DataError, match="column 'label'"):
        prepare_inference(frame, config, prepared.processors, prepared.labels, require_labels=True)


# ------------------------------------------------------------- reproducibility


def test_samples_depend_only_on_seed_epoch_row(tmp_path, good_rows, make_config):
    path = _write(tmp_path, good_rows)
    config = make_config(path, data={"split": {"valid": 0.0, "test": 0.0}})
    prepared = prepare_data(config)
    train = prepared.train
    first = train[5]["inputs"]["poster"]["pixel_values"]
    assert torch.equal(first, train[5]["inputs"]["poster"]["pixel_values"])
    train.set_epoch(1)
    assert not torch.equal(first, train[5]["inputs"]["poster"]["pixel_values"])
    train.set_epoch(0)
    loader = DataLoader(train, batch_size=3, num_workers=2, collate_fn=train.collate)
    from_workers = torch.cat([b.inputs["poster"]["pixel_values"] for b in loader])
    assert torch.equal(from_workers[5], first)

    view = MultimodalDataset(train.table, train.processors, rows=train.rows[3:], train=True)
    assert torch.equal(view[2]["inputs"]["poster"]["pixel_values"], first)


def test_rows_of_one_file_in_a_row_decode_it_once(tmp_path, good_rows, make_config):
    rows = [dict(row, image=good_rows[0]["image"]) for row in good_rows[:4]]
    config = make_config(_write(tmp_path, rows), data={"split": {"valid": 0.0, "test": 0.0}})
    train = prepare_data(config).train  # augments: every row its own crop
    processor = train.processors["poster"]
    loads = []
    plain = processor.load
    processor.load = lambda value, base: loads.append(value) or plain(value, base)
    samples = [train[i]["inputs"]["poster"]["pixel_values"] for i in range(len(train))]
    assert len(loads) == 1  # one decode for four rows of the same picture
    assert not torch.equal(samples[0], samples[1])  # each row still augmented on its own
    fresh = MultimodalDataset(train.table, train.processors, rows=train.rows[1:2], train=True)
    assert torch.equal(fresh[0]["inputs"]["poster"]["pixel_values"], samples[1])


def test_epoch_sampler_order_and_ddp():
    sampler = EpochSampler(10, seed=3)
    sampler.set_epoch(2)
    order = list(sampler)
    again = EpochSampler(10, seed=3)
    again.set_epoch(2)  # e.g. a run resumed at epoch 2
    assert list(again) == order and sorted(order) == list(range(10))
    sampler.set_epoch(3)
    assert list(sampler) != order

    shards = [EpochSampler(10, seed=3, num_replicas=3, rank=r) for r in range(3)]
    for shard in shards:
        shard.set_epoch(2)
    parts = [list(s) for s in shards]
    assert [len(p) for p in parts] == [4, 4, 4] == [len(s) for s in shards]
    assert set(sum(parts, [])) == set(range(10))
    dropped = EpochSampler(10, num_replicas=3, rank=0, drop_last=True)
    assert len(list(dropped)) == len(dropped) == 3
    assert list(EpochSampler(4, shuffle=False)) == [0, 1, 2, 3]


def test_single_class_training_split_is_an_error(tmp_path, good_rows, make_config):
    path = _write(tmp_path, [dict(r, label="cat") for r in good_rows])
    with pytest.raises(DataError, match="at least 2 classes"):
        prepare_data(make_config(path, data={"split": {"valid": 0.0, "test": 0.0}}))
