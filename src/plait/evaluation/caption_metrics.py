"""Caption metrics: BLEU-1..4, ROUGE-L and CIDEr-D, plus METEOR when Java is present.

The scores come from pycocoevalcap, the scorers of the COCO caption benchmark, so numbers
compare with published ones. Two things are done differently, on purpose:

- Tokenisation is Plait's own Python re-implementation of what the benchmark's Stanford
  PTB tokenizer does to captions (lower-case, split clitics and punctuation, drop the
  punctuation tokens, keep brackets as `-lrb-` words as the benchmark does). The original needs Java and writes temporary files into the
  installed package; ours runs anywhere, and a test checks it agrees with the Java one
  on the captions Plait generates and on hard cases, whenever Java is present.
- METEOR needs Java (`java` on PATH). Without it the metric is skipped with the reason in
  `CaptionScores.skipped`, never silently. SPICE is not offered: it downloads a parser.

CIDEr-D's document frequencies are taken from the references of the captions being
scored (as in the benchmark), so CIDEr-D of one image alone is 0 by definition.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from plait.data.manifest import read_table
from plait.errors import DataError, PlaitError

BLEU_ORDERS = 4
METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d", "meteor")

# tokens the benchmark removes after PTB tokenisation (pycocoevalcap's list; its lower-case
# PTB output turns a double quote into `` or '', which the list holds)
_PUNCTUATION = {"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";", '"'}
# PTB writes brackets as -LRB- etc.; lower-cased they escape the benchmark's punctuation
# list and are scored as words. Kept, so scores match the published implementation.
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_CLITICS = re.compile(r"(?i)(\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_TOKEN = re.compile(
    r"n't|'(?:s|re|ve|ll|d|m|em)\b"  # clitics, already split off their word
    r"|\d+(?:[.,]\d+)+"  # numbers keep their points and commas: 3.5, 10,000
    r"|(?:[a-z]\.){2,}|(?:mr|mrs|ms|dr|jr|sr|st|prof|vs|etc)\.(?!\w)"  # u.s., e.g., mr.
    r"|\.\.\.|--|[.?!,:;()\[\]{}\"`']"  # punctuation, one token each
    r"|(?:[^\s.?!,:;()\[\]{}\"`'-]|-(?!-))+"  # words (black-and-white stays one)
)


@dataclass
class CaptionScores:
    """Corpus scores, one row of scores per caption, and the metrics that could not run."""

    corpus: dict[str, float]
    per_caption: pd.DataFrame  # id + one column per metric that ran
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it did not run

    def table(self) -> pd.DataFrame:
        """metric | score, in the usual order, for printing and reports."""
        rows = [(m, self.corpus[m]) for m in METRICS if m in self.corpus]
        return pd.DataFrame(rows, columns=["metric", "score"])


def tokenize(text: str) -> str:
    """A caption as the benchmark scores it: lower-case tokens joined by single spaces,
    punctuation removed, clitics (`n't`, `'s`, ...) split off as PTB does."""
    text = _CLITICS.sub(r"\1 \2", text.lower())
    tokens = (_BRACKETS.get(t, t) for t in _TOKEN.findall(text))
    return " ".join(t for t in tokens if t not in _PUNCTUATION)


def java_available() -> bool:
    return shutil.which("java") is not None


def caption_metrics(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    *,
    meteor: bool | None = None,
) -> CaptionScores:
    """Score generated captions against references, both keyed by the same ids.

    Args:
        predictions: id -> the generated caption.
        references: id -> one or more reference captions.
        meteor: run METEOR (`True` fails without Java); `None` runs it when Java is
            present and lists why not otherwise.
    """
    gts, res = _checked(predictions, references)
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise PlaitError(
            "caption metrics need pycocoevalcap: pip install 'plait[caption]' "
            "(scripts/install.sh installs it)"
        ) from exc
    ids = list(gts)
    corpus: dict[str, float] = {}
    columns: dict[str, list[float]] = {}
    bleu, bleu_each = Bleu(BLEU_ORDERS).compute_score(gts, res, verbose=0)
    for n in range(BLEU_ORDERS):
        corpus[f"bleu_{n + 1}"] = float(bleu[n])
        columns[f"bleu_{n + 1}"] = [float(v) for v in bleu_each[n]]
    rouge, rouge_each = Rouge().compute_score(gts, res)
    corpus["rouge_l"], columns["rouge_l"] = float(rouge), [float(v) for v in rouge_each]
    cider, cider_each = Cider().compute_score(gts, res)
    corpus["cider_d"], columns["cider_d"] = float(cider), [float(v) for v in cider_each]
    skipped: dict[str, str] = {}
    if meteor is None and not java_available():
        skipped["meteor"] = "METEOR needs Java (`java` on PATH); none was found"
    elif meteor is not False:
        corpus["meteor"], columns["meteor"] = _meteor(gts, res)
    else:
        skipped["meteor"] = "turned off by the caller"
    frame = pd.DataFrame({"id": ids, **columns})
    return CaptionScores(corpus=corpus, per_caption=frame, skipped=skipped)


def score_caption_tables(
    predictions: Any,
    references: Any,
    *,
    id_column: str = "id",
    caption_column: str = "caption",
    reference_column: str | None = None,
    meteor: bool | None = None,
) -> CaptionScores:
    """`caption_metrics` over two tables (paths or DataFrames): one generated caption per
    id, and one or more reference rows per id (several rows with the same id are several
    references). `reference_column` defaults to `caption_column`."""
    generated = read_table(predictions)
    refs = read_table(references)
    ref_column = reference_column or caption_column
    for table, needed in (
        (generated, (id_column, caption_column)),
        (refs, (id_column, ref_column)),
    ):
        missing = [c for c in needed if c not in table.frame.columns]
        if missing:
            have = ", ".join(map(str, table.frame.columns))
            raise DataError(f"{table.name}: no column {missing[0]!r} (columns: {have})")
    frame = generated.frame
    duplicated = frame[id_column][frame[id_column].duplicated()].tolist()
    if duplicated:
        raise DataError(
            f"{generated.name}: id(s) {_some(duplicated)} have more than one generated "
            "caption; give one per id"
        )
    by_id: dict[str, list[str]] = {}
    for row, (key, text) in enumerate(
        zip(refs.frame[id_column], refs.frame[ref_column], strict=True)
    ):
        if not isinstance(text, str) or not text.strip():
            raise DataError(
                f"{refs.name}: row {row + 1}, column {ref_column!r}: empty reference caption"
            )
        by_id.setdefault(str(key), []).append(text)
    captions = {}
    for row, (key, text) in enumerate(zip(frame[id_column], frame[caption_column], strict=True)):
        if not isinstance(text, str):
            raise DataError(
                f"{generated.name}: row {row + 1}, column {caption_column!r}: no caption"
            )
        captions[str(key)] = text
    return caption_metrics(captions, by_id, meteor=meteor)


def _meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> tuple[float, list[float]]:
    if not java_available():
        raise PlaitError("METEOR needs Java (`java` on PATH); install a JRE or pass meteor=False")
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, each = scorer.compute_score(gts, res)
    finally:
        scorer.meteor_p.stdin.close()
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()
    return float(score), [float(v) for v in each]


def _checked(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Both sides tokenised, in the scorers' shape; every mismatch named by id."""
    if not predictions:
        raise PlaitError("no captions to score")
    missing = [k for k in predictions if k not in references]
    if missing:
        raise PlaitError(f"no reference captions for id(s) {_some(missing)}")
    gts: dict[str, list[str]] = {}
    res: dict[str, list[str]] = {}
    for key, caption in predictions.items():
        refs = references[key]
        if isinstance(refs, str):
            refs = [refs]
        if not _is_text(caption):
            raise PlaitError(f"the caption for id {key!r} is not text: {caption!r}")
        bad = [r for r in refs if not _is_text(r) or not r.strip()]
        if not refs or bad:
            raise PlaitError(f"id {key!r} needs non-empty reference captions, got {list(refs)!r}")
        gts[str(key)] = [tokenize(r) for r in refs]
        res[str(key)] = [tokenize(caption)]
    return gts, res


def _is_text(value: Any) -> bool:
    return isinstance(value, str)  # NaN from an empty CSV cell is a float, so it fails here


def _some(keys: Sequence[Any], count: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:count])
    return shown + (f" and {len(keys) - count} more" if len(keys) > count else "")
