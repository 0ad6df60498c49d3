"""Everything `train` validates before it trains, as a check of its own.

`check_data` runs the same code as training does up to the first step (hub names, then
`plait.data.prepare_data`: files, columns, the split, labels and every row), so what it
accepts `train` accepts, and every bad row it lists is one `train` would refuse (with
`data.on_error: raise`) or skip (with `skip`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.encoders.hub import check_hub_models
from plait.errors import RowProblem


@dataclass
class DataCheck:
    """What `check_data` found.

    Attributes:
        config: the config checked.
        rows: split (`train`, `valid`, `test`) -> rows that passed, as training would use them.
        problems: every bad row (file, row, column, reason), in Plait's row numbering.
    """

    config: PlaitConfig
    rows: dict[str, int]
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def bad_rows(self) -> int:
        return len({(p.file, p.row) for p in self.problems})

    @property
    def blocks_training(self) -> bool:
        """True when `train` would stop on these rows (`data.on_error: raise`)."""
        return bool(self.problems) and self.config.data.on_error == "raise"


def check_data(config: PlaitConfig, *, progress: bool | None = None) -> DataCheck:
    """Validate what `train` would validate for `config`, without training.

    Raises:
        ConfigError: a pretrained model name that cannot be loaded (`check_hub_model`).
        DataError: a data file that is missing or unreadable, a missing column (with the
            closest existing name), or no valid training row left.
    """
    check_hub_models(config)
    # "collect": every bad row comes back instead of stopping at the on_error policy
    data_config = config.data.model_copy(update={"on_error": "collect"})
    prepared = prepare_data(config.model_copy(update={"data": data_config}), progress=progress)
    splits = {"train": prepared.train, "valid": prepared.valid, "test": prepared.test}
    rows = {name: len(dataset) for name, dataset in splits.items() if dataset is not None}
    return DataCheck(config, rows, list(prepared.problems))
