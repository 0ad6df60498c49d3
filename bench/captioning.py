"""Captioning the built-in scenes: both decoder kinds, and pretrain-then-fine-tune.

On `plait.datasets.captioned_scenes` (pictures of 2-3 coloured shapes, captions naming
objects, attributes and spatial relations; `test_heldout` holds colour-shape pairs never
seen in training):

(a) the two decoder kinds: a scratch Transformer decoder, and a hub causal LM (GPT-2)
    fed a ClipCap prefix. No real LM weights can be fetched here, so the GPT-2 is a tiny
    random-init one whose BPE tokenizer is trained on the training captions, built and
    saved offline: its numbers test the plumbing, not what a pretrained LM would give.
(b) pretrain, then fine-tune: image <-> caption towers aligned on the training rows with
    `clip`, `clip+itm+mlm` and `clip+itm+mlm+mrm`, then the scratch-decoder captioner
    started from each (`init_from`: the image tower is copied) vs from scratch (the
    row of (a)).

Every captioner is scored on `test` (in-distribution) and `test_heldout` (held-out
combinations) with greedy decoding against `references.csv` (5 references a picture):
BLEU-4, ROUGE-L, CIDEr-D, and METEOR when Java is present (`--no-meteor` skips it).

    python bench/captioning.py --out bench/results/captioning.json
    python bench/captioning.py --seed 1 --rows scratch,clip --out bench/results/captioning-seed1.json
    python bench/captioning.py --quick --out /tmp/cap.json   # keeps the script working

One thread (`training.threads: 1`), one seed a call (`--seed`; the data are always
`seed=0`); about 22 minutes for every row on 2 shared CPU cores. Each training run
stops at its epochs or its `time_limit`, whichever comes first (the best validation
checkpoint is kept).
Prints a table and writes the JSON (`--out`) after every row.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path(__file__).parent / "results"
VARIANTS: dict[str, list[str]] = {
    "clip": ["clip"],
    "clip+itm+mlm": ["clip", "itm", "mlm"],
    "clip+itm+mlm+mrm": ["clip", "itm", "mlm", "mrm"],
}
ROWS = ("scratch", "hub", *VARIANTS)
METRICS = ("bleu_4", "rouge_l", "cider_d", "meteor")


def image(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "kind": "image",
        "column": "image",
        "size": args.image_size,
        "augment": False,  # captions name positions: a flip would falsify them
        "encoder": {"type": "image_cnn", "dim": args.dim, "layers": 3},
    }


def training(args: argparse.Namespace, epochs: int, limit: str, **extra: Any) -> dict[str, Any]:
    return {
        "epochs": epochs,
        "time_limit": limit,
        "batch_size": 32,
        "lr": 2e-3,
        "seed": args.seed,
        "threads": 1,
        "accelerator": "cpu",
        "progress": False,
        "tensorboard": False,
        **extra,
    }


def data_block(data: Path) -> dict[str, str]:
    return {
        "train": str(data / "train.csv"),
        "valid": str(data / "valid.csv"),
        "test": str(data / "test.csv"),
        "id": "id",
    }


def caption_config(
    data: Path, out: Path, name: str, args: argparse.Namespace, *, gpt2: Path | None = None,
    init_from: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A captioner: the scratch Transformer decoder, or (`gpt2`) the hub LM with a prefix."""
    text: dict[str, Any] = {"type": "text_cnn", "dim": args.dim}
    decoder: dict[str, Any] = {"decoder": "transformer", "dim": args.dim, "layers": 2,
                               "heads": 4, "max_length": 32}  # fmt: skip
    if gpt2 is not None:
        text = {"type": "huggingface", "model": str(gpt2)}
        # a random-init LM must learn the language too: it is fine-tuned, not frozen
        decoder = {"decoder": "hub", "model": str(gpt2), "prefix_length": 4,
                   "freeze_lm": False, "max_length": 32}  # fmt: skip
    raw: dict[str, Any] = {
        "name": name,
        "output_dir": str(out),
        "data": data_block(data),
        "modalities": {
            "image": image(args),
            "caption": {"kind": "text", "column": "caption", "max_length": 32, "encoder": text},
        },
        "captioning": decoder,
        "training": training(
            args, args.caption_epochs, args.caption_limit, monitor="valid/cider_d"
        ),
        "evaluation": {"report": False},
    }
    if init_from is not None:
        raw["init_from"] = str(init_from)
    return raw


def pretrain_config(
    data: Path, out: Path, name: str, objectives: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    return {
        "name": name,
        "output_dir": str(out),
        "data": data_block(data),
        "modalities": {
            "caption": {
                "kind": "text",
                "column": "caption",
                "max_length": 32,
                "encoder": {"type": "text_cnn", "dim": args.dim},
            },
            "image": image(args),
        },
        "alignment": {"dim": args.dim, "objectives": [{"name": o} for o in objectives]},
        "training": training(args, args.pretrain_epochs, args.pretrain_limit),
        "evaluation": {"report": False},
    }


def save_tiny_gpt2(folder: Path, captions: list[str]) -> Path:
    """A random-init GPT-2 (2 layers, width 64) and a byte-level BPE tokenizer trained on
    `captions`, saved with `save_pretrained` (nothing is downloaded)."""
    import transformers as tf
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(captions, vocab_size=400, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)  # fmt: skip
    tokenizer = tf.GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                     eos_token="<|endoftext|>", unk_token="<|endoftext|>")  # fmt: skip
    config = tf.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=64, n_layer=2,
                           n_head=2, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    tf.set_seed(0)
    tf.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class InitFromLog(logging.Handler):
    """Keeps which towers `init_from` copied (from the table plait.tasks.init_from logs),
    so each fine-tuned row records that its image tower really started pretrained."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.towers: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        lines = record.getMessage().splitlines()
        if lines and lines[0].startswith("init_from "):
            self.towers = {}
            for line in lines[2:]:
                name, source, *_ = line.split()
                if source != "-":
                    self.towers[name] = source


def score(model_dir: Path, data: Path, meteor: bool) -> dict[str, dict[str, float]]:
    """Greedy captions of `test` and `test_heldout`, scored against references.csv."""
    import plait
    from plait.evaluation.caption_metrics import score_caption_tables

    model = plait.load(model_dir)
    scores: dict[str, dict[str, float]] = {}
    for split in ("test", "test_heldout"):
        generated = model.caption(data / f"{split}.csv", progress=False)
        result = score_caption_tables(generated, data / "references.csv", meteor=meteor)
        scores[split] = {m: round(result.corpus[m], 4) for m in METRICS if m in result.corpus}
        scores[split]["example"] = generated["caption"].iloc[0]  # type: ignore[assignment]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1000, help="training pictures")
    parser.add_argument("--valid", type=int, default=100)
    parser.add_argument("--test", type=int, default=200, help="test and test_heldout each")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--dim", type=int, default=64, help="tower and decoder width")
    parser.add_argument("--caption-epochs", type=int, default=30)
    parser.add_argument("--caption-limit", default="150s", help="time limit a captioner")
    parser.add_argument("--pretrain-epochs", type=int, default=30)
    parser.add_argument("--pretrain-limit", default="90s", help="time limit a pretraining")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", default=",".join(ROWS),
                        help=f"comma-separated rows to run, of {','.join(ROWS)}")  # fmt: skip
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (Java)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to test the script")
    parser.add_argument("--out", type=Path, default=RESULTS / "captioning.json")
    args = parser.parse_args()
    wanted = args.rows.split(",")
    unknown = sorted(set(wanted) - set(ROWS))
    if unknown:
        parser.error(f"--rows: unknown {unknown}; choose from {','.join(ROWS)}")
    if args.quick:
        args.train, args.valid, args.test, args.dim, args.no_meteor = 32, 8, 8, 16, True
        args.caption_epochs, args.pretrain_epochs = 1, 1

    from plait.api import train_run
    from plait.config import PlaitConfig
    from plait.datasets.captioned_scenes import generate_captioned_scenes

    work = Path(tempfile.mkdtemp(prefix="plait-capbench-"))
    data = work / "scenes"
    generate_captioned_scenes(data, n_train=args.train, n_valid=args.valid, n_test=args.test,
                              n_heldout=args.test, seed=0)  # fmt: skip
    rows: list[dict[str, Any]] = []
    copied = InitFromLog()
    plait_log = logging.getLogger("plait")
    plait_log.addHandler(copied)
    plait_log.setLevel(min(plait_log.getEffectiveLevel(), logging.INFO))

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        settings = vars(args) | {"out": str(args.out), "threads": 1}
        args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))
        print(json.dumps(row), flush=True)

    def captioner(name: str, raw: dict[str, Any], **extra: Any) -> None:
        start = time.perf_counter()
        copied.towers = {}
        run = train_run(PlaitConfig.from_dict(raw))
        if "init_from" in raw:  # tower -> the pretrained tower it started from
            extra["init_from_towers"] = dict(copied.towers)
        scores = score(run.model_dir, data, meteor=not args.no_meteor)
        record(
            {
                "row": name,
                **scores,
                "epochs_run": run.epochs_run,
                "train_seconds": round(run.train_seconds, 1),
                "row_seconds": round(time.perf_counter() - start, 1),
                **extra,
            }
        )

    captions = pd.read_csv(data / "train.csv")["caption"].tolist()
    gpt2 = save_tiny_gpt2(work / "tiny-gpt2", captions)
    if "scratch" in wanted:
        captioner("transformer (scratch)", caption_config(data, work / "runs", "scratch", args))
    if "hub" in wanted:
        captioner("hub tiny GPT-2 (random init)",
                  caption_config(data, work / "runs", "hub", args, gpt2=gpt2))  # fmt: skip
    for name, objectives in VARIANTS.items():
        if name not in wanted:
            continue
        pretrain_raw = pretrain_config(data, work / "runs", f"pretrain-{name}", objectives, args)
        run = train_run(PlaitConfig.from_dict(pretrain_raw))
        retrieval = run.metrics.get("retrieval", {})
        r1 = [retrieval[d]["R@1"] for d in retrieval]
        pretrain = {
            "pretrain_R@1": round(sum(r1) / len(r1), 4) if r1 else None,
            "pretrain_epochs_run": run.epochs_run,
            "pretrain_seconds": round(run.train_seconds, 1),
        }
        raw = caption_config(data, work / "runs", f"init-{name}", args, init_from=run.model_dir)
        captioner(f"transformer from {name}", raw, **pretrain)
    shutil.rmtree(work, ignore_errors=True)  # the runs and data (the JSON keeps the numbers)
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    heads = [f"{s} {m}" for s in ("test", "held-out") for m in METRICS]
    print("\n| row | " + " | ".join(heads) + " | epochs | train s |")
    print("| --- " * (len(heads) + 3) + "|")
    for row in rows:
        cells = [
            f"{row[s][m]:.3f}" if m in row[s] else "-"
            for s in ("test", "test_heldout")
            for m in METRICS
        ]
        print(f"| {row['row']} | " + " | ".join(cells) +
              f" | {row['epochs_run']} | {row['train_seconds']} |")  # fmt: skip


if __name__ == "__main__":
    main()
