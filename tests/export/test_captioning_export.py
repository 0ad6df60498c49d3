"""A captioner exports as two graphs (encoder side, one decoding step) whose captions,
decoded in Python over ONNX Runtime, equal PyTorch's; a disagreement is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import plait
from plait.errors import PlaitError
from plait.export import OnnxCaptioningPredictor
from plait.export import exporters as exporters_module
from plait.export.caption_runtime import OrtCaptioningModel


@pytest.fixture(scope="module")
def captioner_export(tiny_captioner: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("caption-export") / "onnx"
    result = plait.export(tiny_captioner, out)
    return tiny_captioner, out, result


def _test_table(model: Path) -> Path:
    return Path(plait.load(model).config.data.test or "")


def test_encoder_and_step_graphs_are_recorded_with_their_parity(captioner_export):
    _, out, result = captioner_export
    record = json.loads((out / "export.json").read_text())
    assert record["task"] == "captioning"
    assert set(record["graphs"]) == {"caption encoder", "caption step"}
    encoder, step = record["graphs"]["caption encoder"], record["graphs"]["caption step"]
    assert [i["name"] for i in encoder["inputs"]] == ["image.pixel_values"]
    assert encoder["output"]["name"] == "memory"
    assert [o["name"] for o in encoder["more_outputs"]] == ["memory_mask"]
    assert [i["name"] for i in step["inputs"]] == [
        "decoder.tokens", "decoder.memory", "decoder.memory_mask"
    ]  # fmt: skip
    assert step["inputs"][0]["dynamic_axes"] == {"0": "batch", "1": "steps"}
    assert (out / "caption_encoder.onnx").is_file() and (out / "caption_step.onnx").is_file()
    cases = {c["case"] for c in step["parity"]}
    assert "1 row, 1 token" in cases and "beams (rows repeated), 2 tokens" in cases
    assert all(c.ok for c in result.parity) and len(result.parity) >= 8
    captioning = record["captioning"]
    assert captioning["decoder"] == "transformer" and "no key/value cache" in captioning["exported"]
    beams = [c["decoding"]["num_beams"] for c in captioning["caption_agreement"]]
    assert beams == [1, 3]
    assert all(c["same"] == c["rows"] == 6 for c in captioning["caption_agreement"])


def test_loaded_export_captions_as_pytorch_does(captioner_export):
    model, out, _ = captioner_export
    torch_model, onnx_model = plait.load(model), plait.load(out)
    assert isinstance(onnx_model, OnnxCaptioningPredictor)
    assert isinstance(onnx_model.model, OrtCaptioningModel)
    table = _test_table(model)
    for options in ({}, {"num_beams": 2, "no_repeat_ngram_size": 2}, {"max_length": 3}):
        got = onnx_model.caption(table, progress=False, **options)
        expected = torch_model.caption(table, progress=False, **options)
        pd.testing.assert_frame_equal(got, expected)
    assert got["caption"].str.split().str.len().le(3).all()  # max_length: 3 tokens at most
    sampled = [
        onnx_model.caption(table, progress=False, do_sample=True, top_p=0.9, seed=s) for s in (1, 1)
    ]
    pd.testing.assert_frame_equal(*sampled)
    assert "Exported: the encoder side and one decoding step" in onnx_model.model_card()
    scores = onnx_model.evaluate(table, meteor=False)  # METEOR starts Java: tested elsewhere
    assert scores["bleu_1"] == pytest.approx(torch_model.evaluate(table, meteor=False)["bleu_1"])


def test_captions_that_differ_from_pytorch_refuse_the_export(
    tiny_captioner: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    real = OrtCaptioningModel.generate

    def off_by_one(self, inputs, options):
        rows = real(self, inputs, options)
        return [[*r[:-1], (r[-1] + 1) % 5] if r else [1] for r in rows]

    monkeypatch.setattr(OrtCaptioningModel, "generate", off_by_one)
    out = tmp_path / "onnx"
    with pytest.raises(PlaitError, match=r"captions differ from PyTorch's on 6 of 6 parity rows"):
        plait.export(tiny_captioner, out, exporter="legacy")
    assert not out.exists()


def test_a_step_graph_that_fails_everywhere_is_refused_by_name(
    tiny_captioner: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def broken(graph, spec, sample, path):
        if spec.file == "caption_step.onnx":
            raise RuntimeError("this exporter cannot trace the decoder")
        exporters_module.export_legacy(graph, spec, sample, path)

    monkeypatch.setitem(exporters_module.EXPORTERS, "legacy", broken)
    with pytest.raises(PlaitError, match="cannot export caption step.*cannot trace the decoder"):
        plait.export(tiny_captioner, tmp_path / "onnx", exporter="legacy")


def test_a_table_without_the_source_column_is_a_clear_error(tiny_captioner: Path, tmp_path: Path):
    table = tmp_path / "no-images.csv"
    pd.DataFrame({"id": ["a"], "image": [None], "caption": ["x"]}).to_csv(table, index=False)
    with pytest.raises(PlaitError, match="image"):
        plait.export(tiny_captioner, tmp_path / "onnx", data=table)


def test_quantizing_a_captioner_is_refused_clearly(captioner_export, tmp_path: Path):
    from plait.compress.quantize import quantize

    _, out, _ = captioner_export
    with pytest.raises(PlaitError, match="quantizing a captioner is not built yet"):
        quantize(out, out=tmp_path / "int8")
    assert not (tmp_path / "int8").exists()


def test_a_hub_lm_captioner_exports_its_prefix_and_lm_step(
    tiny_captioner: Path, tiny_gpt2: Path, tmp_path: Path
):
    """The ClipCap-style decoder: encoder + prefix mapper in one graph, the GPT-2 step
    (prefix + tokens so far) in the other; greedy and beam captions equal Hugging Face
    `generate()`'s on the PyTorch model."""
    import yaml

    from plait.config import PlaitConfig
    from plait.data import prepare_data
    from plait.tasks import task_of

    raw = yaml.safe_load((tiny_captioner / "config.yaml").read_text())
    raw["captioning"] = {"decoder": "hub", "model": str(tiny_gpt2), "prefix_length": 2,
                         "max_length": 6}  # fmt: skip
    raw["modalities"]["caption"]["encoder"] = {"type": "huggingface", "model": str(tiny_gpt2)}
    config = PlaitConfig.from_dict(raw)
    data = prepare_data(config, progress=False)
    task = task_of(config)
    model = task.build(config, data.processors, data.labels).eval()
    folder = task.predictor_of(model, config, data.processors, data.labels).save(tmp_path / "m")
    result = plait.export(folder, tmp_path / "onnx")
    record = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert record["captioning"]["decoder"] == "hub"
    assert record["graphs"]["caption encoder"]["output"]["name"] == "prefix"
    assert [i["name"] for i in record["graphs"]["caption step"]["inputs"]] == [
        "decoder.tokens", "decoder.prefix"
    ]  # fmt: skip
    assert all(c.ok for c in result.parity)
    table = Path(config.data.test or "")
    loaded = plait.load(tmp_path / "onnx")  # the LM's config from the export's own hub/
    assert Path(loaded.config.captioning.model) == tmp_path / "onnx" / "hub" / "_decoder"
    for options in ({}, {"num_beams": 2}):
        got = plait.load(tmp_path / "onnx").caption(table, progress=False, **options)
        pd.testing.assert_frame_equal(got, plait.load(folder).caption(table, progress=False,
                                                                      **options))  # fmt: skip
