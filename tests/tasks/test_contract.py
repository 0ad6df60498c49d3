"""Every row of `plait.tasks.TASKS` keeps the task contract: built from a tiny config,
one training step on tiny data moves its weights, and a saved model loads through
`plait.load` as the task's own predictor with the same outputs as before saving.

A new task gets these tests by adding its row and one entry to `CONFIGS` and `OUTPUTS`
(the test below fails until it has both).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import plait
from plait.config import CONFIG_VERSION, PlaitConfig
from plait.data import prepare_data
from plait.data.demo import CLASS_NAMES, label_factors
from plait.tasks import TASKS, task_of, task_of_folder


def _relabelled(demo_data: Path, out: Path) -> Path:
    """Copies of the demo tables with absolute media paths, a numeric `score` and a
    multilabel `tags` column beside the class label."""
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        frame = pd.read_csv(demo_data / f"{split}.csv")
        for column in ("image", "audio"):
            frame[column] = [
                str(demo_data / v) if isinstance(v, str) and v else v for v in frame[column]
            ]
        frame["score"] = [float(CLASS_NAMES.index(v)) for v in frame["label"]]
        frame["tags"] = ["|".join(label_factors(v)[:2]) for v in frame["label"]]
        frame.to_csv(out / f"{split}.csv", index=False)
    return out


def _supervised(task: str, label: str) -> Callable[[dict], dict]:
    def configure(raw: dict) -> dict:
        raw["head"] = {"task": task, "hidden": 8}
        raw["data"]["label"] = label
        raw["data"]["split"] = {"method": "random", "valid": 0.25, "test": 0.0}
        return raw

    return configure


def _aligned(raw: dict) -> dict:
    del raw["modalities"]["audio"]
    del raw["head"]
    raw["alignment"] = {"dim": 8, "objectives": [{"name": "clip"}, {"name": "siglip"}]}
    return raw


def _captioning(raw: dict) -> dict:
    del raw["modalities"]["audio"]
    del raw["head"]
    raw["data"]["label"] = None
    raw["data"]["split"] = {"method": "random", "valid": 0.25, "test": 0.0}
    raw["captioning"] = {"dim": 8, "heads": 2, "layers": 1, "max_length": 6}
    return raw


def _vqa(raw: dict) -> dict:
    """The demo caption as the question, its label as the answer, the picture as context."""
    del raw["modalities"]["audio"]
    del raw["head"]
    raw["data"]["split"] = {"method": "random", "valid": 0.25, "test": 0.0}
    raw["vqa"] = {"head": "fusion", "head_options": {"dim": 8, "hidden": 8, "pool_side": 2}}
    return raw


CONFIGS: dict[str, Callable[[dict], dict]] = {
    "classification": _supervised("classification", "label"),
    "multilabel": _supervised("multilabel", "tags"),
    "regression": _supervised("regression", "score"),
    "alignment": _aligned,
    "captioning": _captioning,
    "vqa": _vqa,
}


def _embeddings(predictor: Any, table: Path) -> pd.DataFrame:
    frames = []
    for name in predictor.pair:
        ids, vectors = predictor.embed(table, name)
        frames.append(pd.DataFrame(vectors, index=[f"{name}:{i}" for i in ids]))
    return pd.concat(frames)


OUTPUTS: dict[str, Callable[[Any, Path], pd.DataFrame]] = {
    "classification": lambda predictor, table: predictor.predict(table),
    "multilabel": lambda predictor, table: predictor.predict(table),
    "regression": lambda predictor, table: predictor.predict(table),
    "alignment": _embeddings,
    "captioning": lambda predictor, table: predictor.caption(table, progress=False),
    "vqa": lambda predictor, table: predictor.ask(table, top_k=2),
}


def test_every_task_has_a_contract_config_and_outputs():
    assert set(CONFIGS) == set(TASKS) == set(OUTPUTS)


@pytest.fixture(scope="module")
def contract_data(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _relabelled(demo_data, tmp_path_factory.mktemp("contract-data"))


def _config(name: str, tiny_config, data: Path, out: Path) -> PlaitConfig:
    raw = tiny_config(out, f"contract-{name}")
    raw["data"]["train"] = str(data / "train.csv")
    raw["data"]["test"] = str(data / "test.csv")
    for modality in raw["modalities"].values():
        modality["encoder"]["dim"] = 8
    raw["fusion"] = {"method": "concat", "dim": 8}
    return PlaitConfig.from_dict(CONFIGS[name](raw))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_builds_trains_one_step_saves_and_reloads(
    name: str, tiny_config, contract_data: Path, tmp_path: Path
):
    torch.manual_seed(0)
    config = _config(name, tiny_config, contract_data, tmp_path)
    task = TASKS[name]
    assert task_of(config) is task and task.name == name

    data = prepare_data(config, progress=False)
    model = task.build(config, data.processors, data.labels)
    step = task.step(config, data)
    batch = next(iter(DataLoader(data.train, batch_size=16, collate_fn=data.train.collate)))

    # one training step: a finite loss whose gradient changes the weights
    model.train()
    outputs = step.outputs(model, batch)
    terms = step.terms(model, batch, outputs)
    assert torch.isfinite(terms["loss"])
    groups = step.parameter_groups(model)
    optimizer = torch.optim.SGD(groups, lr=0.1)
    before = [p.detach().clone() for group in groups for p in group["params"]]
    terms["loss"].backward()
    optimizer.step()
    after = [p.detach() for group in groups for p in group["params"]]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    with torch.no_grad():
        model.eval()
        values = step.validate(model, batch, step.outputs(model, batch))
    assert torch.isfinite(values["loss"])
    step.epoch_metrics()  # whatever the task logs per epoch, it computes without error

    # save, load through plait.load, same outputs
    predictor = task.predictor_of(model, config, data.processors, data.labels)
    assert predictor.task == name
    folder = predictor.save(tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["task"] == name
    assert f"config_version: {CONFIG_VERSION}" in (folder / "config.yaml").read_text()
    assert task_of_folder(folder) is task
    loaded = plait.load(folder)
    assert type(loaded) is task.predictor
    table = contract_data / "test.csv"
    expected = OUTPUTS[name](predictor, table)
    got = OUTPUTS[name](loaded, table)
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, expected, atol=1e-6)


def test_metrics_and_report_section_of_every_task():
    """A row's report section is one `write_report` renders."""
    for name, task in TASKS.items():
        assert task.report in {
            "classification",
            "multilabel",
            "regression",
            "alignment",
            "captioning",
            "vqa",
        }
        assert task.report == name
