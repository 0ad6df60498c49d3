"""Per-question training cost of each VQA answer head, on CPU (a timing, not a test).

Times one training step (forward, backward, Adam) of the whole bench model (scratch CNN
-> 4x4x64 map, GRU over a 16-token question, the head) at batch 64 and reports
milliseconds per question, in float32 and under bfloat16 autocast: the fastest of
`--rounds` rounds, each timing every head in turn, so a load spike from other jobs on a
shared machine hits one round, not one head. `allpairs` is the
textbook relation network for comparison: [o_i; o_j; q] concatenated for all 256 pairs
and four 256-wide layers of g, which is what the issue measured at ~25x the CNN+MLP.

    python bench/vqa_speed.py                # one thread
    python bench/vqa_speed.py --head-only    # the head alone, on a random 4x4x64 map
    python bench/vqa_speed.py --group 8      # 8 questions a picture: 8 pictures a batch

`--group k` gives the batch 64/k distinct pictures, each asked k questions, as
`vqa.group_questions: k` does in training; the model encodes each distinct picture once.
Times are process CPU time (`time.process_time`), which a shared machine's load does not
inflate as it does wall-clock time (one thread: CPU time is the thread's time).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from torch import Tensor, nn

from plait.config import ImageModality, TextModality
from plait.encoders import build_encoder
from plait.heads.vqa import VqaHead, vqa_head_class
from plait.heads.vqa.grid import coordinates, full_mask
from plait.tasks.vqa_model import VqaModel

BATCH, ANSWERS, VOCAB, TOKENS = 64, 12, 40, 16
OPTIONS: dict[str, dict[str, Any]] = {
    "fusion": {"fusion": "concat", "dim": 256, "hidden": 256, "pool_side": 4},
    "film": {"channels": 64, "blocks": 3, "hidden": 256},
    "relation": {"width": 128, "g_layers": 2, "hidden": 256},
    "transformer": {"dim": 64, "heads": 4, "grid_layers": 1, "layers": 2},
}


class AllPairsRelation(VqaHead):
    """Santoro et al.'s relation network as published: g (4 x 256) on every concatenated
    pair [o_i; o_j; q], summed, then f (256, 256, answers)."""

    def __init__(self, grid_channels: int, question_dim: int, num_answers: int) -> None:
        super().__init__(grid_channels, question_dim, num_answers, None)
        width = 256
        layers: list[nn.Module] = [nn.Linear(2 * (grid_channels + 2) + question_dim, width)]
        for _ in range(3):
            layers += [nn.ReLU(), nn.Linear(width, width)]
        self.g = nn.Sequential(*layers, nn.ReLU())
        self.f = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, num_answers))

    def forward(self, grid, grid_mask, question, question_mask, question_vector) -> Tensor:  # type: ignore[no-untyped-def]
        mask = full_mask(grid, grid_mask)
        objects = torch.cat([grid, coordinates(mask)], 1).flatten(2).transpose(1, 2)  # (B,N,O)
        n = objects.shape[1]
        pairs = torch.cat(
            [
                objects[:, :, None].expand(-1, -1, n, -1),
                objects[:, None, :].expand(-1, n, -1, -1),
                question_vector[:, None, None].expand(-1, n, n, -1),
            ],
            dim=-1,
        )  # (B, N, N, 2O + D)
        return self.f(self.g(pairs).sum(dim=(1, 2)))  # (B, A)


def model_for(head: str) -> VqaModel:
    image = ImageModality(kind="image", column="image", size=64,
                          encoder={"type": "image_cnn", "dim": 64, "layers": 4})  # fmt: skip
    text = TextModality(kind="text", column="question", max_length=TOKENS,
                        encoder={"type": "text_gru", "dim": 64, "layers": 1})  # fmt: skip
    encoders = {"image": build_encoder(image), "question": build_encoder(text, vocab_size=VOCAB)}
    answer: VqaHead
    if head == "allpairs":
        answer = AllPairsRelation(64, 64, ANSWERS)
    else:
        cls = vqa_head_class(head)
        answer = cls(64, 64, ANSWERS, cls.Options(**OPTIONS[head]))
    return VqaModel("image", "question", encoders, answer)


def ms_per_question(
    head: str, steps: int, bf16: bool, head_only: bool = False, group: int = 1
) -> float:
    torch.manual_seed(0)
    whole = model_for(head).train()
    model: nn.Module = whole.head if head_only else whole
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    features = (
        torch.randn(BATCH, 64, 4, 4), None, torch.randn(BATCH, TOKENS, 64),
        torch.ones(BATCH, TOKENS, dtype=torch.bool), torch.randn(BATCH, 64),
    )  # fmt: skip
    inputs = {
        "image": {  # BATCH / group distinct pictures, each `group` times in a row
            "pixel_values": torch.randn(BATCH // group, 3, 64, 64).repeat_interleave(group, 0)
        },
        "question": {
            "input_ids": torch.randint(1, VOCAB, (BATCH, TOKENS)),
            "attention_mask": torch.ones(BATCH, TOKENS, dtype=torch.long),
        },
    }
    answers = torch.randint(0, ANSWERS, (BATCH,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(*features) if head_only else model(inputs)
        loss = nn.functional.cross_entropy(logits.float(), answers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()  # warm up
    start = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - start) / (steps * BATCH) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--head-only", action="store_true",
                        help="time the head alone on a random 4x4x64 map (no encoders)")  # fmt: skip
    parser.add_argument("--heads", default=",".join([*OPTIONS, "allpairs"]))
    parser.add_argument("--group", type=int, default=1,
                        help="questions a picture in the batch (64 / group pictures)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    heads = args.heads.split(",")
    best: dict[tuple[str, bool], float] = {}
    for _ in range(args.rounds):
        for head in heads:
            for bf16 in (False, True):
                ms = ms_per_question(head, args.steps, bf16, args.head_only, args.group)
                best[head, bf16] = min(ms, best.get((head, bf16), ms))
    rows = [
        {"head": h, "fp32_ms": round(best[h, False], 3), "bf16_ms": round(best[h, True], 3)}
        for h in heads
    ]
    settings = {"threads": args.threads, "head_only": args.head_only, "group": args.group}
    print(json.dumps({**settings, "rows": rows}))
    base = rows[0]["fp32_ms"]
    print(f"\n| head | ms / question fp32 | bf16 autocast | x {rows[0]['head']} (fp32) |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['head']} | {row['fp32_ms']} | {row['bf16_ms']} | "
              f"{row['fp32_ms'] / base:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
