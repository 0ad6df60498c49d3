"""`plait demo retrieval`: align pictures and captions of coloured shapes, then search.

Steps, all on generated data (`plait.datasets.shapes`, 16 concepts such as "red triangle"):
1. train an image <-> text aligned model (CLIP loss, small scratch towers);
2. index the test images with FAISS;
3. search them with a few captions (tables printed, an HTML contact sheet per query);
4. classify the test images zero-shot from the concept names alone.
The run's report has the retrieval table and zero-shot confusion matrix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from plait.api import train_run
from plait.config import PlaitConfig
from plait.datasets.shapes import CONCEPTS, generate_shapes

QUERIES = ("a red circle", "a small blue triangle near the top", "yellow cross", "green square")
TEMPLATES = ["{}", "a {}", "a picture of a {}"]


def retrieval_config(data_dir: Path, out_dir: Path, epochs: int) -> dict[str, Any]:
    """The demo's config (saved as `<out>/retrieval.yaml`, to rerun with `plait train`)."""
    return {
        "name": "demo-retrieval",
        "output_dir": str(out_dir / "runs"),
        "data": {
            "train": str(data_dir / "train.csv"),
            "valid": str(data_dir / "valid.csv"),
            "test": str(data_dir / "test.csv"),
            "label": "concept",
            "id": "id",
        },
        "modalities": {
            "caption": {
                "kind": "text",
                "column": "caption",
                "max_length": 24,
                "encoder": {"type": "text_cnn", "dim": 64},
            },
            "image": {
                "kind": "image",
                "column": "image",
                "size": 32,
                "augment": False,  # captions name positions: a flip would falsify them
                "encoder": {"type": "image_cnn", "dim": 64, "layers": 3, "pooling": "max"},
            },
        },
        "alignment": {
            "dim": 64,
            "objectives": [{"name": "clip"}],
            "templates": TEMPLATES,
            "relevance": "label",
        },
        "training": {
            "epochs": epochs,
            "batch_size": 64,
            "optimizer": "adamw",
            "lr": 3e-3,
            "tensorboard": False,
        },
    }


@dataclass
class RetrievalDemoResult:
    run_dir: Path
    metrics: dict[str, Any]
    searches: dict[str, pd.DataFrame] = field(default_factory=dict)
    sheets: list[Path] = field(default_factory=list)
    zeroshot_accuracy: float | None = None
    seconds: float = 0.0


def run_retrieval_demo(
    out: str | Path = "plait-demo-retrieval",
    *,
    rows: int = 800,
    epochs: int = 15,
    k: int = 5,
    progress: bool = True,
    show: Any = print,
) -> RetrievalDemoResult:
    """Generate, train, index, search and classify zero-shot; `show` prints each step."""
    from plait.alignment.predictor import AlignedPredictor
    from plait.retrieval.search import build_index, contact_sheet, search

    start = time.perf_counter()
    out = Path(out)
    data_dir = out / "data"
    generate_shapes(data_dir, n_train=rows, n_valid=max(16, rows // 5), n_test=160, seed=0)
    raw = retrieval_config(data_dir, out, epochs)
    raw["training"]["progress"] = progress
    (out / "retrieval.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    run_dir = out / "runs" / "demo-retrieval"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)  # a demo starts afresh each time
    run = train_run(PlaitConfig.from_dict(raw))
    predictor = run.predictor
    assert isinstance(predictor, AlignedPredictor)
    result = RetrievalDemoResult(run.run_dir, run.metrics)

    index_dir = out / "index"
    index = build_index(run.model_dir, data_dir / "test.csv", "image", index_dir)
    show(f"indexed {len(index)} test images ({index.kind}) in {index_dir}")
    for query in QUERIES:
        hits = search(index_dir, text=query, k=k)
        result.searches[query] = hits
        show(f"\ntext query: {query!r}")
        show(hits[["rank", "id", "score", "concept"]].to_string(index=False))
        name = "".join(c if c.isalnum() else "-" for c in query).strip("-")
        result.sheets.append(
            contact_sheet(hits, out / "sheets" / f"{name}.html", f"text: {query}", "image")
        )

    zeroshot = predictor.zeroshot(data_dir / "test.csv", list(CONCEPTS), templates=TEMPLATES)
    if zeroshot.metrics is not None:
        result.zeroshot_accuracy = float(zeroshot.metrics["accuracy"])
        show(
            f"\nzero-shot accuracy on {len(zeroshot.predictions)} test images "
            f"(16 concepts, chance 0.06): {result.zeroshot_accuracy:.3f}"
        )
    result.seconds = time.perf_counter() - start
    return result
