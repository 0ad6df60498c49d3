"""The aligned-model commands of the `plait` CLI (train/evaluate output, embed, index, search,
zeroshot, similarity, data digits), run in-process with Typer's CliRunner."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from plait.cli import app
from plait.retrieval.embed import read_embeddings

COMMANDS = [
    "embed",
    "search",
    "zeroshot",
    "similarity",
    "index build",
    "index add",
    "index search",
    "data digits",
]


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: object):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"}, terminal_width=250)
    result.flat = " ".join(result.output.split())  # every message as one line
    return result


@pytest.fixture(scope="module")
def trained(runner, tiny_config, tmp_path_factory) -> tuple[Path, object]:
    """A caption <-> image model trained once through `plait train` (the result kept)."""
    folder = tmp_path_factory.mktemp("cli-align")
    raw = tiny_config(folder / "runs", "clip", alignment={"dim": 16, "pair": ["caption", "image"]})
    config = folder / "clip.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = invoke(runner, "train", config)
    assert result.exit_code == 0, result.output
    return folder / "runs" / "clip" / "model", result


@pytest.fixture(scope="module")
def model(trained) -> Path:
    return trained[0]


@pytest.fixture(scope="module")
def index(runner, model, demo_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli-index") / "images"
    result = invoke(
        runner, "index", "build", model, demo_data / "test.csv", "--modality", "image", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "(exact, 16 dims)" in result.flat
    return out


def _error(result) -> str:
    """The one-line error of a refused command (exit code 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_help_shows_an_example_for_every_command(runner):
    for command in COMMANDS:
        result = invoke(runner, *command.split(), "--help")
        assert result.exit_code == 0, command
        assert "Example" in result.output and f"plait {command}" in result.flat, command
    top = invoke(runner, "--help").output
    assert all(name in top for name in ("embed", "search", "zeroshot", "similarity", "index"))


def test_train_and_evaluate_print_the_retrieval_table(runner, trained, demo_data, tmp_path):
    model, result = trained
    assert f"model: {model}" in result.flat
    for text in ("Retrieval", "caption->image", "image->caption", "R@1", "MRR"):
        assert text in result.output, text
    evaluated = invoke(runner, "evaluate", model, demo_data / "test.csv", "--out", tmp_path / "ev")
    assert evaluated.exit_code == 0, evaluated.output
    assert "caption->image" in evaluated.output and "R@1" in evaluated.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(metrics["retrieval"]) == {"caption->image", "image->caption"}
    assert "Retrieval" in (tmp_path / "ev" / "report.html").read_text()


def test_predict_refuses_an_aligned_model(runner, model, demo_data, tmp_path):
    line = _error(
        invoke(runner, "predict", model, demo_data / "test.csv", "-o", tmp_path / "p.csv")
    )
    assert "aligned model" in line and "zeroshot" in line


def test_embed_writes_vectors_ids_and_metadata(runner, model, demo_data, tmp_path):
    out = tmp_path / "emb.parquet"
    result = invoke(
        runner, "embed", model, demo_data / "test.csv", "--modality", "image", "--out", out
    )
    assert result.exit_code == 0, result.output
    ids, vectors, metadata = read_embeddings(out)
    assert vectors.shape == (len(ids), 16) and "image" in metadata.columns
    assert f"wrote {len(ids)} embeddings (16 dims) to {out}" in result.flat
    npy = tmp_path / "emb.npy"
    result = invoke(
        runner,
        "embed",
        model,
        demo_data / "test.csv",
        "--modality",
        "text",
        "--out",
        npy,
        "--batch-size",
        "4",
    )
    assert result.exit_code == 0, result.output
    text_ids, text_vectors, text_meta = read_embeddings(npy)
    assert text_vectors.shape == (len(text_ids), 16) and "caption" in text_meta.columns
    line = _error(invoke(runner, "embed", model, demo_data / "test.csv", "--modality", "audio"))
    assert "no `audio` tower" in line
    bad = invoke(
        runner,
        "embed",
        model,
        demo_data / "test.csv",
        "--modality",
        "image",
        "--out",
        tmp_path / "e.csv",
    )
    assert "unknown embeddings format '.csv'" in _error(bad)


def _image_rows(hostile_rows: dict[int, tuple[str, str]]) -> list[int]:
    """The hostile rows a caption <-> image model reads (it never opens the audio)."""
    return sorted(r for r, (column, _) in hostile_rows.items() if column == "image")


def test_embed_skips_unreadable_rows_and_lists_them(
    runner, model, hostile_table, hostile_rows, tmp_path
):
    out = tmp_path / "emb.parquet"
    result = invoke(runner, "embed", model, hostile_table, "--modality", "image", "--out", out)
    assert result.exit_code == 3, result.output
    bad = _image_rows(hostile_rows)
    source = pd.read_csv(hostile_table, dtype={"id": str})
    has_image = source["image"].notna()
    expected = [i for n, i in enumerate(source["id"], 1) if has_image[n - 1] and n not in bad]
    ids, vectors, _ = read_embeddings(out)
    assert ids == expected and vectors.shape == (len(expected), 16)  # no vector, no row
    listed = pd.read_csv(tmp_path / "emb.bad_rows.csv", dtype={"id": str})
    assert list(listed["row"]) == bad
    assert list(listed["id"]) == [source["id"][r - 1] for r in bad]
    assert f"skipped {len(bad)} of 25 row(s)" in result.flat
    assert str(tmp_path / "emb.bad_rows.csv") in result.flat

    refused = invoke(
        runner,
        "embed",
        model,
        hostile_table,
        "--modality",
        "image",
        "--out",
        tmp_path / "r.parquet",
        "--on-error",
        "raise",
    )
    line = _error(refused)
    assert f"{len(bad)} of 25 row(s) cannot be used" in line and "row 2, column 'image'" in line
    assert not (tmp_path / "r.parquet").exists()

    # the captions of the same table are all readable: exit 0, no list written
    text = invoke(runner, "embed", model, hostile_table, "--modality", "text", "--out", out)
    assert text.exit_code == 0, text.output
    assert not (tmp_path / "emb.bad_rows.csv").exists()


def test_zeroshot_keeps_every_row_and_lists_the_unreadable_ones(
    runner, model, hostile_table, hostile_rows, tmp_path
):
    out = tmp_path / "zs.csv"
    result = invoke(runner, "zeroshot", model, hostile_table, "--out", out)
    assert result.exit_code == 3, result.output
    bad = _image_rows(hostile_rows)
    source = pd.read_csv(hostile_table, dtype={"id": str})
    frame = pd.read_csv(out, dtype={"id": str})
    assert list(frame["id"]) == list(source["id"])  # one row per input row, in order
    assert list(frame["label"]) == list(source["label"])
    empty = [n for n, v in enumerate(source["image"], 1) if pd.isna(v)]
    unclassified = [n for n, e in enumerate(frame["error"], 1) if isinstance(e, str)]
    assert unclassified == sorted(bad + empty)
    for row in bad:
        assert hostile_rows[row][1] in frame["error"][row - 1]
    for row in empty:
        assert "cell is empty" in frame["error"][row - 1]
    assert frame["prediction"].isna().tolist() == frame["error"].notna().tolist()
    listed = pd.read_csv(tmp_path / "zs.bad_rows.csv")
    assert list(listed["row"]) == bad  # an empty cell is not a bad row
    assert f"skipped {len(bad)} of 25 row(s)" in result.flat and "skipped_rows" in result.flat

    refused = invoke(runner, "zeroshot", model, hostile_table, "-o", out, "--on-error", "raise")
    assert f"{len(bad)} of 25 row(s) cannot be used" in _error(refused)


def test_aligned_evaluate_refuses_bad_rows_unless_told_to_skip(
    runner, model, hostile_table, hostile_rows, tmp_path
):
    bad = _image_rows(hostile_rows)
    refused = invoke(runner, "evaluate", model, hostile_table)
    assert f"{len(bad)} of 25 row(s) cannot be used" in _error(refused)
    report = tmp_path / "ev"
    result = invoke(runner, "evaluate", model, hostile_table, "--out", report, "--on-error", "skip")
    assert result.exit_code == 3, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["skipped_rows"] == len(bad)
    assert list(pd.read_csv(report / "bad_rows.csv")["row"]) == bad


@pytest.mark.parametrize("command", [["search"], ["index", "search"]])
def test_search_prints_ranked_hits_and_a_contact_sheet(runner, index, demo_data, tmp_path, command):
    sheet = tmp_path / "sheet.html"
    result = invoke(
        runner, *command, index, "--text", "a dog in the park", "-k", "3", "--html", sheet
    )
    assert result.exit_code == 0, result.output
    for text in ("text query: a dog in the park", "rank", "score", "label"):
        assert text in result.output
    html = sheet.read_text()
    assert html.count("data:image/png;base64,") == 3 and "a dog in the park" in html
    row = pd.read_csv(demo_data / "test.csv").dropna(subset=["image"]).iloc[2]
    result = invoke(runner, *command, index, "--image", demo_data / row["image"], "-k", "2")
    assert result.exit_code == 0, result.output
    first = next(line for line in result.output.splitlines() if "│ 1 " in line)
    assert row["id"] in first and "1.0000" in first  # an item finds itself first


def test_index_add_grows_the_index(runner, model, demo_data, tmp_path):
    out = tmp_path / "idx"
    assert (
        invoke(
            runner,
            "index",
            "build",
            model,
            demo_data / "test.csv",
            "--modality",
            "image",
            "--out",
            out,
        ).exit_code
        == 0
    )
    result = invoke(runner, "index", "add", out, demo_data / "train.csv")
    assert result.exit_code == 0, result.output
    test, train = (pd.read_csv(demo_data / f"{s}.csv") for s in ("test", "train"))
    total = int(test["image"].notna().sum() + train["image"].notna().sum())
    assert f"now holds {total} items" in result.flat
    bad_kind = invoke(
        runner,
        "index",
        "build",
        model,
        demo_data / "test.csv",
        "--modality",
        "image",
        "--out",
        tmp_path / "k",
        "--kind",
        "annoy",
    )
    assert "unknown index kind 'annoy'" in _error(bad_kind)
    assert "already in the index" in _error(
        invoke(runner, "index", "add", out, demo_data / "train.csv")
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "no-such-image.png"], "image query file not found: no-such-image.png"),
        (["--text", ""], "empty text query"),
        (["--audio", "clip.wav"], "aligns text and image; it cannot embed audio queries"),
        ([], "give exactly one query"),
        (
            ["--text", "a dog", "--html", "x.html", "--model", "nowhere"],
            "nowhere: model folder not found",
        ),
    ],
)
def test_bad_queries_exit_2_with_one_line(runner, index, args, message):
    assert message in _error(invoke(runner, "search", index, *args))


def test_search_html_needs_an_image_index(runner, model, demo_data, tmp_path):
    out = tmp_path / "captions"
    invoke(
        runner,
        "index",
        "build",
        model,
        demo_data / "test.csv",
        "--modality",
        "caption",
        "--out",
        out,
    )
    line = _error(invoke(runner, "search", out, "--text", "a", "--html", tmp_path / "s.html"))
    assert "--html draws image hits" in line and not (tmp_path / "s.html").exists()
    assert "no index here" in _error(invoke(runner, "search", tmp_path / "none", "--text", "a"))


def test_zeroshot_writes_predictions_and_prints_accuracy(runner, model, demo_data, tmp_path):
    out = tmp_path / "zs.csv"
    labels = pd.read_csv(demo_data / "test.csv")["label"].dropna().unique()[:3].tolist()
    result = invoke(
        runner,
        "zeroshot",
        model,
        demo_data / "test.csv",
        "--classes",
        ",".join(labels),
        "--template",
        "a photo of {}",
        "--template",
        "{}",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert {"id", "prediction", "label"} <= set(frame.columns)
    assert [f"score_{c}" for c in labels] == [c for c in frame.columns if c.startswith("score_")]
    assert set(frame["prediction"].dropna()) <= set(labels)
    # one row per input row: a row with no image has an empty prediction and says why
    assert len(frame) == len(pd.read_csv(demo_data / "test.csv"))
    assert frame["prediction"].isna().tolist() == frame["error"].notna().tolist()
    assert f"wrote {len(frame)} predictions to {out}" in result.flat and "accuracy" in result.output
    # default classes: the training labels
    result = invoke(
        runner, "zeroshot", model, demo_data / "test.csv", "--modality", "image", "-o", out
    )
    assert result.exit_code == 0, result.output
    bad = invoke(runner, "zeroshot", model, demo_data / "test.csv", "--template", "no braces")
    assert "has no `{}`" in _error(bad)


def test_similarity_prints_the_cosine_matrix(runner, model, demo_data, tmp_path):
    images = [demo_data / "images" / f"demo-000{i}.png" for i in (50, 52)]
    out = tmp_path / "sim.csv"
    args = ["--image", images[0], "--image", images[1], "--text", "a cat", "--text", "a dog"]
    result = invoke(runner, "similarity", model, *args, "--out", out)
    assert result.exit_code == 0, result.output
    assert "cosine similarity (image x text)" in result.output
    assert "'a cat'" in result.output and "demo-00050.png" in result.output
    matrix = pd.read_csv(out, index_col=0)
    assert matrix.shape == (2, 2)
    assert ((matrix.to_numpy() >= -1.0001) & (matrix.to_numpy() <= 1.0001)).all()
    one = _error(invoke(runner, "similarity", model, "--text", "a"))
    assert "exactly two modalities" in one
    missing = _error(
        invoke(runner, "similarity", model, "--text", "a", "--image", tmp_path / "gone.png")
    )
    assert "gone.png" in missing


def test_data_digits_reports_missing_sources(runner, tmp_path):
    result = invoke(
        runner,
        "data",
        "digits",
        "--mnist",
        tmp_path / "m",
        "--fsdd",
        tmp_path / "f",
        "--out",
        tmp_path / "d",
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.output


# ----------------------------------------------------------------------------- issue 13
def test_search_takes_an_array_cell_query(runner, index, demo_data, tmp_path):
    import numpy as np
    from PIL import Image

    rows = pd.read_csv(demo_data / "test.csv").dropna(subset=["image"]).head(3)
    pictures = [np.asarray(Image.open(demo_data / p).convert("RGB")) for p in rows["image"]]
    np.save(tmp_path / "images.npy", np.stack(pictures))
    result = invoke(runner, "search", index, "--image", f"{tmp_path / 'images.npy'}#2", "-k", "2")
    assert result.exit_code == 0, result.output
    first = next(line for line in result.output.splitlines() if "│ 1 " in line)
    assert rows["id"].iloc[2] in first and "1.0000" in first  # the picture finds itself
    line = _error(invoke(runner, "search", index, "--image", f"{tmp_path / 'images.npy'}#7"))
    assert "row 7 is out of range" in line


def test_search_shows_chosen_columns_whole_in_the_table_the_file_and_the_sheet(
    runner, model, demo_data, tmp_path
):
    table = pd.read_csv(demo_data / "test.csv")
    table["image"] = [str(demo_data / p) if isinstance(p, str) else p for p in table["image"]]
    table["name"] = [f"item {i}, {'a long name ' * 10}end" for i in range(len(table))]
    table.to_csv(tmp_path / "named.csv", index=False)
    out = tmp_path / "idx"
    built = invoke(
        runner, "index", "build", model, tmp_path / "named.csv", "--modality", "image", "--out", out
    )
    assert built.exit_code == 0, built.output
    hits_file, sheet = tmp_path / "hits.json", tmp_path / "sheet.html"
    args = ["search", out, "--text", "a dog", "-k", "3", "--show", "name,caption"]
    # as piped to a file: no terminal, no COLUMNS; the long names must not be cut
    result = runner.invoke(
        app, [str(a) for a in [*args, "--out", hits_file, "--html", sheet]], env={"COLUMNS": None}
    )
    assert result.exit_code == 0, result.output
    hits = pd.read_json(hits_file)
    assert list(hits.columns) == ["rank", "id", "score", "name", "caption"]
    names = dict(zip(table["id"], table["name"], strict=True))
    for item in hits["id"]:
        assert names[item] in result.output  # whole, on one line
        assert f"name: {names[item]}" in sheet.read_text()
    header = next(line for line in result.output.splitlines() if "rank" in line)
    assert "name" in header and "caption" in header and "label" not in header
    assert "no column(s) ['title']" in _error(
        invoke(runner, "search", out, "--text", "a", "--show", "title")
    )
    csv_out = tmp_path / "hits.csv"
    assert invoke(runner, *args, "--out", csv_out).exit_code == 0
    assert pd.read_csv(csv_out)["name"].tolist() == hits["name"].tolist()
    assert "write hits to .csv, .json, .parquet" in _error(
        invoke(runner, *args, "--out", tmp_path / "hits.txt")
    )


def test_zeroshot_class_names_with_commas_from_the_option_and_a_file(
    runner, model, demo_data, tmp_path
):
    labels = sorted(pd.read_csv(demo_data / "test.csv")["label"].dropna().unique())
    odd = "a dog, sitting"
    out = tmp_path / "zs.csv"
    result = invoke(
        runner,
        "zeroshot",
        model,
        demo_data / "test.csv",
        "--class",
        odd,
        "--class",
        labels[0],
        "--classes",
        ",".join(labels[1:3]),
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    scores = [c for c in pd.read_csv(out).columns if c.startswith("score_")]
    assert scores == [f"score_{c}" for c in [*labels[1:3], odd, labels[0]]]
    many = [*labels, *(f"class {i}, with a comma" for i in range(200))]
    listing = tmp_path / "classes.txt"
    listing.write_text("\n".join(many) + "\n\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke(
            runner, "zeroshot", model, demo_data / "test.csv", "--classes-file", listing, "-o", out
        )
    assert result.exit_code == 0, result.output
    # no PerformanceWarning per class column (pytest would keep it out of the output)
    assert "PerformanceWarning" not in result.output
    assert [w for w in caught if "PerformanceWarning" in type(w.message).__name__] == []
    assert [c for c in pd.read_csv(out).columns if c.startswith("score_")] == [
        f"score_{c}" for c in many
    ]
    listing.write_text("\n\n")
    assert "no class names in it" in _error(
        invoke(runner, "zeroshot", model, demo_data / "test.csv", "--classes-file", listing)
    )
    twice = invoke(
        runner, "zeroshot", model, demo_data / "test.csv", "--class", "x", "--classes", "x,y"
    )
    assert "given more than once: ['x']" in _error(twice)
