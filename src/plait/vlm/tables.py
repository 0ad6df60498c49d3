"""Ask a large model about every row of a table: one request per row's picture or sound.

Shared by `plait describe`, `plait label` and descriptions-as-a-feature, so a row means
the same in all three: the cell is a path relative to the table's folder (as for an image
modality); an empty cell or a file that cannot be read is that row's problem (named by
file, row and column), never a crash half-way through the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from plait.data.manifest import Table
from plait.data.processor_base import resolve_path
from plait.errors import DataError, RowProblem
from plait.vlm.base import Media, VlmBackend, VlmRequest
from plait.vlm.prompts import render


def row_requests(
    table: Table,
    column: str,
    template: str,
    *,
    classes: Sequence[str] | None = None,
    max_new_tokens: int = 128,
) -> tuple[list[VlmRequest | None], list[RowProblem]]:
    """A request per row (None where the row has a problem) and the rows' problems."""
    if column not in table.frame.columns:
        present = ", ".join(map(str, table.frame.columns))
        raise DataError(f"{table.name}: no column '{column}' (columns: {present})")
    requests: list[VlmRequest | None] = []
    problems: list[RowProblem] = []
    for position, value in enumerate(table.frame[column]):
        where = RowProblem(table.name, Table.row_number(position), column, "")
        text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
        if not text.strip():
            problems.append(RowProblem(where.file, where.row, column, "the cell is empty"))
            requests.append(None)
            continue
        try:
            media = Media.from_path(resolve_path(text, table.base_dir))
        except DataError as error:
            problems.append(RowProblem(where.file, where.row, column, str(error)))
            requests.append(None)
            continue
        prompt = render(template, media.kind, classes)
        requests.append(
            VlmRequest(
                media=(media,),
                prompt=prompt,
                max_new_tokens=max_new_tokens,
                choices=tuple(classes) if classes else None,
                row=RowProblem(where.file, where.row, column, "asked the large model"),
            )
        )
    return requests, problems


def answer_rows(
    backend: VlmBackend, requests: Sequence[VlmRequest | None], *, progress: bool = True
) -> list[str | None]:
    """The backend's answer for each request, None where there was no request."""
    asked = [r for r in requests if r is not None]
    answers = iter(backend.generate(asked, progress=progress) if asked else [])
    return [next(answers) if r is not None else None for r in requests]


def describe_table(
    backend: VlmBackend,
    table: Table,
    column: str,
    template: str,
    *,
    max_new_tokens: int = 128,
    progress: bool = True,
) -> tuple[list[str | None], list[RowProblem]]:
    """Each row's description (None for a problem row) and the problem rows."""
    requests, problems = row_requests(table, column, template, max_new_tokens=max_new_tokens)
    if all(r is None for r in requests) and requests:
        raise DataError(f"{table.name}: no row has a readable file in '{column}'", problems)
    return answer_rows(backend, requests, progress=progress), problems
