"""The generated corpus of odd and hostile inputs (`tests/corpus/build.py`) through Plait.

Every odd-but-valid row must load, every hostile row must be reported with its file, row,
column and a reason, nothing may crash with anything but a `PlaitError`, and nothing may
be lost: predict keeps one output row per input row. What each row must become is read
from the corpus description (`Case`), never written here by hand.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

import plait
from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.data.manifest import read_table
from plait.data.processor import build_processor, is_blank
from plait.errors import PlaitError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus.build import (  # noqa: E402
    AUDIO,
    CAPTION,
    IMAGE,
    MANIFESTS,
    MODEL_FOLDER_DAMAGE,
    SAMPLE_RATE,
    Case,
    Corpus,
    build_corpus,
    corpus_cases,
    damage_model_folder,
)

CASES = corpus_cases()
FILE_CASES = [c for c in CASES if c.kind in ("image", "audio", "array")]
TEXT_CASES = [c for c in CASES if c.kind == "text"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def corpus_config(
    corpus: Corpus, out: Path, train: Path, on_error: str = "skip", **sections: Any
) -> dict[str, Any]:
    """A tiny config over the corpus: one epoch of 16 px images and quarter-second clips;
    the plain `clean.csv` is the valid and test split, so every corpus row is a train row."""
    raw: dict[str, Any] = {
        "name": "corpus",
        "output_dir": str(out),
        "data": {
            "train": str(train),
            "valid": str(corpus.clean),
            "test": str(corpus.clean),
            "label": "label",
            "id": "id",
            "on_error": on_error,
        },
        "modalities": {
            "caption": {
                "kind": "text",
                "column": CAPTION,
                "max_length": 16,
                "encoder": {"type": "text_cnn", "dim": 8},
            },
            "image": {
                "kind": "image",
                "column": IMAGE,
                "size": 16,
                "augment": False,
                "encoder": {"type": "image_cnn", "dim": 8, "layers": 1},
            },
            "audio": {
                "kind": "audio",
                "column": AUDIO,
                "sample_rate": SAMPLE_RATE,
                "duration": 0.25,
                "n_mels": 16,
                "n_fft": 256,
                "hop_length": 160,
                "encoder": {"type": "audio_cnn", "dim": 8, "layers": 1},
            },
        },
        "fusion": {"method": "concat", "dim": 8},
        "head": {"task": "classification", "hidden": 8},
        "training": {
            "epochs": 1,
            "batch_size": 32,
            "lr": 3e-3,
            "progress": False,
            "tensorboard": False,
            "threads": 1,
            "accelerator": "cpu",
            "seed": 0,
        },
        # no test here opens the run's report.html; its figures are most of a tiny run's time
        "evaluation": {"report": False},
    }
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
    return raw


def plait_call(call: Callable[[], Any]) -> Any:
    """Run `call`; anything it raises must be a PlaitError (returned, not raised)."""
    try:
        return call()
    except PlaitError as exc:
        return exc
    except Exception as exc:  # the failure this corpus exists to catch
        pytest.fail(f"raised {type(exc).__name__}, not a PlaitError: {exc}")


def matches(reason: str, case: Case) -> bool:
    text = reason.lower()
    return any(word.lower() in text for word in case.reason)


def names_row(message: str, row: int) -> bool:
    return re.search(rf"\brow {row}\b", message) is not None


def first_bad(cases: list[Case], predict: bool = False) -> Case:
    bad = [c for c in cases if (c.bad_for_predict if predict else c.expect == "bad")]
    return min(bad, key=lambda c: c.row)


# ------------------------------------------------------------------------ the generator
def test_corpus_is_small_fast_and_deterministic(tmp_path):
    start = time.perf_counter()
    first = build_corpus(tmp_path / "a")
    seconds = time.perf_counter() - start
    second = build_corpus(tmp_path / "b")
    files = sorted(p.relative_to(first.root) for p in first.root.rglob("*") if p.is_file())
    size = sum((first.root / p).stat().st_size for p in files)
    assert size < 1_000_000, f"the corpus is {size} bytes"
    assert seconds < 5, f"building the corpus took {seconds:.1f} s"
    assert files == sorted(
        p.relative_to(second.root) for p in second.root.rglob("*") if p.is_file()
    )
    for path in files:
        a, b = first.root / path, second.root / path
        if path.suffix in (".wav", ".flac", ".ogg") and a.stat().st_size:
            # float WAVs carry a PEAK chunk with a time stamp, OGG a random stream serial
            try:
                (wave_a, rate_a), (wave_b, rate_b) = sf.read(a), sf.read(b)
            except sf.SoundFileError:  # the hostile ones: compare bytes
                assert a.read_bytes() == b.read_bytes(), path
                continue
            assert rate_a == rate_b and np.array_equal(wave_a, wave_b, equal_nan=True), path
        else:
            assert a.read_bytes() == b.read_bytes(), path
    assert first.cases == second.cases


def test_corpus_description_is_consistent(corpus):
    rows = [c.row for c in corpus.cases]
    assert rows == list(range(1, len(rows) + 1))
    assert len({c.name for c in corpus.cases}) == len(corpus.cases)
    assert all(c.reason for c in corpus.cases if c.expect == "bad")
    assert {c.kind for c in corpus.cases} == {"image", "audio", "text", "array", "label"}
    test = pd.read_csv(corpus.test, dtype=str, keep_default_na=False)
    assert test["id"].tolist() == [c.id for c in corpus.cases]
    for case in corpus.cases:  # every file a case names is where the case says (or absent)
        if case.kind in ("image", "audio"):
            path = corpus.root / case.value
            assert path.exists() == (not case.name.endswith("-missing")), case.name


# ------------------------------------------------------------------- one cell at a time
@pytest.fixture(scope="module")
def processors(corpus, tmp_path_factory):
    raw = corpus_config(corpus, tmp_path_factory.mktemp("runs"), corpus.manifests["comma"])
    config = PlaitConfig.from_dict(raw)
    found = {m.column: build_processor(m) for m in config.modalities.values()}
    found[CAPTION].fit(["a plain caption about a cat"])
    return found


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.name for c in FILE_CASES])
def test_each_file_cell(corpus, processors, case):
    """An odd file decodes to finite tensors of the usual shape; a hostile one is refused
    with a reason (what row validation and the data loader both rely on)."""
    processor = processors[case.column]
    if case.expect == "bad":  # refused when rows are validated, and when a loader reads it
        for step in (processor.check, processor.load):
            with pytest.raises(ValueError) as caught:
                step(case.value, corpus.root)
            assert matches(str(caught.value), case), (step.__name__, str(caught.value))
        return
    processor.check(case.value, corpus.root)
    raw = processor.load(case.value, corpus.root)
    tensors = processor.transform(raw, False, torch.Generator().manual_seed(0))
    expected = processor.placeholder()
    assert tensors.keys() == expected.keys()
    for key, tensor in tensors.items():
        assert tensor.shape == expected[key].shape, key
        assert torch.isfinite(tensor).all(), key


def test_exif_rotation_and_animation_are_applied(corpus):
    from plait.data.image import load_image

    rotated = load_image(corpus.root / "images/exif_rotated.jpg", 10**6)
    assert rotated.size == (4, 8)  # stored 8 wide x 4 high, orientation 6: upright 4 x 8
    assert load_image(corpus.root / "images/animated.gif", 10**6).size == (8, 8)


@pytest.mark.parametrize("case", TEXT_CASES, ids=[c.name for c in TEXT_CASES])
def test_each_text_cell(processors, case):
    """The text processor itself: only a blank caption is missing (`NA` is a word here;
    whether a manifest reader keeps it is tested per format below)."""
    processor = processors[CAPTION]
    missing = not case.value.strip()
    assert processor.is_missing(case.value) == missing
    if not missing:
        ids = processor.transform(processor.load(case.value, Path(".")), False, None)["input_ids"]
        assert 0 < len(ids) <= 16


# ----------------------------------------------------------------- every manifest format
@pytest.mark.parametrize("variant", list(MANIFESTS))
def test_manifest_cells_are_read_verbatim(corpus, variant):
    """Ids keep their leading zeros, `NA`/`None` stay text, newlines, quotes and
    delimiters survive; only empty or whitespace cells may read as missing."""
    frame = plait_call(lambda: read_table(corpus.manifests[variant]).frame)
    assert isinstance(frame, pd.DataFrame), str(frame)
    cases = corpus.train_cases()
    assert len(frame) == len(cases)
    assert [str(v) for v in frame["id"]] == [c.id for c in cases]
    for case in cases:
        cell = frame[case.column].iloc[case.row - 1]
        if not case.value.strip():
            assert is_blank(cell) or str(cell).strip() == "", case.name
            continue
        expected = case.value
        if variant == "latin1":
            expected = expected.encode("latin-1", errors="replace").decode("latin-1")
        assert str(cell) == expected, case.name


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory) -> Callable[[str], Any]:
    """prepared(variant) -> `prepare_data` of that manifest with `on_error: skip` (cached),
    or the PlaitError it raised."""
    cache: dict[str, Any] = {}
    out = tmp_path_factory.mktemp("prepared")

    def get(variant: str) -> Any:
        if variant not in cache:
            raw = corpus_config(corpus, out, corpus.manifests[variant], on_error="skip")
            config = PlaitConfig.from_dict(raw)
            cache[variant] = plait_call(lambda: prepare_data(config, progress=False))
        return cache[variant]

    return get


def _check_rows(corpus: Corpus, variant: str, used: set[int], problems: list, cases: list[Case]):
    """`used` are the 1-based train rows kept; `problems` the RowProblems reported."""
    file_name = str(corpus.manifests[variant])
    by_row: dict[int, list] = {}
    for problem in problems:
        by_row.setdefault(problem.row, []).append(problem)
    for case in cases:
        if case.expect == "ok":
            assert case.row in used, f"{case.name} (row {case.row}) was not used"
            assert case.row not in by_row, f"{case.name}: {by_row.get(case.row)}"
            continue
        assert case.row not in used, f"{case.name} (row {case.row}) was used"
        found = by_row.get(case.row, [])
        assert found, f"{case.name} (row {case.row}) was not reported"
        assert any(p.column == case.column and matches(p.reason, case) for p in found), (
            case.name,
            [str(p) for p in found],
        )
        assert all(Path(p.file) == Path(file_name) for p in found), [p.file for p in found]


def _train_rows(corpus: Corpus, variant: str, prepared: Any) -> tuple[set[int], list]:
    assert not isinstance(prepared, PlaitError), str(prepared)
    used = {int(r) + 1 for r in prepared.train.rows}
    mine = [p for p in prepared.problems if Path(p.file) == corpus.manifests[variant]]
    return used, mine


@pytest.mark.parametrize("variant", list(MANIFESTS))
def test_every_row_is_used_or_reported(corpus, prepared, variant):
    """Validation with `on_error: skip` over each format: every odd row is used, every
    hostile row reported once, where (file, row, column) and why."""
    used, problems = _train_rows(corpus, variant, prepared(variant))
    _check_rows(corpus, variant, used, problems, corpus.train_cases())
    assert len(problems) == len({p.row for p in problems}), "a row reported twice"


@pytest.mark.parametrize("variant", list(MANIFESTS))
def test_values_that_look_missing_are_values(corpus, prepared, variant):
    """A class named `None`, `NA` or `null` is a class; a caption `NA` or `None` is text;
    a whitespace-only caption is a missing modality."""
    prepared = prepared(variant)
    assert not isinstance(prepared, PlaitError), str(prepared)
    assert {"None", "NA", "null", "cat", "dog"} <= set(prepared.labels.names)
    dataset = prepared.train
    position = {int(r) + 1: i for i, r in enumerate(dataset.rows)}
    for name, present in (
        ("text-literal-NA", True),
        ("text-literal-None", True),
        ("text-whitespace-only", False),
        ("text-unicode-emoji-rtl", True),
        ("text-newlines-quotes-delimiters", True),
    ):
        sample = dataset[position[corpus.by_name(name).row]]
        assert sample["presence"]["caption"] is present, name


@pytest.mark.parametrize("variant", list(MANIFESTS))
def test_numeric_labels_3_and_3_0_are_one_class(corpus, prepared, variant):
    prepared = prepared(variant)
    assert not isinstance(prepared, PlaitError), str(prepared)
    assert "3" in prepared.labels.names and "3.0" not in prepared.labels.names


def test_label_counts_are_the_rows_used(prepared):
    """`labels.json` counts reflect the rows training used, not rows later skipped."""
    prepared = prepared("parquet")
    assert not isinstance(prepared, PlaitError), str(prepared)
    assert sum(prepared.labels.counts) == len(prepared.train)


@pytest.mark.parametrize("variant", list(MANIFESTS))
def test_train_with_raise_names_the_first_bad_row(corpus, tmp_path, variant):
    raw = corpus_config(corpus, tmp_path, corpus.manifests[variant], on_error="raise")
    outcome = plait_call(lambda: plait.train(raw))
    assert isinstance(outcome, PlaitError), "training on the corpus did not stop"
    first = first_bad(corpus.train_cases())
    message = str(outcome)
    assert names_row(message, first.row), message[:500]
    assert str(corpus.manifests[variant]) in message
    assert "Traceback" not in message


# ------------------------------------------------------------- one real run and its model
@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory) -> Callable[[str], Any]:
    """runs(variant) -> one epoch on that manifest with `on_error: skip` (cached): the
    RunResult, or the PlaitError it raised."""
    cache: dict[str, Any] = {}

    def get(variant: str) -> Any:
        if variant not in cache:
            out = tmp_path_factory.mktemp(f"runs-{variant}")
            raw = corpus_config(corpus, out, corpus.manifests[variant], on_error="skip")
            cache[variant] = plait_call(lambda: plait.train(raw))
        return cache[variant]

    return get


@pytest.fixture(scope="module")
def trained(runs):
    """The run on the comma-separated corpus, whose model predict/evaluate use."""
    return runs("comma")


def _bad_rows(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "bad_rows.csv"
    assert path.is_file(), "no bad_rows.csv in the run folder"
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _check_bad_rows_csv(
    corpus: Corpus, variant: str, frame: pd.DataFrame, cases: list[Case]
) -> None:
    assert {"file", "row", "column", "reason"} <= set(frame.columns), list(frame.columns)
    rows = frame.assign(row=frame["row"].astype(int))
    for case in cases:
        mine = rows[rows["row"] == case.row]
        if case.expect == "ok":
            assert mine.empty, (case.name, mine.to_dict("records"))
            continue
        assert not mine.empty, f"{case.name} (row {case.row}) not in bad_rows.csv"
        assert any(
            c == case.column and matches(r, case)
            for c, r in zip(mine["column"], mine["reason"], strict=True)
        ), (case.name, mine.to_dict("records"))
        assert all(Path(f) == corpus.manifests[variant] for f in mine["file"])


@pytest.mark.parametrize("variant", list(MANIFESTS))
def test_train_with_skip_lists_bad_rows(corpus, runs, variant):
    """One epoch with `on_error: skip` over each format: every hostile row, and only those,
    is listed in the run's bad_rows.csv with its file, row, column and reason."""
    run = runs(variant)
    assert not isinstance(run, PlaitError), str(run)
    _check_bad_rows_csv(corpus, variant, _bad_rows(run.run_dir), corpus.train_cases())


def test_train_with_skip_keeps_the_model_finite(trained):
    """Non-finite files are rejected up front, so one epoch leaves finite weights."""
    assert not isinstance(trained, PlaitError), str(trained)
    for name, tensor in trained.predictor.model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), f"weights {name} are not finite"


def _predict_frame(corpus: Corpus, frame: pd.DataFrame) -> None:
    """One output row per input row, ids verbatim, `error` set exactly on bad rows."""
    assert len(frame) == len(corpus.cases)
    assert [str(v) for v in frame["id"]] == [c.id for c in corpus.cases]
    assert "error" in frame.columns
    proba = [c for c in frame.columns if str(c).startswith("proba_")]
    for case, (_, row) in zip(corpus.cases, frame.iterrows(), strict=True):
        error = "" if is_blank(row["error"]) else str(row["error"])
        if case.bad_for_predict:
            assert matches(error, case), (case.name, error)
            assert is_blank(row["prediction"]) or str(row["prediction"]) == "", case.name
        else:
            assert error == "", (case.name, error)
            assert np.isfinite(row[proba].to_numpy(dtype=float)).all(), case.name


@pytest.mark.parametrize("policy", [{"on_error": "skip"}, {}], ids=["skip", "default"])
def test_predict_skip_keeps_one_row_per_input(corpus, trained, tmp_path, policy):
    """`skip` (the default for predict) keeps every row: bad ones get an `error`."""
    assert not isinstance(trained, PlaitError), str(trained)
    output = tmp_path / "predictions.csv"
    frame = plait_call(
        lambda: plait.predict(trained.model_dir, corpus.test, output=output, **policy)
    )
    assert isinstance(frame, pd.DataFrame), str(frame)
    _predict_frame(corpus, frame)
    written = pd.read_csv(output, dtype=str, keep_default_na=False)
    assert written["id"].tolist() == [c.id for c in corpus.cases]
    listed = [p for p in tmp_path.iterdir() if "bad" in p.name and p.suffix == ".csv"]
    assert listed, f"no bad-rows CSV beside {output}: {sorted(p.name for p in tmp_path.iterdir())}"
    bad = pd.read_csv(listed[0], dtype=str, keep_default_na=False)
    assert {int(r) for r in bad["row"]} == {c.row for c in corpus.cases if c.bad_for_predict}


def test_predict_raise_names_the_first_bad_row(corpus, trained):
    assert not isinstance(trained, PlaitError), str(trained)
    outcome = plait_call(lambda: plait.predict(trained.model_dir, corpus.test, on_error="raise"))
    assert isinstance(outcome, PlaitError)
    assert names_row(str(outcome), first_bad(corpus.cases, predict=True).row), str(outcome)


def test_predict_keeps_ids_with_leading_zeros(corpus, trained):
    assert not isinstance(trained, PlaitError), str(trained)
    frame = plait_call(lambda: plait.predict(trained.model_dir, corpus.ids_table))
    assert isinstance(frame, pd.DataFrame), str(frame)
    expected = pd.read_csv(corpus.ids_table, dtype=str)["id"].tolist()
    assert frame["id"].tolist() == expected  # "0001", not 1


@pytest.mark.parametrize("policy", [{"on_error": "raise"}, {}], ids=["raise", "default"])
def test_evaluate_raise_names_the_first_bad_row(corpus, trained, policy):
    """`raise` (the default for evaluate) refuses the table, naming its first bad row."""
    assert not isinstance(trained, PlaitError), str(trained)
    outcome = plait_call(lambda: plait.evaluate(trained.model_dir, corpus.test, **policy))
    assert isinstance(outcome, PlaitError)
    assert names_row(str(outcome), first_bad(corpus.cases).row), str(outcome)


def test_evaluate_skip_scores_the_good_rows(corpus, trained, tmp_path):
    assert not isinstance(trained, PlaitError), str(trained)
    metrics = plait_call(
        lambda: plait.evaluate(
            trained.model_dir, corpus.test, on_error="skip", out=tmp_path / "report"
        )
    )
    assert isinstance(metrics, dict), str(metrics)
    assert np.isfinite(metrics["accuracy"])
    listed = [p for p in (tmp_path / "report").rglob("*.csv") if "bad" in p.name]
    assert listed, "no bad-rows CSV in the evaluation report folder"
    bad = pd.read_csv(listed[0], dtype=str, keep_default_na=False)
    assert {int(r) for r in bad["row"]} == {c.row for c in corpus.cases if c.expect == "bad"}


@pytest.mark.parametrize("how", list(MODEL_FOLDER_DAMAGE))
def test_a_broken_model_folder_is_one_clear_error(corpus, trained, tmp_path, how):
    assert not isinstance(trained, PlaitError), str(trained)
    folder = tmp_path / "model"
    shutil.copytree(trained.model_dir, folder)
    damage_model_folder(folder, how)
    outcome = plait_call(lambda: plait.predict(folder, corpus.clean))
    assert isinstance(outcome, PlaitError), f"predict on a folder with {how} did not fail"
    assert MODEL_FOLDER_DAMAGE[how] in str(outcome), str(outcome)


# ----------------------------------------------------------------------- an aligned model
@pytest.fixture(scope="module")
def aligned(corpus, tmp_path_factory):
    """A tiny caption-image aligned model trained on the plain rows."""
    out = tmp_path_factory.mktemp("aligned")
    raw = corpus_config(corpus, out, corpus.clean, on_error="raise", name="aligned")
    del raw["modalities"]["audio"]
    raw["alignment"] = {"dim": 8}
    raw["training"]["batch_size"] = 8
    result = plait_call(lambda: plait.train(raw))
    assert not isinstance(result, PlaitError), str(result)
    return result.model_dir


def _image_cases(corpus: Corpus) -> tuple[list[str], list[Case]]:
    """(ids that must be embedded, cases that must be reported) for `--modality image`."""
    bad = [c for c in corpus.cases if c.column == IMAGE and c.expect == "bad"]
    good = [c.id for c in corpus.cases if c not in bad]
    return good, bad


@pytest.mark.parametrize("policy", [{"on_error": "skip"}, {}], ids=["skip", "default"])
def test_embed_skip_embeds_every_good_row(corpus, aligned, tmp_path, policy):
    """`skip` (the default for embed) embeds every row but those with a bad image."""
    out = tmp_path / "emb.parquet"
    outcome = plait_call(lambda: plait.embed(aligned, corpus.test, "image", out=out, **policy))
    assert not isinstance(outcome, PlaitError), str(outcome)
    ids, vectors = outcome
    finite = [i for i, v in zip(ids, vectors, strict=True) if np.isfinite(v).all()]
    good, bad = _image_cases(corpus)
    assert finite == good
    assert not {c.id for c in bad} & set(finite)


def test_embed_raise_names_the_first_bad_row(corpus, aligned):
    outcome = plait_call(lambda: plait.embed(aligned, corpus.test, "image", on_error="raise"))
    assert isinstance(outcome, PlaitError)
    _, bad = _image_cases(corpus)
    assert names_row(str(outcome), min(c.row for c in bad)), str(outcome)


# ------------------------------------------------------------------------------ the CLI
def _invoke(*args: Any):
    from typer.testing import CliRunner

    from plait.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], terminal_width=200)
    output = result.output + (result.stderr if result.stderr_bytes else "")
    return result, " ".join(output.split())


def test_cli_train_on_the_corpus_is_one_clear_error(corpus, tmp_path):
    raw = corpus_config(corpus, tmp_path, corpus.manifests["comma"], on_error="raise")
    config = tmp_path / "corpus.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    result, flat = _invoke("train", config)
    assert result.exit_code == 2, flat[-2000:]
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    assert "Traceback" not in flat
    assert "error:" in flat
    assert names_row(flat, first_bad(corpus.train_cases()).row), flat[:1000]


def test_cli_predict_skip_writes_every_row(corpus, trained, tmp_path):
    """Every row is written and the skipped ones make the exit status 3 (README, CLI
    reference: 0 success, 2 error, 3 rows skipped)."""
    assert not isinstance(trained, PlaitError), str(trained)
    output = tmp_path / "predictions.csv"
    result, flat = _invoke(
        "predict", trained.model_dir, corpus.test, "-o", output, "--on-error", "skip"
    )
    assert "Traceback" not in flat
    assert result.exit_code == 3, flat  # output written, rows skipped
    written = pd.read_csv(output, dtype=str, keep_default_na=False)
    assert written["id"].tolist() == [c.id for c in corpus.cases]
    first = first_bad(corpus.cases, predict=True)
    assert names_row(flat, first.row) or "bad" in flat.lower(), flat
