"""Saved model folders: written atomically with a manifest, and every broken folder gives
one clear error naming the file (through `plait.load` and `plait predict`), never a
traceback and never an unpickled file."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import plait
from plait.cli import app
from plait.errors import PlaitError
from plait.predictor import Predictor

SAVED_V0 = Path(__file__).parent / "fixtures" / "saved_v0"


@pytest.fixture(scope="module")
def source() -> Predictor:
    """A tiny supervised model (the committed format-0 fixture), loaded once."""
    predictor = plait.load(SAVED_V0 / "supervised")
    assert isinstance(predictor, Predictor)
    return predictor


@pytest.fixture()
def saved(source: Predictor, tmp_path: Path) -> Path:
    """A folder saved by the current code."""
    return source.save(tmp_path / "model")


def _probabilities(folder: Path, data: Path) -> np.ndarray:
    predictor = plait.load(folder)
    assert isinstance(predictor, Predictor)
    return predictor.predict_proba(data / "test.csv").drop(columns="id").to_numpy(float)


# ------------------------------------------------------------------------------- saving
def test_saved_folder_has_a_manifest_of_every_file(saved: Path):
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["format"] == "plait-model" and manifest["version"] == 1
    on_disk = sorted(
        p.relative_to(saved).as_posix()
        for p in saved.rglob("*")
        if p.is_file() and p.name not in ("manifest.json", "README.md")
    )
    assert sorted(manifest["files"]) == on_disk
    assert {"config.yaml", "model.safetensors", "labels.json"} <= set(on_disk)
    assert any(name.startswith("processors/caption/") for name in on_disk)
    for name, entry in manifest["files"].items():
        data = (saved / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name
    assert [p.name for p in saved.parent.iterdir()] == ["model"]  # no staging left behind


def test_saving_again_replaces_the_folder_whole(source: Predictor, saved: Path, demo_data):
    (saved / "stale.txt").write_text("from an older save")
    source.save(saved)
    assert not (saved / "stale.txt").exists()
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model"]
    assert _probabilities(saved, demo_data).shape[0] == 16


def test_save_refuses_a_folder_holding_something_else(source: Predictor, tmp_path: Path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(PlaitError, match="holds other files"):
        source.save(tmp_path / "run")
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_save_interrupted_after_the_weights_keeps_the_previous_folder(
    source: Predictor, saved: Path, demo_data: Path, monkeypatch: pytest.MonkeyPatch
):
    before = _probabilities(saved, demo_data)
    files = sorted(p.relative_to(saved) for p in saved.rglob("*"))
    wrote_weights = []

    def killed(folder: Path) -> None:  # the weights are written; the manifest never is
        wrote_weights.append((folder / "model.safetensors").is_file())
        raise KeyboardInterrupt("killed during the save")

    monkeypatch.setattr("plait.model_folder.write_manifest", killed)
    changed = Predictor(source.model, source.config, source.processors, source.labels)
    with torch.no_grad():
        next(changed.model.parameters()).add_(1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            changed.save(saved)
    finally:
        with torch.no_grad():
            next(changed.model.parameters()).sub_(1.0)
    assert wrote_weights == [True]
    assert sorted(p.relative_to(saved) for p in saved.rglob("*")) == files
    np.testing.assert_allclose(_probabilities(saved, demo_data), before)


def test_staging_folder_of_a_killed_save_is_reported_and_cleared(
    source: Predictor, saved: Path, demo_data: Path, caplog: pytest.LogCaptureFixture
):
    # `kill -9` after the weights: the staging folder is left without its manifest
    staging = saved.parent / ".model.staging"
    shutil.copytree(saved, staging)
    (staging / "manifest.json").unlink()
    (staging / "model.safetensors").write_bytes(b"\x00" * 10)

    assert _probabilities(saved, demo_data).shape[0] == 16  # the previous folder is intact
    assert "interrupted save" in caplog.text

    with pytest.raises(PlaitError, match=r"staging folder left by an interrupted save.*intact"):
        plait.load(staging)

    fresh = saved.parent / "fresh"
    shutil.move(staging, saved.parent / ".fresh.staging")
    with pytest.raises(PlaitError, match=r"fresh does not exist: the save .* was interrupted"):
        plait.load(fresh)

    source.save(saved)  # the next save clears what the killed one left
    assert not staging.exists()


def test_killed_between_the_renames_the_previous_folder_is_named_and_restored(
    source: Predictor, saved: Path, demo_data: Path
):
    previous = saved.parent / ".model.previous"
    saved.rename(previous)
    with pytest.raises(PlaitError, match=r"previous model is intact in .*\.model\.previous"):
        plait.load(saved)
    source.save(saved)
    assert not previous.exists()
    assert _probabilities(saved, demo_data).shape[0] == 16


def test_format_0_folder_without_manifest_loads(tmp_path: Path, demo_data: Path):
    folder = shutil.copytree(SAVED_V0 / "supervised", tmp_path / "v0")
    assert not (folder / "manifest.json").exists()
    assert _probabilities(folder, demo_data).shape[0] == 16


def test_editing_the_model_card_does_not_break_the_folder(saved: Path, demo_data: Path):
    (saved / "README.md").write_text("# my notes\n")
    assert _probabilities(saved, demo_data).shape[0] == 16


def test_a_changed_file_fails_its_checksum_and_is_named(saved: Path):
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped bit inside a tensor: same size, still parses
    weights.write_bytes(bytes(data))
    with pytest.raises(
        PlaitError, match=r"model\.safetensors changed since it was saved \(checksum"
    ):
        plait.load(saved)


def test_a_file_missing_from_the_manifest_is_named(saved: Path):
    (saved / "labels.json").unlink()
    with pytest.raises(PlaitError, match=r"labels\.json is missing"):
        plait.load(saved)


# ------------------------------------------------------------------------ broken folders
def _pickled_weights(folder: Path) -> None:
    state = {"weight": torch.zeros(2)}
    torch.save(state, folder / "model.safetensors")


def _legacy_pickle(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(pickle.dumps({"weight": [0.0, 1.0]}))


def _truncated(folder: Path) -> None:
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _header_only(folder: Path) -> None:
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:4])


def _empty(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"")


def _no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _no_processors(folder: Path) -> None:
    shutil.rmtree(folder / "processors")


def _no_caption_processor(folder: Path) -> None:
    shutil.rmtree(folder / "processors" / "caption")


def _corrupt_processor(folder: Path) -> None:
    (folder / "processors" / "image" / "plait_processor.json").write_text('{"kind": "ima')


def _corrupt_labels(folder: Path) -> None:
    (folder / "labels.json").write_text('{"task": "classification", "names": [')


def _labels_without_keys(folder: Path) -> None:
    (folder / "labels.json").write_text('{"colour": 1}')


def _corrupt_config(folder: Path) -> None:
    (folder / "config.yaml").write_text("name: x\nmodalities: [unclosed\n  - : :\n")


def _no_config(folder: Path) -> None:
    (folder / "config.yaml").unlink()


def _invalid_config(folder: Path) -> None:
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    raw["fusion"]["methd"] = "concat"
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))


def _other_architecture(folder: Path) -> None:
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    raw["fusion"]["dim"] = 8  # the saved tensors are 16 wide
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))


def _other_fusion(folder: Path) -> None:
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    raw["fusion"]["method"] = "gated"  # other parameter names
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))


def _corrupt_manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text("{not json")


BROKEN: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # case: (break the folder, file the error names, what it says)
    "torch.save weights": (_pickled_weights, "model.safetensors", "torch.save"),
    "pickled weights": (_legacy_pickle, "model.safetensors", "pickle"),
    "truncated weights": (_truncated, "model.safetensors", "truncated"),
    "4-byte weights": (_header_only, "model.safetensors", "truncated"),
    "empty weights": (_empty, "model.safetensors", "empty"),
    "no weights": (_no_weights, "model.safetensors", "missing"),
    "no processors": (_no_processors, "processors/", "missing"),
    "no caption processor": (_no_caption_processor, "processors/caption", "missing"),
    "corrupt processor": (_corrupt_processor, "processors/image", "corrupt"),
    "corrupt labels": (_corrupt_labels, "labels.json", "corrupt"),
    "labels without keys": (_labels_without_keys, "labels.json", "corrupt"),
    "corrupt config": (_corrupt_config, "config.yaml", "corrupt"),
    "no config": (_no_config, "config.yaml", "missing"),
    "invalid config": (_invalid_config, "config.yaml", "methd"),
    "other architecture": (_other_architecture, "model.safetensors", "another shape"),
    "other fusion": (_other_fusion, "model.safetensors", "missing"),
}


@pytest.fixture()
def format_0(tmp_path: Path) -> Path:
    """A copy of a folder without manifest: every file is checked on its own."""
    return shutil.copytree(SAVED_V0 / "supervised", tmp_path / "model")


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_folder_gives_one_error_naming_the_file(case: str, format_0: Path):
    breaks, file, says = BROKEN[case]
    breaks(format_0)
    with pytest.raises(PlaitError) as caught:
        plait.load(format_0)
    message = str(caught.value)
    assert file in message and says in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    "case", ["torch.save weights", "truncated weights", "no processors", "corrupt labels"]
)
def test_broken_folder_with_a_manifest_is_named_too(case: str, saved: Path):
    breaks, file, _ = BROKEN[case]
    breaks(saved)
    with pytest.raises(PlaitError, match=file.rstrip("/")):
        plait.load(saved)


def test_corrupt_manifest_is_named(saved: Path):
    _corrupt_manifest(saved)
    with pytest.raises(PlaitError, match=r"manifest\.json is corrupt"):
        plait.load(saved)


def test_a_safetensors_header_size_ending_in_0x80_is_not_taken_for_a_pickle(tmp_path: Path):
    """A pickle starts with byte 0x80; so does a safetensors file whose header is, e.g.,
    0x0d80 bytes long: that file is whole and must load."""
    from safetensors.torch import save_file

    from plait.model_folder import safetensors_problem

    path = tmp_path / "w.safetensors"
    for width in range(1, 400):  # header sizes grow with the names: one hits a low byte 0x80
        save_file({f"tensor_{'x' * width}": torch.zeros(2)}, str(path))
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert safetensors_problem(path) is None


def test_no_file_is_unpickled(format_0: Path, monkeypatch: pytest.MonkeyPatch):
    _pickled_weights(format_0)

    def refuse(*args, **kwargs):
        raise AssertionError("a file was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(PlaitError, match="never unpickles"):
        plait.load(format_0)


@pytest.mark.parametrize(
    "case",
    [
        "torch.save weights",
        "truncated weights",
        "empty weights",
        "no processors",
        "corrupt labels",
        "corrupt config",
    ],
)
def test_plait_predict_on_a_broken_folder_prints_one_line_and_exits_2(
    case: str, format_0: Path, demo_data: Path, tmp_path: Path
):
    breaks, file, says = BROKEN[case]
    breaks(format_0)
    out = tmp_path / "predictions.csv"
    result = CliRunner().invoke(
        app,
        ["predict", str(format_0), str(demo_data / "test.csv"), "-o", str(out)],
        terminal_width=200,
    )
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and file in errors[0] and says in errors[0], result.output
    assert not out.exists()


def test_plait_predict_on_a_missing_folder_after_a_killed_save(
    saved: Path, demo_data: Path, tmp_path: Path
):
    shutil.copytree(saved, saved.parent / ".model.staging")
    shutil.rmtree(saved)
    result = CliRunner().invoke(
        app,
        ["predict", str(saved), str(demo_data / "test.csv"), "-o", str(tmp_path / "p.csv")],
        terminal_width=200,
    )
    assert result.exit_code == 2, result.output
    assert "interrupted" in result.output and "Traceback" not in result.output


def test_aligned_folder_saves_with_a_manifest_and_embeds_as_before(tmp_path: Path, demo_data: Path):
    source = plait.load(SAVED_V0 / "aligned")
    saved = source.save(tmp_path / "aligned")
    assert "model.safetensors" in json.loads((saved / "manifest.json").read_text())["files"]
    for modality in source.pair:
        ids, vectors = source.embed(demo_data / "test.csv", modality)
        again_ids, again = plait.load(saved).embed(demo_data / "test.csv", modality)
        assert again_ids == ids
        np.testing.assert_allclose(again, vectors, atol=1e-6)


KILLED_SAVE = """
import sys, time
from pathlib import Path
import plait, plait.model_folder as mf

def stall(folder):  # the weights and every other file are written; the manifest is next
    Path(sys.argv[3]).write_text("ready")
    time.sleep(600)

mf.write_manifest = stall
plait.load(sys.argv[1]).save(sys.argv[2])
"""


def test_kill_9_during_a_save_leaves_the_previous_folder_loadable(
    saved: Path, demo_data: Path, tmp_path: Path
):
    import os
    import signal
    import subprocess
    import sys
    import time

    before = _probabilities(saved, demo_data)
    ready = tmp_path / "ready"
    script = tmp_path / "save.py"
    script.write_text(KILLED_SAVE)
    process = subprocess.Popen(
        [sys.executable, str(script), str(SAVED_V0 / "supervised"), str(saved), str(ready)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, "the saving process ended early"
            assert time.monotonic() < deadline, "the save never reached the manifest"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    staging = saved.parent / ".model.staging"
    assert (staging / "model.safetensors").is_file() and not (staging / "manifest.json").exists()
    np.testing.assert_allclose(_probabilities(saved, demo_data), before)
    with pytest.raises(PlaitError, match="interrupted save"):
        plait.load(staging)
