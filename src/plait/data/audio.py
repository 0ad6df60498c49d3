"""Audio: decoding with soundfile, mono mixdown, resampling, log-mel features, SpecAugment.

No torchaudio: the mel filterbank is built here (HTK mel scale, mel = 2595 log10(1 + f/700),
triangular filters of unit peak between 0 Hz and Nyquist) and the spectrogram comes from
`torch.stft`. Pretrained encoders use their own Hugging Face feature extractor instead.

Long files cost no more than short ones: row validation streams the whole file once in
blocks (every sample must be finite), and training or prediction reads only the window
it crops (`AudioFile`, `read_window`), never the whole recording.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from plait.config import AudioModality
from plait.data.arrays import is_array_cell, load_array_cell
from plait.data.augment import augment_features, augment_wave
from plait.data.augment import spec_augment as spec_augment  # re-exported, its old home
from plait.data.processor_base import Processor, resolve_path

#: frames per block when a whole file is streamed for validation (256 KiB per channel)
SCAN_BLOCK = 65536

#: files up to this long are decoded whole by `AudioProcessor.load` (a few MiB at most);
#: longer ones are read one cropped window at a time
WHOLE_FILE_SECONDS = 30.0

_DECODE_ERRORS = (sf.SoundFileError, RuntimeError, TypeError, ValueError)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode a whole file to float32 mono at `sample_rate`: [samples].

    Raises:
        ValueError: missing file, undecodable content, a file with 0 frames, or NaN /
            infinite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"audio file not found: {path}")
    return decode_audio(str(path), sample_rate, path)


def decode_audio(source: str | BinaryIO, sample_rate: int, name: Any) -> np.ndarray:
    """Decode a file path or an open binary file (such as a member of an archive) to
    float32 mono at `sample_rate`: [samples]. `name` is what error messages call it.

    Raises:
        ValueError: undecodable content, 0 frames, or NaN / infinite samples.
    """
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True)  # [frames, channels]
    except _DECODE_ERRORS as exc:
        raise ValueError(f"cannot decode audio file {name}: {exc}") from None
    if data.shape[0] == 0:
        raise ValueError(f"audio file {name} is empty (0 frames)")
    check_finite_samples(data, rate, name)
    return resample(data.mean(axis=1), rate, sample_rate)


@dataclass(frozen=True)
class AudioFile:
    """An audio file whose header has been read but whose samples have not:
    `AudioProcessor.crop` decodes only the window it uses."""

    path: Path
    frames: int
    rate: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def open_audio(path: str | Path, max_duration: float | None = None) -> AudioFile:
    """Read the header: the file exists, parses, has frames and is not over `max_duration`
    seconds (None: no limit).

    Raises:
        ValueError: with a reason naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except _DECODE_ERRORS as exc:
        raise ValueError(f"cannot decode audio file {path}: {exc}") from None
    if info.frames <= 0:
        raise ValueError(f"audio file {path} is empty (0 frames)")
    audio = AudioFile(path, int(info.frames), int(info.samplerate))
    if max_duration is not None and audio.seconds > max_duration:
        raise ValueError(
            f"audio file {path} is {audio.seconds:.1f} s long, over the max_duration limit "
            f"of {max_duration:g} s (raise `max_duration` for this modality if the file is "
            "meant to be this long)"
        )
    return audio


def check_audio(path: str | Path, max_duration: float | None = None) -> AudioFile:
    """Validate a whole file once: the header parses, it has frames, it is not over
    `max_duration` seconds, every block decodes and every sample is finite.

    The file is streamed in blocks of `SCAN_BLOCK` frames, so an hour-long file costs
    no more memory than a one-second one.
    """
    audio = open_audio(path, max_duration)
    seen = 0
    try:
        with sf.SoundFile(str(audio.path)) as handle:
            for block in handle.blocks(SCAN_BLOCK, dtype="float32", always_2d=True):
                check_finite_samples(block, audio.rate, audio.path, offset=seen)
                seen += len(block)
    except _AudioError:
        raise
    except _DECODE_ERRORS as exc:
        raise ValueError(f"cannot decode audio file {audio.path}: {exc}") from None
    if seen == 0:
        raise ValueError(f"audio file {audio.path} is empty (0 frames)")
    return audio


def check_finite_samples(data: np.ndarray, rate: int, path: Any, offset: int = 0) -> None:
    """Raise ValueError naming the first NaN or infinite sample of `data` [frames(, ch)]
    (`offset`: frames before `data` in the file, so the time is the file's own)."""
    finite = np.isfinite(data)
    if finite.all():
        return
    frame = int(np.argmin(finite.reshape(len(data), -1).all(axis=1)))
    kind = "NaN" if np.isnan(data[frame]).any() else "infinite"
    seconds = (offset + frame) / rate
    raise _AudioError(f"audio file {path} holds {kind} samples (first at {seconds:.2f} s)")


class _AudioError(ValueError):
    """A reason already phrased for the user (passed through unchanged)."""


def read_window(audio: AudioFile, start: int, stop: int) -> np.ndarray:
    """Frames [start, stop) of `audio`, mixed to mono: float32 [stop - start] at the
    file's own rate; only those frames are decoded (soundfile seeks to `start`).

    Raises:
        ValueError: the file cannot be decoded any more, or the window holds NaN / Inf.
    """
    try:
        data, _ = sf.read(
            str(audio.path), start=start, stop=stop, dtype="float32", always_2d=True
        )  # [frames, channels]
    except _DECODE_ERRORS as exc:
        raise ValueError(f"cannot decode audio file {audio.path}: {exc}") from None
    if data.shape[0] == 0 and start == 0:
        raise ValueError(f"audio file {audio.path} is empty (0 frames)")
    check_finite_samples(data, audio.rate, audio.path, offset=start)
    return data.mean(axis=1)


def resampled_length(frames: int, orig_rate: int, target_rate: int) -> int:
    """How many samples `resample` returns for `frames` samples (as scipy's resample_poly
    or the linear fallback computes it)."""
    if orig_rate == target_rate or frames == 0:
        return frames
    if _resample_poly() is None:
        return max(1, round(frames * target_rate / orig_rate))
    g = math.gcd(int(orig_rate), int(target_rate))
    up, down = target_rate // g, orig_rate // g
    return -(-frames * up // down)


def read_resampled(audio: AudioFile, target_rate: int, start: int, length: int) -> np.ndarray:
    """Samples [start, start + length) of the whole file resampled to `target_rate`,
    decoding only the frames they depend on: [<= length] float32.

    With scipy the result equals `resample(whole file)[start:start + length]`: the frames
    read begin on a multiple of the polyphase decimation factor (so the output grid is the
    whole file's) and reach past the window by more than the filter's half-length.
    """
    if audio.rate == target_rate:
        return read_window(audio, start, min(audio.frames, start + length))
    total = resampled_length(audio.frames, audio.rate, target_rate)
    if start <= 0 and length >= total:
        return resample(read_window(audio, 0, audio.frames), audio.rate, target_rate)
    g = math.gcd(int(audio.rate), int(target_rate))
    up, down = target_rate // g, audio.rate // g
    margin = 10 * max(up, down) // up + 2  # the filter's half-length in file frames, and more
    first = max(0, (start * down // up - margin) // down * down)  # a multiple of `down`
    last = min(audio.frames, -(-(start + length) * down // up) + margin)
    chunk = resample(read_window(audio, first, last), audio.rate, target_rate)
    offset = start - first * up // down  # output index of `start` within the chunk
    return chunk[offset : offset + length]


def _resample_poly() -> Any:
    try:
        from scipy.signal import resample_poly
    except ImportError:  # linear interpolation keeps Plait working without scipy
        return None
    return resample_poly


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """[samples] at `orig_rate` -> [samples'] float32 at `target_rate` (polyphase if scipy)."""
    wave = np.asarray(wave, dtype=np.float32)
    if orig_rate == target_rate or len(wave) == 0:
        return wave
    resample_poly = _resample_poly()
    if resample_poly is None:
        n_out = max(1, round(len(wave) * target_rate / orig_rate))
        times = np.arange(n_out) * (orig_rate / target_rate)
        return np.interp(times, np.arange(len(wave)), wave).astype(np.float32)
    g = math.gcd(int(orig_rate), int(target_rate))
    return resample_poly(wave, target_rate // g, orig_rate // g).astype(np.float32)


# ------------------------------------------------------------------------ log-mel


def hz_to_mel(hz: Any) -> Any:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: Any) -> Any:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_frequencies(n_mels: int, sample_rate: int) -> np.ndarray:
    """Centre frequency (Hz) of each of the `n_mels` filters: [n_mels]."""
    points = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    return points[1:-1]


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> Tensor:
    """Triangular filters: [n_mels, n_fft // 2 + 1], each peaking at 1 at its centre."""
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)  # [F] Hz of each FFT bin
    points = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = points[:-2, None], points[1:-1, None], points[2:, None]
    rising = (bins[None, :] - lower) / np.maximum(centre - lower, 1e-10)
    falling = (upper - bins[None, :]) / np.maximum(upper - centre, 1e-10)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    return torch.from_numpy(weights.astype(np.float32))


def power_spectrogram(wave: Tensor, n_fft: int, hop_length: int) -> Tensor:
    """[..., samples] -> |STFT|^2: [..., n_fft // 2 + 1, frames], frames = samples // hop + 1.

    Periodic Hann window, frames centred on every `hop_length`-th sample (n_fft // 2 zeros
    padded at each end). `log_mel` and the AV-MNIST builder share it.
    """
    window = torch.hann_window(n_fft, device=wave.device)
    spec = torch.stft(
        wave.float(),
        n_fft=n_fft,
        hop_length=hop_length,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )  # [..., F, frames]
    return spec.abs().pow(2)


def log_mel(wave: Tensor, sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> Tensor:
    """[samples] -> log(mel power + 1e-6): [n_mels, frames], frames = samples // hop + 1."""
    power = power_spectrogram(wave, n_fft, hop_length)  # [F, frames]
    mel = mel_filterbank(sample_rate, n_fft, n_mels).to(wave.device) @ power  # [n_mels, frames]
    return torch.log(mel + 1e-6)


# ----------------------------------------------------------------------- processor


class AudioProcessor(Processor):
    """Audio cell -> features.

    Scratch encoders: {"features": [1, n_mels, frames]}, log-mel normalised per utterance.
    Hub encoders: the feature extractor's own keys at its own sampling rate (`input_values` [+ `attention_mask`] for
    wav2vec2/HuBERT, `input_values` for AST, `input_features` for Whisper); they get the
    waveform transforms, not SpecAugment (their features are made by the extractor).
    Clips are cropped to `config.duration` (random window in training, centre in eval);
    scratch clips are also zero-padded to it, hub clips are padded by the collate.
    Training-time augmentation (`config.transforms`: the `augment` list, plus SpecAugment
    when the older switch `spec_augment` is on), in list order: `time_shift` and `gain` on
    the cropped waveform, `spec_augment` on the normalised log-mel.

    Files: `check` (row validation) streams the whole file once and refuses NaN or
    infinite samples and files over `config.max_duration` seconds. `load` decodes a file
    of up to `WHOLE_FILE_SECONDS` whole (and refuses NaN there too); of a longer one it
    reads only the header (an `AudioFile`), and `transform` decodes only the window it
    crops, checked again, so a one-hour file costs what a short one does.

    Array cells (`file.npy#row`, see `plait.data.arrays`): a 1-D row is a waveform at
    `config.sample_rate` and goes the way of a decoded file. A 2-D row is a PRECOMPUTED
    spectrogram [frequency or mel bins, time frames] for scratch encoders: the log-mel step
    is skipped, its bin count must equal `n_mels`, it is normalised per utterance like a
    computed log-mel and gets SpecAugment in training (no waveform transforms: there is no
    waveform), and it is used at
    its full length (no cropping; the collate pads shorter ones with zeros). For a missing
    value to have the same shape, pick `duration` and `hop_length` so that
    `duration * sample_rate // hop_length + 1` equals the frame count (AV-MNIST: 8000 Hz,
    1.0 s, hop 72 -> 112 frames).
    """

    kind = "audio"

    def __init__(self, config: AudioModality, hub_model: str | None = None) -> None:
        super().__init__(config, hub_model)
        self.extractor: Any = None
        self.sample_rate = config.sample_rate
        if hub_model:
            from transformers import AutoFeatureExtractor

            self.extractor = AutoFeatureExtractor.from_pretrained(hub_model)
            self.sample_rate = int(getattr(self.extractor, "sampling_rate", config.sample_rate))
        self._placeholder: dict[str, Tensor] | None = None

    @property
    def num_samples(self) -> int:
        """Samples per clip after cropping/padding."""
        return max(1, round(self.config.duration * self.sample_rate))

    @property
    def num_frames(self) -> int:
        """Frames of the scratch log-mel features."""
        return self.num_samples // self.config.hop_length + 1

    # --------------------------------------------------------------------- per sample
    def load(self, value: Any, base_dir: Path) -> np.ndarray | AudioFile:
        """An in-memory waveform, array-cell row or file of up to `WHOLE_FILE_SECONDS` as
        an array (every sample checked); a longer file as an `AudioFile` whose samples
        `crop` reads, only the window it keeps (the same samples either way)."""
        if is_array_cell(value):
            return self._from_array_cell(load_array_cell(value, base_dir), value)
        if isinstance(value, np.ndarray | list | Tensor):
            wave = np.asarray(value, dtype=np.float32)
            if wave.ndim == 2:  # [channels, samples] or [samples, channels]
                wave = wave.mean(axis=int(np.argmin(wave.shape)))
            if wave.ndim != 1 or wave.size == 0:
                raise ValueError(f"audio array must be a non-empty waveform, got {wave.shape}")
            if not np.isfinite(wave).all():
                raise ValueError("audio array contains NaN or infinite values")
            return resample(wave, self.config.sample_rate, self.sample_rate)
        audio = open_audio(resolve_path(value, base_dir), self.config.max_duration)
        if audio.seconds > WHOLE_FILE_SECONDS:
            return audio  # `crop` decodes only its window
        return resample(read_window(audio, 0, audio.frames), audio.rate, self.sample_rate)

    def _from_array_cell(self, array: np.ndarray, cell: str) -> np.ndarray:
        """An array-cell row -> a 1-D waveform at `self.sample_rate`, or a 2-D spectrogram."""
        where = f"array cell {cell.strip()!r}"
        if array.ndim not in (1, 2):
            raise ValueError(
                f"{where}: an audio row must be a 1-D waveform or a 2-D spectrogram "
                f"[bins, frames], got shape {tuple(array.shape)}"
            )
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{where}: audio rows must be numbers, got dtype {array.dtype}")
        values = np.asarray(array, dtype=np.float32)
        if values.size == 0:
            raise ValueError(f"{where}: the row is empty")
        if not np.isfinite(values).all():
            raise ValueError(f"{where}: the row contains NaN or infinite values")
        if values.ndim == 1:
            return resample(values, self.config.sample_rate, self.sample_rate)
        if self.extractor is not None:
            raise ValueError(
                f"{where}: a precomputed spectrogram cannot feed the pretrained model "
                f"'{self.hub_model}', which reads waveforms; use a scratch audio encoder"
            )
        if values.shape[0] != self.config.n_mels:
            raise ValueError(
                f"{where}: the precomputed spectrogram has {values.shape[0]} frequency rows "
                f"but `n_mels` is {self.config.n_mels}; set `n_mels: {values.shape[0]}`"
            )
        return values  # [bins, frames]

    def check(self, value: Any, base_dir: Path) -> None:
        if isinstance(value, np.ndarray | list | Tensor) or is_array_cell(value):
            self.load(value, base_dir)
        else:
            check_audio(resolve_path(value, base_dir), self.config.max_duration)

    def crop(
        self, wave: np.ndarray | AudioFile, train: bool, generator: torch.Generator
    ) -> np.ndarray:
        """Crop to `num_samples` (random offset in training, centre otherwise).

        An `AudioFile` is cropped before it is decoded: the offset is drawn from its
        resampled length exactly as for the decoded array, and only the frames of that
        window are read, so a long file gives the same samples at a fraction of the cost.
        """
        if isinstance(wave, AudioFile):
            length = resampled_length(wave.frames, wave.rate, self.sample_rate)
        else:
            length = len(wave)
        excess = length - self.num_samples
        if excess <= 0:
            start = 0
        elif train:
            start = int(torch.randint(0, excess + 1, (), generator=generator))
        else:
            start = excess // 2
        if isinstance(wave, AudioFile):
            return read_resampled(wave, self.sample_rate, start, self.num_samples)
        return wave[start : start + self.num_samples] if excess > 0 else wave

    def transform(
        self, raw: np.ndarray | AudioFile, train: bool, generator: torch.Generator
    ) -> dict[str, Tensor]:
        cfg = self.config
        if (
            isinstance(raw, np.ndarray) and raw.ndim == 2
        ):  # a precomputed spectrogram from an array cell
            mel = torch.from_numpy(np.array(raw, dtype=np.float32))  # [bins, frames]
        else:
            wave = self.crop(raw, train, generator)
            if train:
                wave = augment_wave(wave, self.sample_rate, cfg.transforms, generator)
            if self.extractor is not None:
                return self._hub_features(wave)
            padded = np.zeros(self.num_samples, dtype=np.float32)
            padded[: len(wave)] = wave
            mel = log_mel(
                torch.from_numpy(padded), self.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels
            )
        mel = (mel - mel.mean()) / (mel.std() + 1e-5)  # [n_mels, frames]
        if train:
            mel = augment_features(mel, cfg.transforms, generator)
        return {"features": mel.unsqueeze(0)}  # [1, n_mels, frames]

    def _hub_features(self, wave: np.ndarray) -> dict[str, Tensor]:
        minimum = min(self.num_samples, self.sample_rate // 10)  # conv front-ends need ~25 ms
        if len(wave) < minimum:
            wave = np.pad(wave, (0, minimum - len(wave)))
        kwargs: dict[str, Any] = {"sampling_rate": self.sample_rate, "return_tensors": "pt"}
        if getattr(self.extractor, "return_attention_mask", False):
            kwargs["return_attention_mask"] = True
        encoded = self.extractor(wave, **kwargs)
        return {k: v[0] for k, v in encoded.items() if isinstance(v, Tensor)}

    def placeholder(self) -> dict[str, Tensor]:
        if self.extractor is None:
            return {"features": torch.zeros(1, self.config.n_mels, self.num_frames)}
        if self._placeholder is None:
            silence = np.zeros(self.num_samples, dtype=np.float32)
            self._placeholder = self._hub_features(silence)
        return {k: v.clone() for k, v in self._placeholder.items()}

    def _hub_object(self) -> Any:
        return self.extractor
