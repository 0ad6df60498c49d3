"""Reports are self-contained, escaped, and their JSON twins are strict JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from plait.evaluation import (
    classification_metrics,
    comparison_table,
    load_history,
    multilabel_metrics,
    regression_metrics,
    render_rich_table,
    write_comparison_report,
    write_report,
)

PNG = '<img src="data:image/png;base64,'
NASTY = "<b>&x"


def _history() -> pd.DataFrame:
    """Shaped like Lightning's CSVLogger output: sparse rows, NaN where not logged."""
    nan = float("nan")
    return pd.DataFrame(
        {
            "epoch": [0, 0, 0, 1, 1, 1],
            "step": [5, 9, 9, 14, 19, 19],
            "train/loss": [1.2, 1.0, nan, 0.8, 0.7, nan],
            "valid/loss": [nan, nan, 0.9, nan, nan, 0.75],
            "valid/accuracy": [nan, nan, 0.5, nan, nan, 0.6],
            "never/logged": [nan] * 6,
        }
    )


def _classification() -> dict:
    y_true = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.7 + 0.1
    return classification_metrics(y_true, proba, ["cat", NASTY, "dog"])


def test_classification_report(tmp_path: Path) -> None:
    path = write_report(
        tmp_path / "run",
        _classification(),
        task="classification",
        history=_history(),
        title="My <run>",
        extra_sections=[("Data", "<table><tr><td>rows</td><td>6</td></tr></table>")],
        config_yaml="model:\n  name: <fusion>\n",
    )
    assert path == tmp_path / "run" / "report.html"
    text = path.read_text()
    # Learning curves (loss + metric), confusion matrix, per-class F1.
    assert text.count(PNG) == 4
    assert "&lt;b&gt;&amp;x" in text and NASTY not in text
    assert "My &lt;run&gt;" in text
    assert "<details>" in text and "name: &lt;fusion&gt;" in text
    assert "<td>rows</td>" in text  # extra sections go in verbatim
    assert "<link" not in text and "<script" not in text  # self-contained
    loaded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert loaded["confusion_matrix"] == _classification()["confusion_matrix"]
    assert loaded["per_class"][NASTY]["support"] == 2
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.json", "report.html"]


def test_nan_becomes_null(tmp_path: Path) -> None:
    write_report(tmp_path, {"accuracy": float("nan"), "n": 3}, task="classification")
    raw = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in raw
    assert json.loads(raw) == {"accuracy": None, "n": 3}


def test_skipped_rows_are_stated_in_the_report(tmp_path: Path) -> None:
    skipped = {"total": 3, "per_split": {"train": 2, "test": 1}, "list": "/runs/x/bad_rows.csv"}
    text = write_report(
        tmp_path, {"accuracy": 0.5, "skipped_rows": skipped}, task="classification"
    ).read_text()
    assert "3 rows were skipped as bad (train 2, test 1)" in text
    assert "/runs/x/bad_rows.csv" in text
    assert json.loads((tmp_path / "metrics.json").read_text())["skipped_rows"] == skipped
    clean = write_report(tmp_path / "clean", {"accuracy": 0.5}, task="classification")
    assert "skipped" not in clean.read_text()


def test_empty_history_columns_are_skipped(tmp_path: Path) -> None:
    history = _history()[["epoch", "step", "train/loss", "never/logged"]]
    text = write_report(tmp_path, {"n": 1}, task="regression", history=history).read_text()
    assert text.count(PNG) == 1  # only the loss chart: the metric columns are all empty


def test_regression_and_multilabel_reports(tmp_path: Path) -> None:
    y = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 8.0]])
    reg = regression_metrics(y, y * 1.1, ["price", "size"])
    text = write_report(tmp_path / "reg", reg, task="regression").read_text()
    assert text.count(PNG) == 1 and "Predicted vs true" in text and "Per target" in text

    ml = multilabel_metrics(
        np.array([[1, 0], [0, 1]]), np.array([[0.8, 0.3], [0.2, 0.6]]), [NASTY, "b"]
    )
    text = write_report(tmp_path / "ml", ml, task="multilabel").read_text()
    assert text.count(PNG) == 1 and "&lt;b&gt;&amp;x" in text and NASTY not in text


def _runs() -> dict:
    return {
        "text only": {"task": "classification", "accuracy": 0.7, "log_loss": 0.6, "params": 1000},
        "<fusion>": {"accuracy": 0.8, "log_loss": 0.7, "train_seconds": 3.0, "n": 10},
        "image only": {"accuracy": float("nan"), "f1_macro": 0.5, "precision_macro": 0.4},
    }


def test_comparison_table_columns() -> None:
    table = comparison_table(_runs())
    assert list(table.index) == ["text only", "<fusion>", "image only"]
    assert list(table.columns) == ["accuracy", "f1_macro", "log_loss", "params", "train_seconds"]
    assert table.loc["<fusion>", "accuracy"] == 0.8
    assert np.isnan(table.loc["image only", "accuracy"])


def test_comparison_report_marks_best(tmp_path: Path) -> None:
    path = write_comparison_report(tmp_path, _runs(), "Baselines vs fusion", notes="seed 0 & 1")
    text = path.read_text()
    assert "<b>0.8000</b>" in text  # highest accuracy
    assert "<b>0.6000</b>" in text  # lowest log loss
    assert "<b>0.7000</b>" not in text
    assert "&lt;fusion&gt;" in text and "seed 0 &amp; 1" in text
    assert text.count(PNG) == 1
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["best"]["accuracy"] == ["<fusion>"]
    assert data["best"]["log_loss"] == ["text only"]
    assert data["rows"]["image only"]["accuracy"] is None


def test_render_rich_table() -> None:
    table = render_rich_table(comparison_table(_runs()), "Runs")
    assert table.row_count == 3
    console = Console(width=160, record=True)
    console.print(table)
    out = console.export_text()
    assert "<fusion>" in out and "0.8000" in out


def test_load_history_picks_newest_version(tmp_path: Path) -> None:
    old = tmp_path / "lightning_logs" / "version_0" / "metrics.csv"
    new = tmp_path / "lightning_logs" / "version_1" / "metrics.csv"
    for path, loss in ((old, 9.0), (new, 1.0)):
        path.parent.mkdir(parents=True)
        path.write_text(f"epoch,step,train/loss,valid/loss\n0,4,{loss},\n0,4,,{loss}\n")
    os.utime(old, (1_000_000, 1_000_000))
    history = load_history(tmp_path)
    assert history is not None
    assert history["train/loss"].dropna().tolist() == [1.0]
    assert history["valid/loss"].isna().sum() == 1
    assert load_history(tmp_path / "nothing here") is None
    assert load_history(new).equals(history)


# ----------------------------------------------------------------------------- alignment


def _alignment() -> dict:
    from plait.evaluation import zeroshot_metrics

    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.8]])
    zeroshot = zeroshot_metrics(scores, [0, 1, 1, 2], ["cat", NASTY, "dog"])
    before = zeroshot_metrics(scores[:, ::-1], [0, 1, 1, 2], ["cat", NASTY, "dog"])
    return {
        "split": "test",
        "relevance": "pair",
        "retrieval": {
            "image->text": {
                "R@1": 0.4321,
                "R@5": 0.75,
                "R@10": 0.9,
                "median_rank": 3.0,
                "mean_rank": 7.25,
                "mrr": 0.5678,
                "queries": 200,
            },
            "text->image": {
                "R@1": 0.3125,
                "R@5": 0.7,
                "R@10": 0.85,
                "median_rank": 4.5,
                "mean_rank": 9.0,
                "mrr": 0.4444,
                "queries": 198,
                "skipped": 2,
            },
        },
        "zeroshot": {"image": zeroshot},
        "zeroshot_before": {"image": before},
        "warnings": ["valid split has only 12 rows <rows>"],
        "train_seconds": 12.5,
        "params": 5000,
    }


def _alignment_history() -> pd.DataFrame:
    nan = float("nan")
    return pd.DataFrame(
        {
            "epoch": [0, 0, 1, 1],
            "step": [9, 9, 19, 19],
            "train/loss": [2.0, nan, 1.5, nan],
            "train/clip": [1.8, nan, 1.3, nan],
            "train/itm": [0.2, nan, 0.2, nan],
            "valid/loss": [nan, 1.9, nan, 1.6],
            "valid/R@1": [nan, 0.1, nan, 0.3],
            "valid/median_rank": [nan, 40.0, nan, 12.0],
        }
    )


def test_alignment_report(tmp_path: Path) -> None:
    path = write_report(
        tmp_path,
        _alignment(),
        task="alignment",
        history=_alignment_history(),
        title="CLIP run",
        config_yaml="objective: clip\n",
    )
    text = path.read_text()
    # Loss, metric and rank curves; R@k bars; zero-shot confusion matrix.
    assert text.count(PNG) == 5
    assert 'alt="learning curves (loss)"' in text and 'alt="learning curves (rank)"' in text
    # Retrieval table: one row per direction with its numbers; skipped column shown.
    assert "<td>image-&gt;text</td><td>0.4321</td><td>0.7500</td><td>0.9000</td>" in text
    assert "<td>3</td><td>7.2500</td><td>0.5678</td><td>200</td>" in text
    assert "<td>text-&gt;image</td><td>0.3125</td>" in text and "<td>4.5000</td>" in text
    assert "<th>skipped</th>" in text and "<th>MRR</th>" in text
    assert "pair-level" in text
    # Zero-shot: accuracy after and before training, escaped class names, chance.
    assert "Zero-shot classification" in text and "<td>0.7500</td>" in text
    assert "image (before training)" in text and "<td>0.3333</td>" in text  # chance 1/3
    assert "&lt;b&gt;&amp;x" in text and NASTY not in text
    # Warnings first, escaped.
    assert text.index('class="warn"') < text.index("<h2>Summary</h2>")
    assert "valid split has only 12 rows &lt;rows&gt;" in text
    assert "<script" not in text and "<link" not in text
    loaded = json.loads((tmp_path / "metrics.json").read_text())
    assert loaded["retrieval"]["text->image"]["skipped"] == 2
    assert loaded["zeroshot"]["image"]["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_alignment_report_without_zeroshot_or_history(tmp_path: Path) -> None:
    metrics = _alignment()
    for key in ("zeroshot", "zeroshot_before", "warnings"):
        del metrics[key]
    text = write_report(tmp_path, metrics, task="alignment").read_text()
    assert text.count(PNG) == 1  # the R@k chart
    assert "Zero-shot" not in text and 'class="warn"' not in text


def test_comparison_of_classification_and_alignment_runs(tmp_path: Path) -> None:
    runs = {
        "classifier": {"task": "classification", "accuracy": 0.8, "log_loss": 0.5, "params": 10},
        "clip": _alignment(),
        "clip2": {**_alignment(), "zeroshot": {}},
    }
    table = comparison_table(runs)
    assert list(table.columns) == [
        "accuracy",
        "log_loss",
        "image->text R@1",
        "text->image R@1",
        "mean R@1",
        "mean R@5",
        "mean R@10",
        "zeroshot image accuracy",
        "params",
        "train_seconds",
    ]
    assert table.loc["clip", "mean R@1"] == (0.4321 + 0.3125) / 2
    assert table.loc["clip", "zeroshot image accuracy"] == 0.75
    assert np.isnan(table.loc["classifier", "mean R@1"])
    assert np.isnan(table.loc["clip", "accuracy"])
    assert np.isnan(table.loc["clip2", "zeroshot image accuracy"])

    path = write_comparison_report(tmp_path, runs, "mixed")
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["rows"]["classifier"]["mean R@1"] is None
    assert data["best"]["mean R@1"] == ["clip", "clip2"]  # tied: both win
    assert "accuracy" not in data["best"]  # one run only: nothing to beat
    text = path.read_text()
    assert "image-&gt;text R@1" in text and text.count(PNG) == 1

    console = Console(width=250, record=True)
    console.print(render_rich_table(table, "mixed"))
    out = console.export_text()
    assert "image->text R@1" in out and "0.3723" in out and "classifier" in out


def test_render_retrieval_table() -> None:
    from plait.evaluation import render_retrieval_table

    metrics = _alignment()
    table = render_retrieval_table(metrics)
    assert table.row_count == 2
    console = Console(width=160, record=True)
    console.print(table)
    out = console.export_text()
    assert "test, pair relevance" in out and "image->text" in out and "0.4321" in out
    assert "zero-shot accuracy: image 0.7500" in out
    # The bare retrieval block works too.
    assert render_retrieval_table(metrics["retrieval"]).row_count == 2
