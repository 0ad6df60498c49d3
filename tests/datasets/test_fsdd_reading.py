"""Reading FSDD for AV-MNIST and digits through Plait's own audio decoder (no real data)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from plait.datasets.avmnist import load_fsdd
from plait.errors import DataError


def _fsdd(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir()
    rows = []
    with tarfile.open(folder / "recordings.tar.xz", "w:xz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
            digit, speaker, index = Path(name).stem.split("_")
            rows.append({"file": name, "digit": int(digit), "speaker": speaker, "index": index})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def _wav(samples: np.ndarray, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_recordings_are_decoded_to_8k_float_mono(tmp_path):
    pcm = np.array([0, 16384, -32768, 32767, 100], dtype=np.int16)
    stereo = np.stack([pcm, pcm], axis=1).astype(np.float32) / 32768.0
    folder = _fsdd(
        tmp_path / "fsdd",
        {
            "recordings/1_jackson_0.wav": _wav(pcm.astype(np.float32) / 32768.0),
            "recordings/0_theo_3.wav": _wav(stereo),
            "recordings/2_lucas_1.wav": _wav(np.zeros(16000, np.float32), rate=16000),
        },
    )
    table, waves = load_fsdd(folder)
    assert table["name"].tolist() == ["0_theo_3", "1_jackson_0", "2_lucas_1"]  # sorted
    assert np.array_equal(waves[1], pcm.astype(np.float32) / 32768.0)
    assert np.array_equal(waves[0], waves[1])  # stereo mixed down
    assert waves[2].dtype == np.float32 and len(waves[2]) == 8000  # resampled to 8 kHz


def test_an_unreadable_recording_is_a_data_error_naming_it(tmp_path):
    folder = _fsdd(
        tmp_path / "fsdd",
        {
            "recordings/1_jackson_0.wav": _wav(np.zeros(100, np.float32)),
            "recordings/3_nicolas_7.wav": b"RIFF not really a wav file",
        },
    )
    with pytest.raises(DataError, match=r"FSDD recording recordings/3_nicolas_7\.wav"):
        load_fsdd(folder)
