"""CPU milliseconds a question of one training epoch through Plait's own data path, split
into loading (the DataLoader: decode, transform, collate) and the step (forward, backward,
Adam), for `vqa.group_questions` 1 against k (a timing, not a test).

Unlike bench/vqa_speed.py (random tensors), this reads the reasoning pictures through
`PlaitDataModule`, so it shows both savings of grouping: one CNN pass per distinct picture
of a batch (`VqaModel.context_map`) and one decode per picture for the rows of a chunk
(`MultimodalDataset`). Process CPU time (`time.process_time`), one thread.

    python bench/vqa_epoch_cost.py --group 1
    python bench/vqa_epoch_cost.py --group 8 --head relation --size 64 --layers 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.datasets.reasoning import generate_reasoning
from plait.tasks import TASKS
from plait.training.datamodule import PlaitDataModule, question_groups

OPTIONS = {
    "fusion": {"fusion": "concat", "dim": 256, "hidden": 256, "pool_side": 4},
    "film": {"channels": 64, "blocks": 3, "hidden": 256},
    "relation": {"width": 128, "g_layers": 2, "hidden": 256},
    "transformer": {"dim": 64, "heads": 4, "grid_layers": 1, "layers": 2},
}


def config_for(data: Path, args: argparse.Namespace) -> PlaitConfig:
    image = {"type": "image_cnn", "dim": 64, "layers": args.layers}
    return PlaitConfig.from_dict({
        "name": "vqa-cost", "output_dir": str(data / "runs"),
        "data": {"train": str(data / "train.csv"), "valid": str(data / "valid.csv"),
                 "id": "id", "label": "answer", "on_error": "skip"},
        "modalities": {
            "image": {"kind": "image", "column": "image", "size": args.size, "augment": False,
                      "encoder": image},
            "question": {"kind": "text", "column": "question", "max_length": 16,
                         "encoder": {"type": "text_cnn", "dim": 64}},
        },
        "vqa": {"head": args.head, "head_options": OPTIONS[args.head],
                "group_questions": args.group},
        "training": {"batch_size": 64, "threads": 1, "progress": False, "tensorboard": False},
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=150, help="training scenes (36 q each)")
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--head", choices=list(OPTIONS), default="fusion")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--layers", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data_dir = Path(tempfile.mkdtemp(prefix="plait-vqacost-"))
    generate_reasoning(data_dir, n_train=args.scenes, n_valid=2, n_test=0)
    config = config_for(data_dir, args)
    data = prepare_data(config, progress=False)
    model = TASKS["vqa"].build(config, data.processors, data.labels).train()
    step = TASKS["vqa"].step(config, data)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = PlaitDataModule(data, config.training, *question_groups(config)).train_dataloader()
    loading = stepping = 0.0
    rows = 0
    mark = time.process_time()
    for batch in loader:
        loaded = time.process_time()
        loss = step.terms(model, batch, step.outputs(model, batch))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        now = time.process_time()
        loading += loaded - mark  # the loader's work for this batch
        stepping += now - loaded
        mark = now
        rows += len(batch.ids)
    result = vars(args) | {
        "rows": rows,
        "load_ms_per_question": round(loading / rows * 1000, 3),
        "step_ms_per_question": round(stepping / rows * 1000, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
