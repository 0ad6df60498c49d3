"""Caption metrics: hand-computed values on tiny examples, agreement with the benchmark's
own Java tokenizer and scorers (when Java is present), and bad input named by id."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from plait.errors import PlaitError
from plait.evaluation.caption_metrics import caption_metrics, java_available, tokenize

needs_java = pytest.mark.skipif(not java_available(), reason="METEOR/PTB need Java")


def test_bleu_and_rouge_by_hand() -> None:
    scores = caption_metrics(
        {"a": "The cat sat on the mat."}, {"a": ["the cat is on the mat"]}, meteor=False
    )
    # 5 of 6 unigrams match; 3 of 5 bigrams (the cat, on the, the mat); same lengths
    assert scores.corpus["bleu_1"] == pytest.approx(5 / 6, abs=1e-6)
    assert scores.corpus["bleu_2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5), abs=1e-6)
    # LCS "the cat on the mat" = 5 tokens: precision = recall = 5/6, so F = 5/6
    assert scores.corpus["rouge_l"] == pytest.approx(5 / 6, abs=1e-6)
    assert scores.skipped == {"meteor": "turned off by the caller"}


def test_cider_d_by_hand() -> None:
    refs = {"a": ["red circle"], "b": ["blue square"]}
    # every n-gram is in one of the two images' references: idf = log 2 for each.
    # a: unigram cosine 1/2 (red shared, square not in a's refs), no bigram match ->
    # mean over n = 1..4 of (0.5, 0, 0, 0) = 0.125, x10 = 1.25; b is exact: (1+1)/4 x10 = 5
    scores = caption_metrics({"a": "red square", "b": "blue square"}, refs, meteor=False)
    per = dict(zip(scores.per_caption["id"], scores.per_caption["cider_d"], strict=True))
    assert per["a"] == pytest.approx(1.25)
    assert per["b"] == pytest.approx(5.0)
    assert scores.corpus["cider_d"] == pytest.approx(3.125)


def test_a_perfect_caption_beats_a_wrong_one_on_every_metric() -> None:
    refs = {"1": ["a small red circle left of a blue square"], "2": ["a big green triangle"]}
    good = caption_metrics(
        {"1": "a small red circle left of a blue square", "2": "a big green triangle"},
        refs,
        meteor=False,
    )
    bad = caption_metrics(
        {"1": "a big green triangle", "2": "two yellow stars"}, refs, meteor=False
    )
    for metric in ("bleu_1", "bleu_4", "rouge_l", "cider_d"):
        assert good.corpus[metric] > bad.corpus[metric], metric
    assert good.corpus["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert list(good.table()["metric"]) == [
        "bleu_1",
        "bleu_2",
        "bleu_3",
        "bleu_4",
        "rouge_l",
        "cider_d",
    ]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("A dog's ball, isn't it?", "a dog 's ball is n't it"),
        ("Two (small) cats -- playing...", "two -lrb- small -rrb- cats playing"),
        ("Mr. Smith's 10,000 cats", "mr. smith 's 10,000 cats"),
        ('He said "hi" to the black-and-white cat.', "he said hi to the black-and-white cat"),
        ("  Spaces\nand\tTABS  ", "spaces and tabs"),
    ],
)
def test_tokenize_like_the_benchmark(text: str, tokens: str) -> None:
    assert tokenize(text) == tokens


HARD_CASES = [
    'He said "hi" to the black-and-white cat.',
    "cats--playing in 3.5 m of snow",
    "It's the boys' toys: 2 of 'em",
    "U.S. flag; e.g. a [red] {flag}!",
    "Mr. Smith's 10,000 cats",
    "a cat... and a dog",
    "Two dogs, one black and one white, play.",
    "a well-lit room - nice",
    "I'm sure they'll win, won't they",
]


@needs_java
def test_tokenizer_agrees_with_the_java_ptb_tokenizer_on_hard_cases() -> None:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    java = PTBTokenizer().tokenize({str(i): [{"caption": s}] for i, s in enumerate(HARD_CASES)})
    assert [tokenize(s) for s in HARD_CASES] == [java[str(i)][0] for i in range(len(HARD_CASES))]


@needs_java
def test_tokenizer_and_scores_agree_with_the_reference_pipeline() -> None:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    predictions = {
        "1": "A red circle above a blue square.",
        "2": "the dog's toy isn't here!",
        "3": "Two small (green) triangles, side by side",
    }
    references = {
        "1": ["a red circle above a blue square", "A blue square below a red circle."],
        "2": ["The dog's toy is not here.", "no toy here"],
        "3": ["two green triangles side by side", "Small green triangles; two of them."],
    }
    java = PTBTokenizer()
    gts = java.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()})
    res = java.tokenize({k: [{"caption": c}] for k, c in predictions.items()})
    for key, caption in predictions.items():
        assert tokenize(caption) == res[key][0]
        assert [tokenize(r) for r in references[key]] == gts[key]
    ours = caption_metrics(predictions, references, meteor=False).corpus
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert ours["bleu_4"] == pytest.approx(bleu[3])
    assert ours["rouge_l"] == pytest.approx(Rouge().compute_score(gts, res)[0])
    assert ours["cider_d"] == pytest.approx(Cider().compute_score(gts, res)[0])


@needs_java
def test_meteor_runs_with_java() -> None:
    """One call (METEOR starts a Java process each time, ~10 s): two captions equal to
    their reference, two with no word in common."""
    refs = {"a": ["the cat sat on the mat"], "b": ["a red circle"]}
    refs |= {"c": ["the cat sat on the mat"], "d": ["a red circle"]}
    captions = {"a": "the cat sat on the mat", "b": "a red circle"}
    captions |= {"c": "dogs run fast", "d": "green trees grow"}
    scores = caption_metrics(captions, refs)
    assert "meteor" not in scores.skipped
    each = dict(zip(scores.per_caption["id"], scores.per_caption["meteor"], strict=True))
    assert each["a"] > 0.9 and each["b"] > 0.9
    assert each["c"] < 0.1 and each["d"] < 0.1
    assert 0.1 < scores.corpus["meteor"] < 0.9


def test_meteor_without_java_is_skipped_with_a_reason(monkeypatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    scores = caption_metrics({"a": "a cat"}, {"a": ["a cat"]})
    assert "meteor" not in scores.corpus
    assert "Java" in scores.skipped["meteor"]
    with pytest.raises(PlaitError, match="Java"):
        caption_metrics({"a": "a cat"}, {"a": ["a cat"]}, meteor=True)


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ({"a": "x", "b": "y"}, {"a": ["x"]}, "no reference captions for id.*'b'"),
        ({"a": float("nan")}, {"a": ["x"]}, "caption for id 'a' is not text"),
        ({"a": "x"}, {"a": []}, "id 'a' needs non-empty reference"),
        ({"a": "x"}, {"a": ["  "]}, "id 'a' needs non-empty reference"),
        ({}, {}, "no captions"),
    ],
)
def test_bad_input_is_named(predictions, references, message) -> None:
    with pytest.raises(PlaitError, match=message):
        caption_metrics(predictions, references, meteor=False)


def test_tables_and_cli(tmp_path) -> None:
    from typer.testing import CliRunner

    from plait.cli import app

    generated = tmp_path / "generated.csv"
    references = tmp_path / "references.csv"
    generated.write_text("id,caption\n1,a red circle\n2,a blue square\n")
    references.write_text("id,caption\n1,a red circle\n1,one red circle\n2,a green square\n")
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(
        app, ["caption-scores", str(generated), str(references), "--no-meteor", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "cider_d" in result.output and "meteor skipped" in result.output
    per = pd.read_csv(out)
    assert list(per["id"]) == [1, 2]
    assert per.loc[0, "bleu_1"] == pytest.approx(1.0) and per.loc[1, "bleu_1"] < 1.0

    references.write_text("id,caption\n1,a red circle\n2,\n")
    result = CliRunner().invoke(app, ["caption-scores", str(generated), str(references)])
    assert result.exit_code == 2
    assert "row 2, column 'caption': empty reference caption" in result.output
    result = CliRunner().invoke(
        app, ["caption-scores", str(generated), str(references), "--caption", "text"]
    )
    assert result.exit_code == 2 and "no column 'text'" in result.output
