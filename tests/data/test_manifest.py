"""Reading CSV/TSV manifests as text: NA-looking values, ids kept verbatim, delimiter and
encoding detection, parse errors in Plait's row numbers, duplicate ids."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest

from plait.data import delimited, prepare_data, read_table
from plait.data.manifest import check_columns
from plait.errors import DataError

HEADER = "id,text,label\n"


def _cells(frame: pd.DataFrame, column: str) -> list:
    """Column values with NaN shown as None (what 'missing' looks like to a test)."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in frame[column]]


# ------------------------------------------------------------------ values are text


def test_na_looking_cells_are_values_and_only_blank_cells_are_missing(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        HEADER
        + "0001,NA,None\n"
        + "0002,N/A,NA\n"
        + "0003,null,N/A\n"
        + "0004,nan,null\n"
        + "0005,,   \n"
        + "0006,   ,3.0\n"
    )
    frame = read_table(path).frame
    assert _cells(frame, "id") == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert _cells(frame, "text") == ["NA", "N/A", "null", "nan", None, None]
    assert _cells(frame, "label") == ["None", "NA", "N/A", "null", None, "3.0"]


def test_tsv_and_parquet_keep_their_own_rules(tmp_path):
    tsv = tmp_path / "m.tsv"
    tsv.write_text("id\tlabel\n007\tNA\n008\t\n")
    assert _cells(read_table(tsv).frame, "label") == ["NA", None]
    assert _cells(read_table(tsv).frame, "id") == ["007", "008"]
    parquet = tmp_path / "m.parquet"
    pd.DataFrame({"id": [7, 8], "y": [1.5, None]}).to_parquet(parquet)
    frame = read_table(parquet).frame
    assert frame["id"].tolist() == [7, 8]  # Parquet keeps its integers
    assert frame["y"].tolist()[0] == 1.5


# -------------------------------------------------------------- delimiter, encoding


@pytest.mark.parametrize("sep", [";", "\t", ","])
def test_delimiter_is_detected_in_a_csv(tmp_path, sep):
    path = tmp_path / "m.csv"
    rows = [["id", "text", "label"], ["1", "a text, with a comma; and a semicolon", "x"]]
    rows += [[str(i), f"caption {i}", "y"] for i in range(2, 60)]
    quoted = [[f'"{c}"' if (";" in c or "," in c) else c for c in r] for r in rows]
    path.write_text("\n".join(sep.join(r) for r in quoted) + "\n")
    frame = read_table(path).frame
    assert list(frame.columns) == ["id", "text", "label"]
    assert len(frame) == 59
    assert frame["text"].iloc[0] == "a text, with a comma; and a semicolon"


def test_semicolon_file_with_unquoted_commas_in_text(tmp_path):
    """The file of the report: `;`-separated, commas inside captions, no quotes."""
    path = tmp_path / "m.csv"
    lines = ["id;caption;label"] + [f"{i};caption {i};cat" for i in range(1, 53)]
    lines.append("53;a caption, with a comma;dog")
    path.write_text("\n".join(lines) + "\n")
    frame = read_table(path).frame
    assert frame["caption"].iloc[52] == "a caption, with a comma"
    assert frame["label"].iloc[52] == "dog"


def test_utf8_bom_and_latin1_files(tmp_path, caplog):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("id,label\n1,café\n".encode("utf-8-sig"))
    frame = read_table(bom).frame
    assert list(frame.columns) == ["id", "label"]  # no '\ufeffid'
    assert frame["label"].iloc[0] == "café"

    latin = tmp_path / "latin.csv"
    latin.write_bytes("id;label\n1;café\n2;naïve\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="plait"):
        frame = read_table(latin).frame
    assert frame["label"].tolist() == ["café", "naïve"]
    message = caplog.text
    assert str(latin) in message and "UTF-8" in message and "row 1" in message

    utf16 = tmp_path / "excel.csv"  # Excel's "Unicode text": UTF-16 with a BOM, tabs
    utf16.write_bytes("id\tlabel\n1\tcafé\n".encode("utf-16"))
    assert read_table(utf16).frame["label"].tolist() == ["café"]


def test_encoding_is_checked_in_blocks_across_split_characters(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(delimited, "_BLOCK", 7)  # every multi-byte character gets split
    path = tmp_path / "m.csv"
    path.write_bytes("id,label\n1,café\n2,crème brûlée\n3,naïve\n".encode())
    with caplog.at_level(logging.WARNING, logger="plait"):
        frame = read_table(path).frame
    assert frame["label"].tolist() == ["café", "crème brûlée", "naïve"]
    assert caplog.text == ""  # all of it is UTF-8: no fallback
    path.write_bytes("id,label\n1,café\n2,ok\n".encode() + "3,naïve\n".encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="plait"):
        frame = read_table(path).frame
    assert frame["label"].tolist() == ["cafÃ©", "ok", "naïve"]  # cp1252 reads all of it
    assert "byte 0xEF in row 3" in caplog.text and "cp1252" in caplog.text


def test_binary_file_named_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"PAR1\x00\x00\x15\x04" * 20)
    with pytest.raises(DataError, match="binary"):
        read_table(path)


# --------------------------------------------------------------------- parse errors


def test_row_with_too_many_fields_names_plait_row_and_delimiter(tmp_path):
    path = tmp_path / "m.csv"
    lines = ["id;caption;label"] + [f"{i};caption {i};cat" for i in range(1, 60)]
    lines[41] = '40;"a quoted caption\nover two lines";cat'  # file lines != data rows
    lines[53] = "53;a caption; with a semicolon;dog"  # data row 53, file line 55
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert str(path) in message
    assert "row 53" in message and "line" not in message.split("row 53")[0]
    assert "4 fields" in message and "3" in message
    assert "';'" in message and "delimiter" in message


# ---------------------------------------------------------------------- duplicates


def test_duplicate_ids_are_named_with_their_rows(tmp_path, make_config, caplog):
    path = tmp_path / "m.csv"
    path.write_text("id,text,label\na,x,cat\nb,y,dog\na,z,cat\nc,w,dog\nb,v,cat\na,u,dog\n")
    config = make_config(
        path,
        modalities={"t": {"kind": "text", "column": "text"}},
        data={"id": "id"},
    )
    with caplog.at_level(logging.WARNING, logger="plait"):
        check_columns(read_table(path), config)
    message = caplog.text
    assert str(path) in message and "2 duplicated id(s)" in message
    assert "'a' (rows 1, 3, 6)" in message and "'b' (rows 2, 5)" in message
    assert "'c'" not in message


# ------------------------------------------------------------- through prepare_data


def test_class_named_none_or_na_trains_as_a_class(tmp_path, make_config):
    names = ["None", "NA", "N/A", "null"]
    rows = [f"{i:04d},caption {i} {names[i % 4]},{names[i % 4]}" for i in range(1, 41)]
    rows.append("0041,NA,None")  # the caption `NA` is a present text
    path = tmp_path / "train.csv"
    path.write_text("id,text,label\n" + "\n".join(rows) + "\n")
    config = make_config(
        path,
        modalities={"t": {"kind": "text", "column": "text"}},
        data={"id": "id", "split": {"method": "stratified", "valid": 0.2, "test": 0.0}},
    )
    prepared = prepare_data(config)
    assert prepared.problems == []
    assert sorted(prepared.labels.names) == sorted(names)
    assert len(prepared.train) + len(prepared.valid) == 41
    everything = {
        sid: ds[i] for ds in (prepared.train, prepared.valid) for i, sid in enumerate(ds.ids)
    }
    assert "0041" in everything and "41" not in everything  # ids verbatim
    assert everything["0041"]["presence"]["t"] is True


def test_numeric_labels_as_text_keep_one_class_per_number(tmp_path, make_config):
    path = tmp_path / "train.csv"
    lines = [f"{i},caption {i},{['3', '3.0', '7', '7.00'][i % 4]}" for i in range(1, 21)]
    path.write_text("id,text,label\n" + "\n".join(lines) + "\n")
    config = make_config(
        path,
        modalities={"t": {"kind": "text", "column": "text"}},
        data={"split": {"method": "random", "valid": 0.0, "test": 0.0}},
    )
    prepared = prepare_data(config)
    assert prepared.labels.names == ["3", "7"]
    assert prepared.labels.counts == [10, 10]


def test_multilabel_float_flags_and_regression_text_targets(tmp_path, make_config):
    path = tmp_path / "train.csv"
    lines = [f"{i},caption {i},{i % 2}.0,{1 - i % 2},{i / 4}" for i in range(1, 13)]
    path.write_text("id,text,a,b,score\n" + "\n".join(lines) + "\n")
    modalities = {"t": {"kind": "text", "column": "text"}}
    no_split = {"split": {"method": "random", "valid": 0.0, "test": 0.0}}
    multi = make_config(
        path,
        modalities=modalities,
        data={"label": ["a", "b"], **no_split},
        head={"task": "multilabel"},
    )
    prepared = prepare_data(multi)
    assert prepared.problems == [] and prepared.labels.counts == [6, 6]

    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_text().replace("2,caption 2,0.0,1,0.5", "2,caption 2,0.0,1,high"))
    regression = make_config(
        bad,
        modalities=modalities,
        data={"label": "score", **no_split},
        head={"task": "regression"},
    )
    with pytest.raises(DataError) as info:
        prepare_data(regression)
    [problem] = info.value.problems
    assert (problem.row, problem.column) == (2, "score")
    assert "'high' is not a number" in problem.reason


def test_first_row_with_an_extra_field_is_an_error_not_a_shift(tmp_path):
    """pandas would take the first column as an index and shift every value left."""
    path = tmp_path / "m.tsv"
    path.write_text("id\tlabel\n1\tcat\textra\n2\tdog\n")
    with pytest.raises(DataError, match=r"row 1 has 3 fields but the header has 2.*tab"):
        read_table(path)


def test_unclosed_quote_names_its_row(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('id,text\n1,fine\n2,"never closed\n3,more\n')
    with pytest.raises(DataError, match=r"row 2: .*double quotes.*comma"):
        read_table(path)
