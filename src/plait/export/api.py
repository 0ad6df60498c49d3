"""`plait.export(model, out_dir)`: a saved model -> an ONNX export folder, parity-checked.

Supervised models become one graph (`model.onnx`: every modality's preprocessed tensors
and presence masks -> raw outputs [B, K]); aligned models one graph per tower
(`tower_<modality>.onnx`: that modality's tensors -> unit vectors [B, D]), so a text
query and an image embed separately; captioners two (`caption_encoder.onnx`,
`caption_step.onnx`: `plait.export.caption_graphs`), whose captions must also equal
PyTorch's end to end. Each graph is exported by the first exporter that
succeeds and passes parity on real rows (`plait.export.exporters`, `.parity`); the
folder layout is `plait.export.folder`'s.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from plait.data import MultimodalDataset
from plait.data.manifest import read_table
from plait.errors import PlaitError
from plait.export.caption_graphs import (
    CaptionEncoderGraph,
    CaptionStepGraph,
    context_names,
    encoder_spec,
    step_cases,
    step_spec,
)
from plait.export.caption_runtime import OrtCaptioningModel, caption_agreement
from plait.export.exporters import EXPORTERS, exporter_order
from plait.export.folder import write_export_folder
from plait.export.graphs import (
    EMBEDDING,
    OUTPUTS,
    GraphSpec,
    SupervisedGraph,
    TowerGraph,
    as_numpy_feed,
    spec_of,
)
from plait.export.parity import CaseResult, ParityCase, Tolerance, compare, mask_out, resize_lengths
from plait.export.runtime import open_session
from plait.tasks import BasePredictor, load
from plait.tasks.aligned_predictor import AlignedPredictor
from plait.tasks.captioning_predictor import CaptioningPredictor
from plait.utils.progress import progress_bar

log = logging.getLogger(__name__)

FORMATS = ("onnx",)
PARITY_ROWS = 16  # rows of the parity table read and checked (the first ones)
SAMPLE_ROWS = 2  # the export sample's batch; parity runs at 1, 3 and up to PARITY_ROWS


@dataclass
class GraphResult:
    """One exported graph: its spec, the exporter used, every attempt and its parity."""

    name: str
    spec: GraphSpec
    exporter: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    parity: list[CaseResult] = field(default_factory=list)


@dataclass
class ExportResult:
    folder: Path
    graphs: list[GraphResult]
    #: a captioner's `captioning` record of export.json (what is exported, caption agreement)
    captioning: dict[str, Any] | None = None

    @property
    def parity(self) -> list[CaseResult]:
        return [case for g in self.graphs for case in g.parity]


def export(
    model: str | Path | BasePredictor,
    out_dir: str | Path,
    format: str = "onnx",
    *,
    data: str | Path | pd.DataFrame | None = None,
    exporter: str = "auto",
    tolerance: Tolerance | None = None,
) -> ExportResult:
    """Export a saved model folder (or a loaded predictor) to `out_dir`, checked for parity.

    Args:
        model: a saved model folder, or a predictor (`plait.load(...)` or a run's).
        out_dir: the export folder to write (replaced as a whole when it is an export).
        format: only `onnx` today.
        data: rows for the parity check (a table path or DataFrame); default the model
            config's `data.test`, else `data.valid`, when that file exists.
        exporter: `auto` (legacy TorchScript, then dynamo where that fails or disagrees),
            `legacy` or `dynamo`.
        tolerance: the refusal bounds (default max abs diff 1e-4, min cosine 0.9999).

    Raises:
        PlaitError: an unknown format, no parity rows, or no exporter whose graph agrees
            with PyTorch within the tolerance (the message gives each attempt's result).
    """
    if format not in FORMATS:
        raise PlaitError(f"unknown export format {format!r}: Plait exports {', '.join(FORMATS)}")
    order = exporter_order(exporter)
    tolerance = tolerance or Tolerance()
    with _saved_folder(model) as (source, predictor):
        table = _parity_table(predictor, data)
        out = Path(out_dir)
        graphs: list[GraphResult] = []
        captioning: dict[str, Any] = {}

        def write_graphs(staging: Path) -> dict[str, Any]:
            if isinstance(predictor, AlignedPredictor):
                for name in predictor.pair:
                    graphs.append(_export_tower(predictor, name, table, staging, order, tolerance))
            elif isinstance(predictor, CaptioningPredictor):
                found, record = _export_captioner(predictor, table, staging, order, tolerance)
                graphs.extend(found)
                captioning.update(record["captioning"])
                return record
            else:
                graphs.append(_export_supervised(predictor, table, staging, order, tolerance))
            return _extra_fields(predictor)

        write_export_folder(
            out, source, write_graphs, graphs, tolerance=tolerance, data=_describe(data, table)
        )
    return ExportResult(out, graphs, captioning or None)


@contextmanager
def _saved_folder(model: str | Path | BasePredictor) -> Iterator[tuple[Path, BasePredictor]]:
    """The model's saved folder and its PyTorch predictor (a predictor is saved to a
    temporary folder first, so the export always records a folder's checksums)."""
    if isinstance(model, BasePredictor):
        with tempfile.TemporaryDirectory(prefix="plait-export-") as tmp:
            folder = model.save(Path(tmp) / "model")
            yield folder, model
        return
    folder = Path(model)
    if (folder / "export.json").is_file():
        raise PlaitError(f"{folder} is already an export folder; export the model folder instead")
    yield folder, load(folder)


def _parity_table(predictor: BasePredictor, data: str | Path | pd.DataFrame | None) -> Any:
    """The first PARITY_ROWS rows of `data` (default: the config's test, else valid file)."""
    if data is None:
        candidates = [predictor.config.data.test, predictor.config.data.valid]
        found = [Path(c) for c in candidates if c and Path(c).is_file()]
        if not found:
            raise PlaitError(
                "the parity check needs real rows: pass --data TABLE (a CSV/Parquet/JSONL "
                "with the model's columns); the model's config names no test or valid file "
                "that exists here"
            )
        data = found[0]
    table = read_table(data)
    table.frame = table.frame.head(PARITY_ROWS).reset_index(drop=True)
    return table


def _describe(data: Any, table: Any) -> dict[str, Any]:
    return {"table": table.name, "rows": len(table), "given": data is not None}


def _extra_fields(predictor: BasePredictor) -> dict[str, Any]:
    if isinstance(predictor, AlignedPredictor):
        model = predictor.model
        return {
            "pair": list(predictor.pair),
            "logit_scale": float(model.logit_scale.detach()),
            "logit_bias": float(model.logit_bias.detach()),
        }
    return {}


# ----------------------------------------------------------------------- supervised
def _export_supervised(
    predictor: BasePredictor,
    table: Any,
    folder: Path,
    order: Sequence[str],
    tolerance: Tolerance,
) -> GraphResult:
    dataset = predictor.prepare(table, labels=False, on_error="skip")
    items = _items(dataset)
    sample = dataset.collate(items[:SAMPLE_ROWS])
    kinds = {m: predictor.config.modalities[m].kind for m in sample.inputs}
    spec = spec_of("model.onnx", sample.inputs, kinds, OUTPUTS, with_presence=True)
    graph = SupervisedGraph(predictor.model, spec).eval()
    cases = []
    for case in _length_cases(predictor, dataset, items, sorted(sample.inputs)):
        cases.append(case)
        if case.name in ("batch 1", f"batch {len(items)}"):  # a missing modality's path
            cases += [mask_out(case, m) for m in sample.inputs]
    return _export_graph(
        "model",
        graph,
        spec,
        spec.flatten(sample.inputs, sample.presence),
        cases,
        folder,
        order,
        tolerance,
    )


def _items(dataset: MultimodalDataset) -> list[Any]:
    if len(dataset) == 0:
        raise PlaitError("no readable row for the parity check: every row of the table is bad")
    return [dataset[i] for i in range(len(dataset))]


def _length_cases(
    predictor: BasePredictor, dataset: MultimodalDataset, items: list[Any], names: list[str]
) -> list[ParityCase]:
    """Batches of 1, 3 and every row, then every row at other token, frame and sample
    counts (longer text and shorter audio; then 2 audio frames, below what a LeNet
    audio encoder pads to)."""
    cases = []
    for size in sorted({1, min(3, len(items)), len(items)}):
        batch = dataset.collate(items[:size])
        cases.append(ParityCase(f"batch {size}", batch.inputs, batch.presence))
    config, processors = predictor.config, predictor.processors
    kinds = {m: config.modalities[m].kind for m in names}
    longest = {m: getattr(config.modalities[m], "max_length", None) for m in names}
    full = cases[-1]
    variants: list[dict[str, Any]] = [
        {"extra_tokens": 3, "frames": lambda n: n * 2 // 3, "samples": lambda n: n * 2 // 3},
        {"frames": lambda n: 2},
    ]
    for variant in variants:
        inputs, changes = resize_lengths(
            full.inputs, kinds, lambda m, k: processors[m].pad_value(k), longest, **variant
        )
        if changes:
            label = f"{', '.join(changes)} ({full.batch} rows)"
            cases.append(ParityCase(label, inputs, full.presence))
    return cases


# --------------------------------------------------------------------------- towers
def _export_tower(
    predictor: AlignedPredictor,
    name: str,
    table: Any,
    folder: Path,
    order: Sequence[str],
    tolerance: Tolerance,
) -> GraphResult:
    dataset = predictor.prepare(table, modalities=[name], labels=False, on_error="skip")
    items = [item for item in _items(dataset) if item["presence"][name]]
    if not items:
        raise PlaitError(f"no row of the parity table has a `{name}` value to embed")
    sample = dataset.collate(items[:SAMPLE_ROWS])
    kind = predictor.config.modalities[name].kind
    spec = spec_of(f"tower_{name}.onnx", sample.inputs, {name: kind}, EMBEDDING, False)
    graph = TowerGraph(predictor.model, name, spec).eval()
    cases = _length_cases(predictor, dataset, items, [name])
    return _export_graph(
        f"tower {name}",
        graph,
        spec,
        spec.flatten(sample.inputs, sample.presence),
        cases,
        folder,
        order,
        tolerance,
    )


# ------------------------------------------------------------------------ captioner
CAPTION_CHECK_BEAMS = 3  # the beam width of the end-to-end caption check


def _export_captioner(
    predictor: CaptioningPredictor,
    table: Any,
    folder: Path,
    order: Sequence[str],
    tolerance: Tolerance,
) -> tuple[list[GraphResult], dict[str, Any]]:
    """The encoder graph and the step graph, each parity-checked; then the captions of
    the parity rows decoded through both graphs (greedy and beams) must equal PyTorch's
    token for token, else the export is refused."""
    model, source = predictor.model, predictor.source
    dataset = predictor.prepare(table, modalities=[source], labels=False, on_error="skip")
    items = [item for item in _items(dataset) if item["presence"][source]]
    if not items:
        raise PlaitError(f"no row of the parity table has a `{source}` value to caption")
    sample = dataset.collate(items[:SAMPLE_ROWS])
    spec = encoder_spec(model, sample.inputs, predictor.config.modalities[source].kind)
    encoder = CaptionEncoderGraph(model, spec).eval()
    cases = _length_cases(predictor, dataset, items, [source])
    flat = spec.flatten(sample.inputs, sample.presence)
    graphs = [_export_graph("caption encoder", encoder, spec, flat, cases, folder, order,
                            tolerance)]  # fmt: skip
    full = dataset.collate(items)
    with torch.inference_mode():
        out = encoder(*spec.flatten(full.inputs, full.presence))
    context = list(out) if isinstance(out, tuple) else [out]
    options = predictor.options()
    tokens = model.tokens
    steps = step_cases(context, tokens.bos, tokens.vocab_size, options.max_length)
    step = step_spec(model)
    step_graph = CaptionStepGraph(model).eval()
    flat = step.flatten(steps[1].inputs, steps[1].presence)
    graphs.append(
        _export_graph("caption step", step_graph, step, flat, steps, folder, order, tolerance)
    )
    onnx = OrtCaptioningModel(
        source,
        tokens,
        (open_session(folder / spec.file, threads=1, quiet=True), spec),
        (open_session(folder / step.file, threads=1, quiet=True), step),
    )
    beams = replace(options, num_beams=CAPTION_CHECK_BEAMS, do_sample=False)
    checks = [caption_agreement(model, onnx, full.inputs, o) for o in (options, beams)]
    bad = [c for c in checks if c["differing_rows"]]
    if bad:
        worst = bad[0]
        raise PlaitError(
            f"the ONNX captioner's captions differ from PyTorch's on {len(worst['differing_rows'])}"
            f" of {worst['rows']} parity rows (decoding {worst['decoding']}, rows "
            f"{worst['differing_rows'][:5]}): the export is refused; try --exporter dynamo"
        )
    record = {
        "captioning": {
            "source": source,
            "decoder": model.kind,
            "exported": (
                f"{spec.file}: the {source} encoder up to what the decoder reads "
                f"({', '.join(context_names(model))}); {step.file}: one decoding step "
                "(tokens so far + that context -> next-token logits). The decoding loop "
                "(greedy, beams, sampling) runs in Python (plait.heads.decoding) over ONNX "
                "Runtime, recomputing every position each step (no key/value cache)."
            ),
            "decoding": options.as_dict(),
            "caption_agreement": checks,
        }
    }
    return graphs, record


# ----------------------------------------------------------------------- the export
def _export_graph(
    name: str,
    graph: nn.Module,
    spec: GraphSpec,
    sample: tuple[Tensor, ...],
    cases: list[ParityCase],
    folder: Path,
    order: Sequence[str],
    tolerance: Tolerance,
) -> GraphResult:
    """Try each exporter of `order`; keep the first whose graph passes every case."""
    path = folder / spec.file
    attempts: list[dict[str, Any]] = []
    for exporter in order:
        log.info("exporting %s with the %s exporter", name, exporter)
        try:
            EXPORTERS[exporter](graph, spec, sample, path)
            results = run_parity(name, graph, spec, path, cases, tolerance)
        except Exception as exc:  # an exporter's or ONNX Runtime's failure: try the next
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
            attempts.append({"exporter": exporter, "ok": False, "error": reason})
            log.info("the %s exporter failed on %s: %s", exporter, name, reason)
            continue
        bad = [r for r in results if not r.ok]
        if not bad:
            attempts.append({"exporter": exporter, "ok": True})
            return GraphResult(name, spec, exporter, attempts, results)
        worst = max(bad, key=lambda r: r.max_abs)
        reason = (
            f"parity failed in {len(bad)} of {len(results)} cases (worst: {worst.case}, "
            f"max abs diff {worst.max_abs:.3g}, min cosine {worst.min_cosine:.6f})"
        )
        attempts.append(
            {
                "exporter": exporter,
                "ok": False,
                "error": reason,
                "parity": [r.to_dict() for r in results],
            }
        )
        log.info("the %s exporter's %s graph disagrees with PyTorch: %s", exporter, name, reason)
    if path.exists():
        path.unlink()
    tried = "; ".join(f"{a['exporter']}: {a['error']}" for a in attempts)
    raise PlaitError(
        f"cannot export {name} to ONNX within the tolerance (max abs diff "
        f"{tolerance.max_abs:g}, min cosine {tolerance.min_cosine:g}); tried {tried}"
    )


def run_parity(
    name: str,
    graph: nn.Module,
    spec: GraphSpec,
    path: Path,
    cases: list[ParityCase],
    tolerance: Tolerance,
) -> list[CaseResult]:
    """Every case through PyTorch and through ONNX Runtime (CPU), compared (each output
    of a graph with several, named in the case)."""
    session = open_session(path, threads=1, quiet=True)
    names = spec.output_names
    results = []
    with progress_bar(True, f"parity of {name}", len(cases), min_total=8) as advance:
        for case in cases:
            tensors = spec.flatten(case.inputs, case.presence)
            with torch.inference_mode():
                out = graph(*tensors)  # [B, K] or [B, D]; a tuple for several outputs
            expected = out if isinstance(out, tuple) else (out,)
            got = session.run(names, as_numpy_feed(spec, tensors))
            for output, want, have in zip(names, expected, got, strict=True):
                label = case.name if len(names) == 1 else f"{case.name}: {output}"
                want_np = want.float().numpy()
                results.append(compare(name, label, want_np, np.asarray(have), tolerance))
            advance()
    return results


def _first_line(exc: BaseException) -> str:
    """The line of an exporter's error that says what failed (torch.export puts it after
    an "Exception summary" heading, below generic advice)."""
    text = str(exc).strip()
    if "Exception summary" in text:
        text = text.split("Exception summary", 1)[1]
    for line in text.splitlines():
        if line.strip() and "Exception summary" not in line and not line.startswith("#"):
            return line.strip()[:300]
    return type(exc).__name__
