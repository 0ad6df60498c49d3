"""The bad rows of an inference run: their order, their list file, the output frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plait.data.bad_rows import (
    BadRows,
    bad_rows_path,
    check_on_error,
    with_bad_rows,
    write_bad_rows,
)
from plait.errors import PlaitError, RowProblem


def _report() -> BadRows:
    problems = [  # found out of order, one row with two bad cells
        RowProblem("t.csv", 5, "image", "image file not found: a.png"),
        RowProblem("t.csv", 2, "audio", "audio file b.wav is empty (0 frames)"),
        RowProblem("t.csv", 5, "audio", "cannot decode audio file c.wav"),
    ]
    return BadRows("t.csv", 6, problems, ids={2: "0002", 5: "0005"})


def test_problems_are_sorted_by_row_and_each_row_counted_once():
    report = _report()
    assert [(p.row, p.column) for p in report.problems] == [
        (2, "audio"),
        (5, "audio"),
        (5, "image"),
    ]
    assert report.rows == [2, 5]
    assert report.reasons()[5] == (
        "column 'audio': cannot decode audio file c.wav; "
        "column 'image': image file not found: a.png"
    )
    frame = report.frame()
    assert list(frame.columns) == ["row", "id", "column", "file", "reason"]
    assert list(frame["row"]) == [2, 5, 5] and list(frame["id"]) == ["0002", "0005", "0005"]


def test_summary_shows_the_count_the_first_few_and_the_list():
    problems = [RowProblem("t.csv", r, "image", f"bad {r}") for r in range(1, 9)]
    text = BadRows("t.csv", 20, problems).summary("t.bad_rows.csv", shown=3)
    assert text.startswith("skipped 8 of 20 row(s) of t.csv")
    assert "row 3, column 'image': bad 3" in text and "bad 4" not in text
    assert "... and 5 more problem(s)" in text and text.endswith("listed in t.bad_rows.csv")


def test_refusal_names_the_first_row_and_how_many():
    error = _report().refusal()
    assert "t.csv: 2 of 6 row(s) cannot be used" in str(error)
    assert "the first is row 2, column 'audio'" in str(error)
    assert "--on-error skip" in str(error) and len(error.problems) == 3


def test_every_input_row_keeps_its_place():
    report = _report()
    good = [0, 2, 3, 5]  # 0-based positions of rows 1, 3, 4, 6
    frame = pd.DataFrame({"id": ["a", "c", "d", "f"], "proba_x": [0.1, 0.3, 0.4, 0.6]})
    full = with_bad_rows(frame, np.array(good), report)
    assert list(full["id"]) == ["a", "0002", "c", "d", "0005", "f"]
    assert full["proba_x"].isna().tolist() == [False, True, False, False, True, False]
    assert full["error"].notna().tolist() == full["proba_x"].isna().tolist()
    assert full["error"][1].startswith("column 'audio'")
    assert with_bad_rows(frame, good, BadRows("t.csv", 4)) is frame  # nothing bad: unchanged
    with pytest.raises(ValueError):
        with_bad_rows(frame, good[:2], report)


def test_the_list_file_sits_beside_the_output_and_never_goes_stale(tmp_path):
    assert bad_rows_path(tmp_path / "predictions.csv") == tmp_path / "predictions.bad_rows.csv"
    assert bad_rows_path(tmp_path / "emb.npy") == tmp_path / "emb.bad_rows.csv"
    path = tmp_path / "p.bad_rows.csv"
    assert write_bad_rows(_report(), path) == path
    assert list(pd.read_csv(path)["row"]) == [2, 5, 5]
    assert write_bad_rows(BadRows("t.csv", 6), path) is None and not path.exists()
    assert check_on_error("skip") == "skip"
    with pytest.raises(PlaitError, match="'raise' or 'skip'"):
        check_on_error("collect")
