"""Augmentation lists: each transform does what it says, in training only, reproducibly."""

from __future__ import annotations

import typing

import numpy as np
import pytest
import torch
from PIL import Image

from plait.config import (
    TRANSFORM_MODELS,
    AudioModality,
    AudioTransform,
    ImageModality,
    ImageTransform,
    PlaitConfig,
)
from plait.data.audio import AudioProcessor
from plait.data.augment import (
    AUDIO_FEATURE_TRANSFORMS,
    AUDIO_WAVE_TRANSFORMS,
    IMAGE_TRANSFORMS,
    augment_wave,
)
from plait.data.image import ImageProcessor
from plait.errors import ConfigError


def _names(union: typing.Any) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return {model.model_fields["name"].default for model in members}


def test_every_transform_name_has_code_and_every_code_a_name():
    assert _names(ImageTransform) == set(IMAGE_TRANSFORMS)
    assert _names(AudioTransform) == set(AUDIO_WAVE_TRANSFORMS) | set(AUDIO_FEATURE_TRANSFORMS)
    assert set(TRANSFORM_MODELS) == _names(ImageTransform) | _names(AudioTransform)


# ------------------------------------------------------------------------------ images


def _image(size: int = 8, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(40, 215, (size, size, 3), dtype=np.uint8))


def _run(augment, raw, train=True, seed=0, size=8, **config):
    processor = ImageProcessor(ImageModality(column="i", size=size, augment=augment, **config))
    generator = torch.Generator().manual_seed(seed)
    return processor.transform(raw, train, generator)["pixel_values"]


def _pixels(normalised: torch.Tensor) -> torch.Tensor:
    return normalised * 0.5 + 0.5  # undo the default mean/std 0.5


def test_switches_and_default():
    assert ImageModality(column="i", augment=False).augment == []
    legacy = ImageModality(column="i", augment=True).augment
    assert [t.name for t in legacy] == ["random_resized_crop", "hflip", "color_jitter"]
    assert legacy[1].p == 0.5 and legacy[2].brightness == 0.1
    assert legacy[0].scale == (0.8, 1.0)
    default = [t.name for t in ImageModality(column="i").augment]
    assert default == ["random_resized_crop", "color_jitter"]  # no flip by default
    assert AudioModality(column="a").augment == []
    assert [
        t.time_masks for t in AudioModality(column="a", augment=True, time_masks=5).augment
    ] == [5]


def test_hflip_and_vflip_mirror_only_in_training():
    raw = _image()
    plain = _run([], raw)
    assert torch.equal(_run([{"name": "hflip", "p": 1}], raw), plain.flip(-1))
    assert torch.equal(_run([{"name": "vflip", "p": 1}], raw), plain.flip(-2))
    assert torch.equal(_run([{"name": "hflip", "p": 1}], raw, train=False), plain)


def test_hflip_alone_flips_about_half_the_time():
    raw = _image()
    plain = _run([], raw)
    flips = sum(
        torch.equal(_run([{"name": "hflip"}], raw, seed=seed), plain.flip(-1))
        for seed in range(200)
    )
    assert 70 < flips < 130
    assert flips == sum(
        torch.equal(_run([{"name": "hflip"}], raw, seed=seed), plain.flip(-1))
        for seed in range(200)
    )  # the same seeds flip the same rows


def test_random_resized_crop_zooms_in_training_only():
    ramp = np.tile((np.arange(32) * 8).astype(np.uint8)[None, :, None], (32, 1, 3))
    raw = Image.fromarray(ramp)  # brightness grows left to right, 0 to 248
    crop = [{"name": "random_resized_crop", "scale": [0.25, 0.25], "ratio": [1, 1]}]
    plain = _pixels(_run([], raw, size=16))
    assert torch.equal(_pixels(_run(crop, raw, size=16, train=False)), plain)
    spans = []
    for seed in range(10):
        cropped = _pixels(_run(crop, raw, size=16, seed=seed))
        assert cropped.shape == (3, 16, 16)
        spans.append((cropped.amax() - cropped.amin()).item())
    full = (plain.amax() - plain.amin()).item()
    # a window half as wide shows half of the ramp (up to a pixel of interpolation)
    assert all(0.4 * full < span < 0.6 * full for span in spans)
    assert torch.equal(_run(crop, raw, size=16, seed=3), _run(crop, raw, size=16, seed=3))


def test_brightness_scales_every_pixel_by_one_factor():
    raw = _image()
    plain = _pixels(_run([], raw))
    bright = _pixels(_run([{"name": "color_jitter", "brightness": 0.3}], raw, seed=4))
    ratio = bright / plain
    factor = ratio.mean().item()
    assert 0.7 <= factor <= 1.3 and abs(factor - 1) > 1e-3
    assert torch.allclose(ratio, torch.full_like(ratio, factor), atol=1e-4)  # no clamp here
    evaluated = _run([{"name": "color_jitter", "brightness": 0.3}], raw, train=False, seed=4)
    assert torch.equal(_pixels(evaluated), plain)


def test_contrast_keeps_the_mean_and_scales_the_spread():
    raw = _image()
    plain = _pixels(_run([], raw))
    jittered = _pixels(_run([{"name": "color_jitter", "contrast": 0.3}], raw, seed=4))
    assert jittered.mean().item() == pytest.approx(plain.mean().item(), abs=1e-4)
    spread = (jittered.std() / plain.std()).item()
    assert 0.7 <= spread <= 1.3 and abs(spread - 1) > 1e-3


def test_p_zero_disables_and_draws_nothing():
    raw = _image(16)
    everything = [
        {"name": "random_resized_crop", "scale": [0.3, 0.5], "p": 0},
        {"name": "hflip", "p": 0},
        {"name": "vflip", "p": 0},
        {"name": "color_jitter", "brightness": 0.5, "contrast": 0.5, "p": 0},
    ]
    generator = torch.Generator().manual_seed(0)
    processor = ImageProcessor(ImageModality(column="i", size=8, augment=everything))
    out = processor.transform(raw, True, generator)["pixel_values"]
    assert torch.equal(out, _run([], raw))
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(0).get_state())


def test_float_rows_get_geometry_but_no_colour():
    raw = np.random.default_rng(0).standard_normal((8, 8, 3)).astype(np.float32)
    plain = _run([], raw)
    assert torch.equal(_run([{"name": "hflip", "p": 1}], raw), plain.flip(-1))
    assert torch.equal(_run([{"name": "color_jitter", "brightness": 0.5}], raw), plain)


@pytest.mark.parametrize(
    ("augment", "expected"),
    [
        ([{"name": "hflp"}], "Did you mean `hflip`?"),
        ([{"name": "colour_jitter"}], "Did you mean `color_jitter`?"),
        ([{"name": "random_resized_crop", "scales": [0.5, 1]}], "Did you mean `scale`?"),
        ([{"p": 0.5}], "`modalities.img.augment.0.name` is required"),
        ([{"name": "random_resized_crop", "scale": [0.9, 0.5]}], "low <= high"),
    ],
)
def test_config_errors_name_the_transform_and_suggest(tmp_path, augment, expected):
    import yaml

    raw = {
        "data": {"train": "train.csv", "label": "y"},
        "modalities": {"img": {"kind": "image", "column": "p", "augment": augment}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="augment") as info:
        PlaitConfig.from_yaml(path)
    assert expected in str(info.value)


def test_audio_name_typo_suggests(tmp_path):
    import yaml

    raw = {
        "data": {"train": "train.csv", "label": "y"},
        "modalities": {"snd": {"kind": "audio", "column": "a", "augment": [{"name": "spec_aug"}]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="Did you mean `spec_augment`"):
        PlaitConfig.from_yaml(path)


def test_a_saved_list_round_trips(tmp_path):
    config = ImageModality(column="i", augment=[{"name": "color_jitter", "contrast": 0.2}])
    again = ImageModality.model_validate(config.model_dump(mode="json"))
    assert again.augment == config.augment


# ------------------------------------------------------------------------------- audio


def _audio(augment, **config):
    return AudioProcessor(
        AudioModality(column="a", duration=0.5, n_mels=32, augment=augment, **config)
    )


@pytest.mark.parametrize(
    "augment",
    [
        [{"name": "time_shift", "max_seconds": 0.2}],
        [{"name": "gain", "db": 12}],
        [{"name": "spec_augment", "time_masks": 3, "freq_masks": 3, "time_width": 0.3}],
        [{"name": "gain"}, {"name": "time_shift"}, {"name": "spec_augment"}],
    ],
)
def test_audio_transforms_keep_shape_and_finiteness_and_only_train(media, augment):
    processor = _audio(augment)
    wave = processor.load(str(media / "long16k.wav"), media)
    plain = processor.transform(wave, False, torch.Generator().manual_seed(0))["features"]
    again = _audio([]).transform(wave, False, torch.Generator().manual_seed(0))["features"]
    assert torch.equal(plain, again)  # evaluation ignores the list
    changed = processor.transform(wave, True, torch.Generator().manual_seed(1))["features"]
    baseline = _audio([]).transform(wave, True, torch.Generator().manual_seed(1))["features"]
    assert changed.shape == plain.shape == (1, 32, processor.num_frames)
    assert torch.isfinite(changed).all()
    assert not torch.equal(changed, baseline)
    repeat = processor.transform(wave, True, torch.Generator().manual_seed(1))["features"]
    assert torch.equal(changed, repeat)


def test_time_shift_moves_the_wave_and_fills_with_silence():
    config = AudioModality(column="a", augment=[{"name": "time_shift", "max_seconds": 0.01}])
    wave = np.arange(1, 1001, dtype=np.float32)
    for seed in range(20):
        out = augment_wave(wave, 1000, config.transforms, torch.Generator().manual_seed(seed))
        assert out.shape == wave.shape
        nonzero = out[out != 0]
        shift = int(np.flatnonzero(out)[0]) - (int(nonzero[0]) - 1)
        assert abs(shift) <= 10
        assert np.array_equal(nonzero, wave[int(nonzero[0]) - 1 : int(nonzero[-1])])


def test_gain_stays_within_its_decibels():
    config = AudioModality(column="a", augment=[{"name": "gain", "db": 6}])
    wave = np.ones(100, dtype=np.float32)
    factors = {
        float(augment_wave(wave, 1000, config.transforms, torch.Generator().manual_seed(s))[0])
        for s in range(50)
    }
    assert len(factors) > 40
    assert all(10 ** (-6 / 20) - 1e-6 <= f <= 10 ** (6 / 20) + 1e-6 for f in factors)
    off = AudioModality(column="a", augment=[{"name": "gain", "p": 0}])
    assert np.array_equal(augment_wave(wave, 1000, off.transforms, torch.Generator()), wave)


def test_old_spec_augment_switch_equals_the_list_entry(media):
    old = AudioProcessor(
        AudioModality(column="a", duration=0.5, n_mels=32, spec_augment=True, time_masks=3)
    )
    new = _audio([{"name": "spec_augment", "time_masks": 3, "freq_masks": 2}])
    wave = old.load(str(media / "tone16k.flac"), media)
    for seed in range(5):
        a = old.transform(wave, True, torch.Generator().manual_seed(seed))["features"]
        b = new.transform(wave, True, torch.Generator().manual_seed(seed))["features"]
        assert torch.equal(a, b)


def test_set_overrides_take_a_switch_or_a_list(tmp_path):
    import yaml

    raw = {
        "data": {"train": "train.csv", "label": "y"},
        "modalities": {"img": {"kind": "image", "column": "p"}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))

    def augment(override: str) -> list[str]:
        config = PlaitConfig.from_yaml(path, [f"modalities.img.augment={override}"])
        return [t.name for t in config.modalities["img"].augment]

    assert augment("true") == ["random_resized_crop", "hflip", "color_jitter"]
    assert augment("false") == []
    assert augment("[{name: hflip, p: 1}]") == ["hflip"]
