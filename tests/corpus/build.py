"""Build a small corpus of odd-but-valid and hostile inputs, with what Plait must do with each.

    cases = build_corpus(folder)        # deterministic, ~0.5 MB, about a second

Every row of the corpus exercises one case: one odd or hostile cell (an image, an audio
file, a caption, an array cell or a label) among otherwise plain cells. `Case` records the
row, the column, whether Plait must load the row ("ok") or report it ("bad") and a few words
the reason must contain, so tests assert against this description rather than against
numbers written by hand. The same table is written as every manifest format Plait reads
(comma, semicolon and tab separated, UTF-8 with a byte-order mark, latin-1, Parquet and
JSON lines), so a parser quirk shows up as a wrong row, not as a silently different corpus.

Layout of `folder`::

    images/  audio/  arrays/     the files the cells name (shared by every manifest)
    train.<variant>              the corpus table, one per manifest variant (`MANIFESTS`)
    clean.csv                    plain rows, used as valid/test split of training
    test.csv                     the corpus plus rows only a labelled test table can have
                                 (an unknown class), for predict / evaluate / embed
    ids.csv                      plain rows whose ids are all digits with leading zeros

Files are written with the project's own dependencies (Pillow, soundfile, NumPy, pandas),
so the corpus is what those libraries really produce.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

#: The modality columns of the corpus table, as the tests' config names them.
ID, CAPTION, IMAGE, AUDIO, LABEL = "id", "caption", "image", "audio", "label"

#: Audio settings the corpus is built around (the tests' config uses the same).
SAMPLE_RATE = 16000
DURATION = 0.25

#: manifest variant -> file name; `train.<suffix>` is read by Plait by its extension.
MANIFESTS = {
    "comma": "train.csv",
    "semicolon": "train_semicolon.csv",
    "tab": "train.tsv",
    "utf8_bom": "train_bom.csv",
    "latin1": "train_latin1.csv",
    "parquet": "train.parquet",
    "jsonl": "train.jsonl",
}


@dataclass(frozen=True)
class Case:
    """One row of the corpus and what Plait must do with it.

    Attributes:
        name: a short slug saying what the row holds (`image-rgba`, `audio-nan`).
        kind: image, audio, text, array or label.
        column: the column holding the odd or hostile cell.
        value: that cell, as written in the manifest.
        expect: "ok" (the row loads and is used) or "bad" (reported, with the reason).
        reason: for "bad", words of which at least one (lowercase) is in the reason.
        labels_only: the row is bad only for its label: predict (which ignores labels)
            must use it; train and evaluate must report it.
        test_only: the row exists only in `test.csv` (an unknown class cannot be in train).
        row: the 1-based data row (Plait's numbering) in every table holding the case.
        id: the row's id, digits with leading zeros (kept verbatim by Plait).
    """

    name: str
    kind: str
    column: str
    value: str
    expect: str
    reason: tuple[str, ...] = ()
    labels_only: bool = False
    test_only: bool = False
    row: int = 0
    id: str = ""

    @property
    def bad_for_predict(self) -> bool:
        return self.expect == "bad" and not self.labels_only


@dataclass(frozen=True)
class Corpus:
    """What `build_corpus` wrote and what every row must become."""

    root: Path
    cases: list[Case]
    manifests: dict[str, Path]
    clean: Path
    test: Path
    ids_table: Path

    def train_cases(self) -> list[Case]:
        return [c for c in self.cases if not c.test_only]

    def by_name(self, name: str) -> Case:
        return next(c for c in self.cases if c.name == name)


# ---------------------------------------------------------------------------- plain cells
PLAIN_IMAGE = "images/plain.png"
PLAIN_AUDIO = "audio/plain.wav"
CLASSES = ("cat", "dog")


def _ok(name: str, kind: str, column: str, value: str) -> Case:
    return Case(name, kind, column, value, "ok")


def _bad(name: str, kind: str, column: str, value: str, *reason: str) -> Case:
    return Case(name, kind, column, value, "bad", tuple(reason))


NOT_FOUND = ("not found", "no such file", "does not exist", "missing")
UNREADABLE = ("not a readable", "cannot", "corrupt", "decode", "empty", "not an image")
NON_FINITE = ("nan", "non-finite", "not finite", "infinite")

CASES: list[Case] = [
    # images, odd but valid
    _ok("image-rgba", "image", IMAGE, "images/rgba.png"),
    _ok("image-la", "image", IMAGE, "images/la.png"),
    _ok("image-palette-transparent", "image", IMAGE, "images/palette.png"),
    _ok("image-1bit", "image", IMAGE, "images/bilevel.png"),
    _ok("image-16bit-gray", "image", IMAGE, "images/gray16.png"),
    _ok("image-float-tiff", "image", IMAGE, "images/float.tiff"),
    _ok("image-cmyk-jpeg", "image", IMAGE, "images/cmyk.jpg"),
    _ok("image-exif-rotated", "image", IMAGE, "images/exif_rotated.jpg"),
    _ok("image-1x1", "image", IMAGE, "images/one_pixel.png"),
    _ok("image-very-wide", "image", IMAGE, "images/wide.png"),
    _ok("image-animated-gif", "image", IMAGE, "images/animated.gif"),
    _ok("image-webp", "image", IMAGE, "images/picture.webp"),
    _ok("image-bmp", "image", IMAGE, "images/picture.bmp"),
    _ok("image-uppercase-ext", "image", IMAGE, "images/UPPER.PNG"),
    _ok("image-spaces-non-ascii-name", "image", IMAGE, "images/café crème ü.png"),
    # images, hostile
    _bad("image-zero-bytes", "image", IMAGE, "images/zero.png", *UNREADABLE),
    _bad("image-truncated-png", "image", IMAGE, "images/truncated.png", "truncated", "corrupt"),
    _bad("image-text-as-png", "image", IMAGE, "images/text.png", *UNREADABLE),
    _bad("image-missing", "image", IMAGE, "images/no_such_file.png", *NOT_FOUND),
    _bad("image-directory", "image", IMAGE, "images/a_folder.png", *NOT_FOUND, "directory"),
    _bad(
        "image-float-tiff-nan",
        "image",
        IMAGE,
        "images/float_nan.tiff",
        *NON_FINITE,
    ),
    _bad("image-decompression-bomb", "image", IMAGE, "images/bomb.png", "pixels", "bomb"),
    # audio, odd but valid
    _ok("audio-int16", "audio", AUDIO, "audio/int16.wav"),
    _ok("audio-int24", "audio", AUDIO, "audio/int24.wav"),
    _ok("audio-int32", "audio", AUDIO, "audio/int32.wav"),
    _ok("audio-float32", "audio", AUDIO, "audio/float32.wav"),
    _ok("audio-float64", "audio", AUDIO, "audio/float64.wav"),
    _ok("audio-flac", "audio", AUDIO, "audio/clip.flac"),
    _ok("audio-ogg-vorbis", "audio", AUDIO, "audio/clip.ogg"),
    _ok("audio-stereo", "audio", AUDIO, "audio/stereo.wav"),
    _ok("audio-8khz", "audio", AUDIO, "audio/rate8k.wav"),
    _ok("audio-44khz", "audio", AUDIO, "audio/rate44k.wav"),
    _ok("audio-much-shorter", "audio", AUDIO, "audio/short.wav"),
    _ok("audio-longer", "audio", AUDIO, "audio/long.wav"),
    _ok("audio-silence", "audio", AUDIO, "audio/silence.wav"),
    # audio, hostile
    _bad("audio-zero-bytes", "audio", AUDIO, "audio/zero.wav", *UNREADABLE),
    _bad("audio-header-only", "audio", AUDIO, "audio/header_only.wav", "0 frames", "empty"),
    _bad("audio-truncated", "audio", AUDIO, "audio/truncated.wav", *UNREADABLE, "truncated"),
    _bad("audio-truncated-flac", "audio", AUDIO, "audio/truncated.flac", *UNREADABLE, "truncated"),
    _bad("audio-text-as-wav", "audio", AUDIO, "audio/text.wav", *UNREADABLE),
    _bad("audio-missing", "audio", AUDIO, "audio/no_such_file.wav", *NOT_FOUND),
    _bad("audio-float-nan", "audio", AUDIO, "audio/float_nan.wav", *NON_FINITE),
    _bad("audio-float-inf", "audio", AUDIO, "audio/float_inf.wav", *NON_FINITE),
    # text, all valid (whitespace-only is a missing modality, not an error)
    _ok("text-unicode-emoji-rtl", "text", CAPTION, "naïve café 🐱🐶 שלום עולם مرحبا"),
    _ok("text-very-long", "text", CAPTION, " ".join(f"word{i % 50}" for i in range(2000))),
    _ok("text-literal-NA", "text", CAPTION, "NA"),
    _ok("text-literal-None", "text", CAPTION, "None"),
    _ok("text-whitespace-only", "text", CAPTION, "  \t  "),
    _ok(
        "text-newlines-quotes-delimiters",
        "text",
        CAPTION,
        'first line\nsecond "quoted" line, with commas; semicolons\tand a tab',
    ),
    # array cells
    _ok("array-image-row", "array", IMAGE, "arrays/pixels.npy#2"),
    _ok("array-audio-row", "array", AUDIO, "arrays/waves.npy#1"),
    _bad("array-row-out-of-range", "array", IMAGE, "arrays/pixels.npy#7", "out of range"),
    _bad("array-row-not-integer", "array", IMAGE, "arrays/pixels.npy#two", "integer"),
    _bad("array-image-nan", "array", IMAGE, "arrays/float_nan.npy#0", *NON_FINITE),
    _bad("array-audio-nan", "array", AUDIO, "arrays/waves_nan.npy#0", *NON_FINITE),
    # labels (a class may be literally named like a missing value)
    _ok("label-None-1", "label", LABEL, "None"),
    _ok("label-None-2", "label", LABEL, "None"),
    _ok("label-NA-1", "label", LABEL, "NA"),
    _ok("label-NA-2", "label", LABEL, "NA"),
    _ok("label-null-1", "label", LABEL, "null"),
    _ok("label-null-2", "label", LABEL, "null"),
    _ok("label-numeric-3", "label", LABEL, "3"),
    _ok("label-numeric-3.0", "label", LABEL, "3.0"),  # one class with "3"
    Case("label-missing", "label", LABEL, "", "bad", ("missing",), labels_only=True),
    Case(
        "label-unknown-in-test",
        "label",
        LABEL,
        "zebra",
        "bad",
        ("unknown", "not seen"),
        labels_only=True,
        test_only=True,
    ),
]


def _numbered(cases: list[Case]) -> list[Case]:
    """Rows in order (test-only rows last, so a row has one number in every table)."""
    ordered = [c for c in cases if not c.test_only] + [c for c in cases if c.test_only]
    out = []
    for i, case in enumerate(ordered):
        row = i + 1
        out.append(
            Case(**{**case.__dict__, "row": row, "id": f"{row:04d}"})  # ids with leading zeros
        )
    return out


def corpus_cases() -> list[Case]:
    """The cases with their rows and ids, without writing anything."""
    return _numbered(CASES)


# ------------------------------------------------------------------------------ building
def build_corpus(root: str | Path) -> Corpus:
    """Write the corpus into `root` (created) and return its description."""
    root = Path(root)
    for sub in ("images", "audio", "arrays"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    _write_images(root / "images", rng)
    _write_audio(root / "audio", rng)
    _write_arrays(root / "arrays", rng)

    cases = corpus_cases()
    train = _table([c for c in cases if not c.test_only])
    manifests = {name: root / file for name, file in MANIFESTS.items()}
    _write_manifests(train, manifests)
    test = root / "test.csv"
    _table(cases).to_csv(test, index=False)
    clean = root / "clean.csv"
    _plain_table(8, "c").to_csv(clean, index=False)
    ids_table = root / "ids.csv"
    _plain_table(6, "").to_csv(ids_table, index=False)
    return Corpus(root, cases, manifests, clean, test, ids_table)


def _table(cases: list[Case]) -> pd.DataFrame:
    """One row per case: the case's cell, plain cells elsewhere; every value a string."""
    rows = []
    for i, case in enumerate(cases):
        label = CLASSES[i % 2]
        row = {
            ID: case.id,
            CAPTION: f"a plain caption about a {label}",
            IMAGE: PLAIN_IMAGE,
            AUDIO: PLAIN_AUDIO,
            LABEL: label,
        }
        row[case.column] = case.value
        rows.append(row)
    return pd.DataFrame(rows, columns=[ID, CAPTION, IMAGE, AUDIO, LABEL])


def _plain_table(n: int, prefix: str) -> pd.DataFrame:
    """`n` plain rows of both classes; ids `<prefix>0001`... (all digits without prefix)."""
    return pd.DataFrame(
        {
            ID: [f"{prefix}{i + 1:04d}" for i in range(n)],
            CAPTION: [f"a plain caption about a {CLASSES[i % 2]}" for i in range(n)],
            IMAGE: [PLAIN_IMAGE] * n,
            AUDIO: [PLAIN_AUDIO] * n,
            LABEL: [CLASSES[i % 2] for i in range(n)],
        }
    )


def _write_manifests(frame: pd.DataFrame, paths: dict[str, Path]) -> None:
    frame.to_csv(paths["comma"], index=False)
    frame.to_csv(paths["semicolon"], index=False, sep=";")
    frame.to_csv(paths["tab"], index=False, sep="\t")
    frame.to_csv(paths["utf8_bom"], index=False, encoding="utf-8-sig")
    # latin-1 cannot hold emoji or Hebrew/Arabic: those become '?' (still valid text)
    text = frame.to_csv(index=False)
    paths["latin1"].write_bytes(text.encode("latin-1", errors="replace"))
    frame.to_parquet(paths["parquet"], index=False)
    frame.to_json(paths["jsonl"], orient="records", lines=True, force_ascii=False)


# -------------------------------------------------------------------------------- images
def _noise(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, channels), dtype=np.uint8)


def _write_images(folder: Path, rng: np.random.Generator) -> None:
    Image.fromarray(_noise(rng, 8, 8, 3), "RGB").save(folder / PLAIN_IMAGE.split("/")[1])
    Image.fromarray(_noise(rng, 8, 8, 4), "RGBA").save(folder / "rgba.png")
    Image.fromarray(_noise(rng, 8, 8, 3)[..., 0], "L").convert("LA").save(folder / "la.png")
    palette = Image.fromarray(_noise(rng, 8, 8, 3), "RGB").quantize(8)
    palette.save(folder / "palette.png", transparency=0)
    Image.fromarray(_noise(rng, 8, 8, 1)[..., 0], "L").convert("1").save(folder / "bilevel.png")
    gray16 = rng.integers(0, 65536, (8, 8)).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")  # mode I;16
    floats = rng.random((8, 8), dtype=np.float32)
    Image.fromarray(floats).save(folder / "float.tiff")
    rgb = Image.fromarray(_noise(rng, 8, 8, 3), "RGB")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(_noise(rng, 4, 8, 3), "RGB").save(folder / "exif_rotated.jpg", exif=exif)
    Image.fromarray(_noise(rng, 1, 1, 3), "RGB").save(folder / "one_pixel.png")
    Image.fromarray(_noise(rng, 3, 400, 3), "RGB").save(folder / "wide.png")
    frames = [Image.fromarray(_noise(rng, 8, 8, 3), "RGB") for _ in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], loop=0)
    rgb.save(folder / "picture.webp")
    rgb.save(folder / "picture.bmp")
    rgb.save(folder / "UPPER.PNG", format="PNG")
    rgb.save(folder / "café crème ü.png")

    (folder / "zero.png").write_bytes(b"")
    whole = _png_bytes(Image.fromarray(_noise(rng, 32, 32, 3), "RGB"))
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "text.png").write_text("this is a text file, not a picture\n")
    (folder / "a_folder.png").mkdir(exist_ok=True)
    nan = rng.random((8, 8), dtype=np.float32)
    nan[2, 3] = np.nan
    Image.fromarray(nan).save(folder / "float_nan.tiff")
    (folder / "bomb.png").write_bytes(_bomb_png(50_000, 50_000))


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header declares `width` x `height` (a few hundred bytes)."""
    data = bytearray(_png_bytes(Image.new("L", (1, 1))))
    # the IHDR chunk starts after the 8-byte signature: length(4) type(4) data(13) crc(4)
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


# --------------------------------------------------------------------------------- audio
def _tone(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    """A quiet 440 Hz tone: [frames] or [frames, channels], float64 in [-0.5, 0.5]."""
    times = np.arange(max(1, round(rate * seconds))) / rate
    wave = 0.5 * np.sin(2 * np.pi * 440.0 * times)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def _write_audio(folder: Path, rng: np.random.Generator) -> None:
    rate, seconds = SAMPLE_RATE, DURATION
    tone = _tone(rate, seconds)
    sf.write(folder / "plain.wav", tone, rate, subtype="PCM_16")
    for name, subtype in (
        ("int16", "PCM_16"),
        ("int24", "PCM_24"),
        ("int32", "PCM_32"),
        ("float32", "FLOAT"),
        ("float64", "DOUBLE"),
    ):
        sf.write(folder / f"{name}.wav", tone, rate, subtype=subtype)
    sf.write(folder / "clip.flac", tone, rate, format="FLAC", subtype="PCM_16")
    sf.write(folder / "clip.ogg", tone, rate, format="OGG", subtype="VORBIS")
    sf.write(folder / "stereo.wav", _tone(rate, seconds, 2), rate, subtype="PCM_16")
    sf.write(folder / "rate8k.wav", _tone(8000, seconds), 8000, subtype="PCM_16")
    sf.write(folder / "rate44k.wav", _tone(44100, seconds), 44100, subtype="PCM_16")
    sf.write(folder / "short.wav", _tone(rate, 0.01), rate, subtype="PCM_16")
    sf.write(folder / "long.wav", _tone(rate, 4 * seconds), rate, subtype="PCM_16")
    sf.write(folder / "silence.wav", np.zeros_like(tone), rate, subtype="PCM_16")

    (folder / "zero.wav").write_bytes(b"")
    sf.write(folder / "header_only.wav", np.zeros(0), rate, subtype="PCM_16")
    whole = (folder / "int16.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[:30])  # cut inside the header
    flac = (folder / "clip.flac").read_bytes()
    (folder / "truncated.flac").write_bytes(flac[: len(flac) // 2])  # cut mid-stream
    (folder / "text.wav").write_text("this is a text file, not a sound\n")
    nan = tone.copy()
    nan[100] = np.nan
    sf.write(folder / "float_nan.wav", nan, rate, subtype="FLOAT")
    inf = tone.copy()
    inf[200] = np.inf
    sf.write(folder / "float_inf.wav", inf, rate, subtype="FLOAT")


# -------------------------------------------------------------------------------- arrays
def _write_arrays(folder: Path, rng: np.random.Generator) -> None:
    np.save(folder / "pixels.npy", rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
    nan_pixels = rng.random((2, 8, 8), dtype=np.float32)
    nan_pixels[0, 1, 1] = np.nan
    np.save(folder / "float_nan.npy", nan_pixels)
    waves = np.stack([_tone(SAMPLE_RATE, DURATION)] * 3).astype(np.float32)
    np.save(folder / "waves.npy", waves)
    waves_nan = waves[:2].copy()
    waves_nan[0, 10] = np.nan
    np.save(folder / "waves_nan.npy", waves_nan)


# ------------------------------------------------------------------------- model folders
#: how a saved model folder can be broken -> the file the error must name
MODEL_FOLDER_DAMAGE = {
    "weights-pickle": "model.safetensors",
    "weights-truncated": "model.safetensors",
    "weights-empty": "model.safetensors",
    "no-processors": "processors",
    "labels-corrupt": "labels.json",
}


def damage_model_folder(folder: str | Path, how: str) -> None:
    """Break a copy of a saved model folder the way a crash or a bad download would."""
    import pickle
    import shutil

    folder = Path(folder)
    weights = folder / "model.safetensors"
    if how == "weights-pickle":  # never unpickled: only its name and bytes matter here
        weights.write_bytes(pickle.dumps({"weight": [0.0, 1.0]}))
    elif how == "weights-truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "weights-empty":
        weights.write_bytes(b"")
    elif how == "no-processors":
        shutil.rmtree(folder / "processors")
    elif how == "labels-corrupt":
        (folder / "labels.json").write_text('{"task": "classification", "names": [')
    else:
        raise ValueError(f"unknown damage {how!r}; use one of {sorted(MODEL_FOLDER_DAMAGE)}")
