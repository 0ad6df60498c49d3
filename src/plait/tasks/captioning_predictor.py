"""A trained captioner ready for use: `caption` (a table of rows in, `id, caption` out)
and `evaluate` (caption metrics against the caption column and, optionally, a table of
more references); loading, batching and saving come from `BasePredictor`.

A saved captioner is a folder like any other; a hub LM decoder keeps its Hugging Face
config in `hub/_decoder/`, so it rebuilds offline (its weights are in
model.safetensors, its tokenizer in the caption modality's `processors/` folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from plait.config import PlaitConfig
from plait.data import MultimodalDataset
from plait.data.bad_rows import OnError, with_bad_rows
from plait.data.manifest import read_table
from plait.errors import DataError, PlaitError
from plait.heads.decoding import DecodingOptions
from plait.heads.prefix_lm import PrefixLMDecoder
from plait.model_folder import FolderContents
from plait.tasks.captioning_model import CaptioningModel, build_captioning_model, caption_text
from plait.tasks.predictor import BasePredictor
from plait.utils.progress import progress_bar

DECODER_FOLDER = "_decoder"
EXAMPLES = 12  # captions kept with the metrics, for the report's sheet


class CaptioningPredictor(BasePredictor):
    """Source encoder + caption decoder + preprocessing. Build with `plait.load(folder)`."""

    model: CaptioningModel

    @property
    def task(self) -> str:
        return "captioning"

    @property
    def source(self) -> str:
        return self.config.captioning_pair[0]

    @property
    def caption_modality(self) -> str:
        return self.config.captioning_pair[1]

    def options(self, **overrides: Any) -> DecodingOptions:
        """The config's default decoding, with the caller's non-None `overrides`."""
        assert self.config.captioning is not None
        settings = self.config.captioning
        values: dict[str, Any] = {
            "max_length": settings.max_length,
            "num_beams": settings.num_beams,
            "length_penalty": settings.length_penalty,
            "no_repeat_ngram_size": settings.no_repeat_ngram_size,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return DecodingOptions(**values)

    # -------------------------------------------------------------------- captioning
    def _captions(
        self, dataset: MultimodalDataset, options: DecodingOptions, batch_size: int,
        progress: bool,
    ) -> tuple[list[str], list[str]]:  # fmt: skip
        """(ids, captions) of every row of `dataset`, in order."""
        ids: list[str] = []
        captions: list[str] = []
        processor = self.processors[self.caption_modality]
        batches = -(-len(dataset) // batch_size)
        with progress_bar(progress, "captioning", batches, min_total=2) as advance:
            for batch in self.loader(dataset, batch_size):
                batch = batch.to(self.device)
                generated = self.model.generate(batch.inputs, options)
                ids += batch.ids
                captions += [caption_text(processor, self.model.tokens, g) for g in generated]
                advance()
        return ids, captions

    def caption(
        self,
        data: Any,
        *,
        batch_size: int = 32,
        progress: bool = True,
        on_error: OnError = "skip",
        max_length: int | None = None,
        num_beams: int | None = None,
        length_penalty: float | None = None,
        do_sample: bool | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        no_repeat_ngram_size: int | None = None,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Captions of every row: a DataFrame `id, caption`, one row per input row.

        `data`: a table (path or DataFrame) with the source column (image or audio
        paths). Decoding options left None keep the config's defaults (greedy unless it
        says otherwise); their meaning is Hugging Face `generate()`'s. With
        `on_error="skip"` a row that cannot be read, or whose source cell is empty (there
        is nothing to caption), keeps its row with an empty caption and an `error` column
        says why; `on_error="raise"` refuses the table, naming the first such row and
        column.
        """
        options = self.options(
            max_length=max_length, num_beams=num_beams, length_penalty=length_penalty,
            do_sample=do_sample, top_k=top_k, top_p=top_p, temperature=temperature,
            no_repeat_ngram_size=no_repeat_ngram_size, seed=seed,
        )  # fmt: skip
        dataset = self.prepare(
            data, modalities=[self.source], labels=False, on_error=on_error,
            required=[self.source],
        )  # fmt: skip
        ids, captions = self._captions(dataset, options, batch_size, progress)
        frame = pd.DataFrame({"id": ids, "caption": captions})
        if dataset is data:
            return frame
        return with_bad_rows(frame, dataset.rows, self.last_bad_rows)

    def evaluate(
        self,
        data: Any,
        batch_size: int = 32,
        *,
        on_error: OnError = "raise",
        references: Any = None,
        meteor: bool | None = None,
        progress: bool = False,
        **decoding: Any,
    ) -> dict[str, Any]:
        """Caption metrics (BLEU-1..4, ROUGE-L, CIDEr-D, METEOR with Java) of the rows that
        have a caption, against that caption plus, when `references` (a table with `id`
        and the caption column, several rows per id allowed) is given, its captions of
        the same ids. Also `n`, the decoding used and a few examples for the report.
        A row with an empty source cell is a bad row (`on_error`), as in `caption`.
        `meteor`: as `caption_metrics` (None: run it when Java is present)."""
        from plait.evaluation.caption_metrics import caption_metrics

        options = self.options(**decoding)
        names = [self.source, self.caption_modality]
        dataset = self.prepare(
            data, modalities=names, labels=False, on_error=on_error, required=[self.source]
        )
        column = self.config.modalities[self.caption_modality].column
        raw = dataset.table.frame[column].iloc[dataset.rows].tolist()
        ids, captions = self._captions(dataset, options, batch_size, progress)
        refs = {i: [str(r)] for i, r in zip(ids, raw, strict=True) if _is_caption(r)}
        if references is not None:
            for key, texts in _reference_table(references, column).items():
                if key in refs:
                    refs[key] += texts
        if not refs:
            raise PlaitError(f"no row has a caption in column {column!r}: nothing to score")
        generated = {i: c for i, c in zip(ids, captions, strict=True) if i in refs}
        scores = caption_metrics(generated, refs, meteor=meteor)
        metrics: dict[str, Any] = {"n": len(generated), **scores.corpus}
        if scores.skipped:
            metrics["skipped_metrics"] = dict(scores.skipped)
        metrics["decoding"] = options.as_dict()
        metrics["examples"] = self._examples(dataset, ids, generated, refs)
        if dataset is not data and self.last_bad_rows is not None:
            metrics["skipped_rows"] = len(self.last_bad_rows.rows)
        return metrics

    def _examples(
        self, dataset: MultimodalDataset, ids: list[str], generated: dict[str, str],
        refs: dict[str, list[str]],
    ) -> list[dict[str, Any]]:  # fmt: skip
        """The first rows' source file, generated caption and references."""
        column = self.config.modalities[self.source].column
        files = dataset.table.frame[column].iloc[dataset.rows].tolist()
        out: list[dict[str, Any]] = []
        for key, value in zip(ids, files, strict=True):
            if key not in generated or len(out) == EXAMPLES:
                continue
            path = Path(str(value))
            if not path.is_absolute():
                path = dataset.table.base_dir / path
            out.append({"id": key, "file": str(path), "kind": self.config.modalities[self.source].kind,
                        "generated": generated[key], "references": refs[key]})  # fmt: skip
        return out

    # ------------------------------------------------------------------ save / load
    def save_extra(self, staging: Path) -> None:
        """The hub LM's config (and generation config), so the folder rebuilds offline."""
        decoder = self.model.decoder
        if isinstance(decoder, PrefixLMDecoder):
            decoder.lm.config.save_pretrained(staging / "hub" / DECODER_FOLDER)

    @classmethod
    def loaded_config(cls, config: PlaitConfig, folder: Path) -> PlaitConfig:
        local = folder / "hub" / DECODER_FOLDER
        if config.captioning is None or not local.is_dir():
            return config
        captioning = config.captioning.model_copy(update={"model": str(local)})
        return config.model_copy(update={"captioning": captioning})

    @classmethod
    def build_model(
        cls, config: PlaitConfig, found: FolderContents, folder: Path
    ) -> CaptioningModel:
        if config.captioning is None:
            raise PlaitError(f"{folder}: config.yaml has no `captioning:` block")
        return build_captioning_model(config, found.processors, load_weights=False)

    def card_summary(self) -> str:
        assert self.config.captioning is not None
        decoder = self.config.captioning.model or "a Transformer decoder trained from scratch"
        return (
            f"Plait captioner: `{self.source}` in, `{self.caption_modality}` text out, "
            f"decoder {decoder} (`{self.config.captioning.decoder}`)."
        )

    def card_usage(self) -> list[str]:
        return ["model.caption(df)  # id, caption; decoding options as Hugging Face generate()"]


def _is_caption(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _reference_table(references: Any, column: str) -> dict[str, list[str]]:
    """id -> reference captions of a table with `id` and a `caption` (or `column`) column."""
    table = read_table(references)
    frame = table.frame
    name = "caption" if "caption" in frame.columns else column
    for needed in ("id", name):
        if needed not in frame.columns:
            have = ", ".join(map(str, frame.columns))
            raise DataError(f"{table.name}: no column {needed!r} (references need id and "
                            f"caption; columns: {have})")  # fmt: skip
    out: dict[str, list[str]] = {}
    for row, (key, text) in enumerate(zip(frame["id"], frame[name], strict=True)):
        if not _is_caption(text):
            raise DataError(
                f"{table.name}: row {row + 1}, column {name!r}: empty reference caption"
            )
        out.setdefault(str(key), []).append(str(text))
    return out
