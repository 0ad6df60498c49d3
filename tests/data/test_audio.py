from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from plait.config import AudioModality
from plait.data.audio import (
    AudioProcessor,
    check_audio,
    decode_audio,
    load_audio,
    log_mel,
    mel_filterbank,
    mel_frequencies,
    power_spectrogram,
    resample,
)


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


def test_stereo_44k_resampled_to_16k_keeps_pitch(media):
    wave = load_audio(media / "stereo44k.wav", 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) <= 1
    assert abs(_peak_hz(wave, 16000) - 440) <= 1


def test_flac_and_linear_fallback(media):
    wave = load_audio(media / "tone16k.flac", 8000)
    assert abs(len(wave) - 4000) <= 1
    assert abs(_peak_hz(wave, 8000) - 440) <= 2
    up = resample(np.sin(np.linspace(0, 100, 1000)), 1000, 3000)
    assert len(up) == 3000


@pytest.mark.parametrize(
    ("name", "reason"),
    [("empty.wav", "0 frames"), ("bad.wav", "cannot decode"), ("none.wav", "not found")],
)
def test_bad_audio(media, name, reason):
    with pytest.raises(ValueError, match=reason):
        load_audio(media / name, 16000)
    with pytest.raises(ValueError, match=reason):
        check_audio(media / name)


def test_decode_audio_reads_an_open_file_like_load_audio_reads_its_path(media):
    """Builders decode archive members from memory (AV-MNIST's FSDD tar) the same way."""
    import io

    data = (media / "stereo44k.wav").read_bytes()
    from_bytes = decode_audio(io.BytesIO(data), 16000, "member.wav")
    assert np.array_equal(from_bytes, load_audio(media / "stereo44k.wav", 16000))
    with pytest.raises(ValueError, match="cannot decode audio file member.wav"):
        decode_audio(io.BytesIO(b"not audio"), 16000, "member.wav")


def test_power_spectrogram_is_the_stft_of_log_mel_and_takes_batches():
    rate, n_fft, hop = 8000, 256, 72
    t = np.arange(8000) / rate
    waves = torch.from_numpy(np.stack([np.sin(2 * np.pi * f * t) for f in (500, 1500)]))
    power = power_spectrogram(waves.float(), n_fft, hop)  # [2, F, frames]
    assert power.shape == (2, n_fft // 2 + 1, 8000 // hop + 1)
    bins = power[:, :, 50].argmax(dim=1).tolist()
    assert bins == [round(f / rate * n_fft) for f in (500, 1500)]
    assert torch.equal(power[1], power_spectrogram(waves[1].float(), n_fft, hop))
    mel = mel_filterbank(rate, n_fft, 40) @ power[0]
    assert torch.equal(torch.log(mel + 1e-6), log_mel(waves[0], rate, n_fft, hop, 40))


def test_log_mel_shape_and_tone_bin():
    rate, n_mels = 16000, 40
    t = torch.arange(rate) / rate
    wave = torch.sin(2 * torch.pi * 1000 * t)
    mel = log_mel(wave, rate, n_fft=512, hop_length=160, n_mels=n_mels)
    assert mel.shape == (n_mels, rate // 160 + 1)
    expected = int(np.abs(mel_frequencies(n_mels, rate) - 1000).argmin())
    assert int(mel.mean(1).argmax()) == expected
    bank = mel_filterbank(rate, 512, n_mels)
    assert bank.shape == (n_mels, 257) and bank.max() <= 1.0 + 1e-6


def test_scratch_processor_pads_crops_and_normalises(media):
    config = AudioModality(column="a", duration=1.0, n_mels=32, hop_length=160)
    processor = AudioProcessor(config)
    short = processor.load(str(media / "tone16k.flac"), media)  # 0.5 s -> padded
    out = processor.transform(short, train=False, generator=torch.Generator())
    assert out["features"].shape == (1, 32, 101) == processor.placeholder()["features"].shape
    assert abs(out["features"].mean().item()) < 1e-4
    assert abs(out["features"].std().item() - 1) < 1e-2

    long = processor.load(str(media / "long16k.wav"), media)  # 3 s -> cropped
    a = processor.transform(long, True, torch.Generator().manual_seed(0))["features"]
    b = processor.transform(long, True, torch.Generator().manual_seed(0))["features"]
    c = processor.transform(long, True, torch.Generator().manual_seed(5))["features"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    centre = [processor.transform(long, False, torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert torch.equal(centre[0]["features"], centre[1]["features"])


def test_spec_augment_only_in_training(media):
    config = AudioModality(column="a", duration=0.5, n_mels=32, spec_augment=True, time_masks=2)
    processor = AudioProcessor(config)
    wave = processor.load(str(media / "tone16k.flac"), media)
    plain = processor.transform(wave, False, torch.Generator().manual_seed(0))["features"]
    masked = processor.transform(wave, True, torch.Generator().manual_seed(3))["features"]
    again = processor.transform(wave, True, torch.Generator().manual_seed(3))["features"]
    assert torch.equal(masked, again)
    assert not torch.equal(plain, masked)
    zero_cols = (masked[0] == 0).all(0).sum() + (masked[0] == 0).all(1).sum()
    assert zero_cols > 0
    assert (plain[0] == 0).all(0).sum() == 0


def test_numpy_waveforms_use_config_rate():
    processor = AudioProcessor(AudioModality(column="a", sample_rate=8000, duration=0.5))
    wave = processor.load(np.zeros((2, 4000), dtype=np.float32), None)  # [channels, samples]
    assert wave.shape == (4000,)
    with pytest.raises(ValueError, match="NaN"):
        processor.load(np.array([0.0, np.nan]), None)


def test_hub_wav2vec2_extractor(tmp_path, media):
    from transformers import Wav2Vec2FeatureExtractor

    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(tmp_path / "fe")
    config = AudioModality(
        column="a", duration=1.0, encoder={"type": "huggingface", "model": str(tmp_path / "fe")}
    )
    processor = AudioProcessor(config, hub_model=str(tmp_path / "fe"))
    short = processor.transform(
        processor.load(str(media / "tone16k.flac"), media), False, torch.Generator()
    )
    full = processor.transform(
        processor.load(str(media / "long16k.wav"), media), False, torch.Generator()
    )
    assert set(short) == {"input_values", "attention_mask"}
    assert short["input_values"].shape == (8000,) and full["input_values"].shape == (16000,)
    batch = processor.collate([short, full, processor.placeholder()])
    assert batch["input_values"].shape == (3, 16000)
    assert batch["attention_mask"][0].sum() == 8000 and batch["attention_mask"][1].sum() == 16000

    processor.save(tmp_path / "saved")
    restored = AudioProcessor.load_state(tmp_path / "saved")
    again = restored.transform(
        restored.load(str(media / "tone16k.flac"), media), False, torch.Generator()
    )
    assert torch.equal(again["input_values"], short["input_values"])


def test_hub_whisper_extractor(tmp_path):
    from transformers import WhisperFeatureExtractor

    WhisperFeatureExtractor().save_pretrained(tmp_path / "fe")
    config = AudioModality(
        column="a", encoder={"type": "huggingface", "model": str(tmp_path / "fe")}
    )
    processor = AudioProcessor(config, hub_model=str(tmp_path / "fe"))
    out = processor.transform(np.zeros(8000, dtype=np.float32), False, torch.Generator())
    assert set(out) == {"input_features"} and out["input_features"].shape == (80, 3000)


def test_wav_written_by_soundfile_roundtrip(tmp_path):
    sf.write(tmp_path / "x.wav", np.zeros(100, dtype=np.float32), 16000)
    assert load_audio(tmp_path / "x.wav", 16000).shape == (100,)


# ------------------------------------------------------------ non-finite and long files


def _float_file(path, rate: int = 8000, seconds: float = 2.0, bad_at: float | None = None,
                bad=np.nan, subtype: str = "FLOAT", channels: int = 1):  # fmt: skip
    t = np.arange(int(seconds * rate)) / rate
    wave = np.tile(0.5 * np.sin(2 * np.pi * 300 * t)[:, None], (1, channels))  # [frames, ch]
    if bad_at is not None:
        wave[int(bad_at * rate), channels - 1] = bad
    sf.write(path, wave, rate, subtype=subtype)
    return path


@pytest.mark.parametrize(
    ("name", "subtype", "bad", "word"),
    [
        ("nan.wav", "FLOAT", np.nan, "NaN"),
        ("inf.wav", "DOUBLE", np.inf, "infinite"),
        ("nan.aiff", "FLOAT", np.nan, "NaN"),
    ],
)
def test_non_finite_samples_anywhere_in_a_file_are_refused(tmp_path, name, subtype, bad, word):
    path = _float_file(tmp_path / name, bad_at=1.25, bad=bad, subtype=subtype, channels=2)
    expected = f"holds {word} samples \\(first at 1.25 s\\)"
    with pytest.raises(ValueError, match=expected) as info:
        check_audio(path)  # the whole file, although the bad sample is past the first block
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match=expected):
        load_audio(path, 8000)
    processor = AudioProcessor(AudioModality(column="a", sample_rate=8000, duration=0.5))
    with pytest.raises(ValueError, match=expected):
        processor.check(str(path), tmp_path)
    # training reads a window; one holding the bad sample is refused too, not turned to NaN
    late = AudioProcessor(AudioModality(column="a", sample_rate=8000, duration=1.0))
    with pytest.raises(ValueError, match=expected):  # centre crop: 0.5 s to 1.5 s
        late.transform(late.load(str(path), tmp_path), False, torch.Generator())


def test_nan_audio_row_is_a_row_problem(tmp_path, good_rows, make_config):
    import pandas as pd

    from plait.data import prepare_data
    from plait.errors import DataError

    nan_file = _float_file(tmp_path / "nan.wav", rate=16000, bad_at=1.25)
    rows = [dict(r) for r in good_rows]
    rows[4]["audio"] = str(nan_file)
    pd.DataFrame(rows).to_csv(tmp_path / "train.csv", index=False)
    config = make_config(tmp_path / "train.csv", data={"split": {"valid": 0.0, "test": 0.0}})
    with pytest.raises(DataError) as info:
        prepare_data(config)
    [problem] = info.value.problems
    assert (problem.row, problem.column) == (5, "audio")
    assert "holds NaN samples (first at 1.25 s)" in problem.reason
    skipping = config.model_copy(
        update={"data": config.data.model_copy(update={"on_error": "skip"})}
    )
    prepared = prepare_data(skipping)
    assert 5 not in prepared.train.row_numbers and len(prepared.train) == 11


@pytest.mark.parametrize("sample_rate", [8000, 16000], ids=["same-rate", "resampled"])
def test_a_long_file_is_read_one_window_at_a_time(tmp_path, monkeypatch, sample_rate):
    import tracemalloc

    rate, seconds = 8000, 180.0  # three minutes
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(path, rng.standard_normal(int(rate * seconds)).astype(np.float32) * 0.1, rate)
    whole_bytes = int(sample_rate * seconds) * 4  # float32 at the processor's rate
    processor = AudioProcessor(AudioModality(column="a", sample_rate=sample_rate, duration=1.0))

    # the same samples as decoding the whole file and cropping it (train and eval crops)
    whole = load_audio(path, sample_rate)
    for train, seed in ((True, 0), (True, 7), (False, 0)):
        windowed = processor.crop(processor.load(str(path), tmp_path), train,
                                  torch.Generator().manual_seed(seed))  # fmt: skip
        expected = processor.crop(whole, train, torch.Generator().manual_seed(seed))
        assert np.array_equal(windowed, expected)
    del whole

    frames_read: list[int] = []
    real_read = sf.read

    def spy(*args, **kwargs):
        data, file_rate = real_read(*args, **kwargs)
        frames_read.append(len(data))
        return data, file_rate

    monkeypatch.setattr(sf, "read", spy)
    tracemalloc.start()
    try:
        raw = processor.load(str(path), tmp_path)
        features = processor.transform(raw, True, torch.Generator().manual_seed(3))
        _, peak_load = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        processor.check(str(path), tmp_path)  # streams the whole file in blocks
        _, peak_check = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert features["features"].shape == (1, 64, sample_rate // 160 + 1)
    assert frames_read and max(frames_read) <= 1.1 * rate  # one second, not three minutes
    # decoding the whole file would take at least `whole_bytes`
    assert max(peak_load, peak_check) < whole_bytes / 4, (peak_load, peak_check)


def test_max_duration_limits_file_length(tmp_path):
    path = _float_file(tmp_path / "long.wav", seconds=90.0)
    short = AudioProcessor(AudioModality(column="a", sample_rate=8000, max_duration=60))
    reason = r"90.0 s long, over the max_duration limit of 60 s \(raise `max_duration`"
    with pytest.raises(ValueError, match=reason):
        short.check(str(path), tmp_path)
    with pytest.raises(ValueError, match=reason):
        short.load(str(path), tmp_path)
    default = AudioProcessor(AudioModality(column="a", sample_rate=8000))
    assert default.config.max_duration == 3600
    default.check(str(path), tmp_path)


def test_the_window_of_a_long_file_is_checked_when_read(tmp_path):
    # 40 s: past WHOLE_FILE_SECONDS, so `load` reads the header and `transform` the window
    path = _float_file(tmp_path / "long_nan.wav", seconds=40.0, bad_at=20.0)
    processor = AudioProcessor(AudioModality(column="a", sample_rate=8000, duration=1.0))
    raw = processor.load(str(path), tmp_path)  # the header only: nothing decoded yet
    with pytest.raises(ValueError, match=r"holds NaN samples \(first at 20.00 s\)"):
        processor.transform(raw, False, torch.Generator())  # centre crop: 19.5 s to 20.5 s
    with pytest.raises(ValueError, match=r"first at 20.00 s"):
        processor.check(str(path), tmp_path)
    # a short file is decoded whole by `load`, which refuses it before any transform
    short = _float_file(tmp_path / "short_nan.wav", seconds=3.0, bad_at=0.1)
    with pytest.raises(ValueError, match=r"first at 0.10 s"):
        processor.load(str(short), tmp_path)


@pytest.mark.parametrize("target", [16000, 22050, 8000])
def test_windowed_reads_equal_crops_of_the_whole_file(media, monkeypatch, target):
    """Any rate pair: the window read on the polyphase grid, with the filter's margin, is
    sample for sample the crop of the fully decoded and resampled file."""
    import plait.data.audio as audio

    monkeypatch.setattr(audio, "WHOLE_FILE_SECONDS", 0.0)  # read every file lazily
    processor = AudioProcessor(AudioModality(column="a", sample_rate=target, duration=0.25))
    whole = load_audio(media / "stereo44k.wav", target)  # 1 s, 44.1 kHz stereo
    lazy = processor.load(str(media / "stereo44k.wav"), media)
    assert isinstance(lazy, audio.AudioFile)
    for train, seed in [(True, s) for s in range(6)] + [(False, 0)]:
        expected = processor.crop(whole, train, torch.Generator().manual_seed(seed))
        windowed = processor.crop(lazy, train, torch.Generator().manual_seed(seed))
        assert np.array_equal(windowed, expected), (train, seed)
