"""The data layer: manifests in, validated datasets and `Batch`es out."""

from plait.data.audio import AudioProcessor, load_audio, log_mel, mel_filterbank, spec_augment
from plait.data.batch import Batch
from plait.data.dataset import (
    EpochSampler,
    MultimodalDataset,
    collate,
    derive_seed,
    handle_problems,
    validate_rows,
)
from plait.data.image import ImageProcessor, load_image
from plait.data.labels import LabelSpace
from plait.data.manifest import Table, check_columns, read_table
from plait.data.prepare import PreparedData, prepare_data, prepare_inference
from plait.data.processor import (
    Processor,
    build_processor,
    load_processors,
    restore_processor,
    save_processors,
)
from plait.data.splits import split_table
from plait.data.text import TextProcessor, Vocabulary, clean_text

__all__ = [
    "AudioProcessor",
    "Batch",
    "EpochSampler",
    "ImageProcessor",
    "LabelSpace",
    "MultimodalDataset",
    "PreparedData",
    "Processor",
    "Table",
    "TextProcessor",
    "Vocabulary",
    "build_processor",
    "check_columns",
    "clean_text",
    "collate",
    "derive_seed",
    "handle_problems",
    "load_audio",
    "load_image",
    "load_processors",
    "log_mel",
    "mel_filterbank",
    "prepare_data",
    "prepare_inference",
    "read_table",
    "restore_processor",
    "save_processors",
    "spec_augment",
    "split_table",
    "validate_rows",
]
