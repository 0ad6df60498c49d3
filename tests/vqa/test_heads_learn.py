"""Each VQA head learns a tiny relational toy that a pooled MLP cannot.

The toy: a 3x3 grid with two marked cells (channel 0 marks A, channel 1 marks B); the
question (a one-hot vector) asks "is B left of A?" or "is B above A?". Averaging the grid
throws away where the marks are, so a pooled MLP stays at the majority answer; a head that
reads positions and relates cells gets it in ~150 small steps.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from plait.heads.vqa import vqa_head_class

SIZE = 3
TOY: dict[str, tuple[dict[str, object], int, float]] = {
    # head: (tiny options, steps, learning rate)
    "relation": ({"pool": None, "width": 32, "hidden": 32}, 150, 1e-2),
    "film": ({"channels": 16, "blocks": 2, "hidden": 32}, 120, 1e-2),
    "transformer": ({"dim": 32, "heads": 2, "layers": 1, "grid_layers": 0}, 150, 5e-3),
}


def toy(count: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """grid (n, 2, S, S), question vector (n, 2), answer (n,) 1 = yes."""
    generator = torch.Generator().manual_seed(seed)
    cells = SIZE * SIZE
    a = torch.randint(0, cells, (count,), generator=generator)
    b = (a + torch.randint(1, cells, (count,), generator=generator)) % cells  # b != a
    asks_above = torch.randint(0, 2, (count,), generator=generator)
    left = b % SIZE < a % SIZE
    above = b // SIZE < a // SIZE
    answer = torch.where(asks_above.bool(), above, left).long()  # (n,)
    grid = torch.zeros(count, 2, cells)
    grid[torch.arange(count), 0, a] = 1.0
    grid[torch.arange(count), 1, b] = 1.0
    question = nn.functional.one_hot(asks_above, 2).float()  # (n, 2)
    return grid.view(count, 2, SIZE, SIZE), question, answer


def ask(head: nn.Module, grid: Tensor, question: Tensor) -> Tensor:
    real = torch.ones(len(grid), 1, dtype=torch.bool)
    return head(grid, None, question[:, None], real, question)  # (n, 2)


def train_and_score(head: nn.Module, steps: int, lr: float) -> float:
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    for step in range(steps):
        grid, question, answer = toy(32, seed=step)
        loss = nn.functional.cross_entropy(ask(head, grid, question), answer)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    grid, question, answer = toy(512, seed=10_000)
    with torch.no_grad():
        return (ask(head.eval(), grid, question).argmax(1) == answer).float().mean().item()


def majority_share() -> float:
    answer = toy(512, seed=10_000)[2].float().mean().item()
    return max(answer, 1 - answer)


class PooledMLP(nn.Module):
    """The contrast: mean of the grid's channels + question -> MLP (no positions)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, grid: Tensor, _mask: None, _q: Tensor, _qm: Tensor, vector: Tensor):
        return self.net(torch.cat([grid.mean(dim=(2, 3)), vector], dim=1))


@pytest.mark.parametrize("name", sorted(TOY))
def test_head_learns_the_relational_toy(name: str):
    options, steps, lr = TOY[name]
    torch.manual_seed(0)
    cls = vqa_head_class(name)
    head = cls(2, 2, 2, cls.Options(**options))
    accuracy = train_and_score(head, steps, lr)
    assert accuracy >= 0.8, f"{name}: {accuracy:.3f} (majority answer: {majority_share():.3f})"


def test_a_pooled_mlp_cannot_learn_the_toy():
    torch.manual_seed(0)
    accuracy = train_and_score(PooledMLP(), 150, 1e-2)
    assert accuracy <= majority_share() + 0.05
