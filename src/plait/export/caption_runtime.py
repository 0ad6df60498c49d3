"""A captioner over ONNX Runtime: the encoder graph once per batch, the step graph once
per generated token, and the decoding loop of `plait.heads.decoding` in between.

`OrtCaptioningModel` stands in for `CaptioningModel` (`source`, `tokens`, `generate`),
so `CaptioningPredictor` reads, batches and decodes rows with its own code. A hub LM
decoder is decoded by that loop too (not by Hugging Face `generate()`): greedy and beam
captions are the same; sampled ones follow the same options but draw other tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plait.export.caption_graphs import STEP, TOKENS
from plait.export.graphs import GraphSpec, as_numpy_feed
from plait.heads.decoding import DecodingOptions, generate
from plait.tasks.captioning_model import CaptioningModel, CaptionTokens


class OrtCaptioningModel(nn.Module):
    """The two sessions of a captioner's export; `generate(inputs, options)` as
    `CaptioningModel.generate`."""

    def __init__(
        self,
        source: str,
        tokens: CaptionTokens,
        encoder: tuple[Any, GraphSpec],
        step: tuple[Any, GraphSpec],
    ) -> None:
        super().__init__()
        self.source = source
        self.tokens = tokens
        self.encoders: dict[str, nn.Module] = {}  # no PyTorch modules here (model card)
        self.encoder_session, self.encoder_spec = encoder
        self.step_session, self.step_spec = step

    @property
    def providers(self) -> list[str]:
        return list(self.encoder_session.get_providers())

    def context(self, inputs: Mapping[str, Mapping[str, Tensor]]) -> list[np.ndarray]:
        """The decoder's context of a batch (memory and mask, or the prefix)."""
        spec = self.encoder_spec
        feed = as_numpy_feed(spec, spec.flatten(inputs, {}))
        return [np.asarray(a) for a in self.encoder_session.run(spec.output_names, feed)]

    def generate(
        self, inputs: Mapping[str, Mapping[str, Tensor]], options: DecodingOptions
    ) -> list[list[int]]:
        """The caption tokens of each row (no start / end tokens)."""
        context = self.context(inputs)
        names = [i.name for i in self.step_spec.inputs if i.key != TOKENS]

        def step(tokens: Tensor, rows: Tensor) -> Tensor:
            index = rows.numpy()
            feed = {f"{STEP}.{TOKENS}": tokens.numpy()}
            feed.update({name: c[index] for name, c in zip(names, context, strict=True)})
            logits = self.step_session.run([self.step_spec.output], feed)[0]
            return torch.from_numpy(np.asarray(logits))  # [N, V]

        tokens = self.tokens
        return generate(step, len(context[0]), bos=tokens.bos, eos=tokens.eos, options=options)


def caption_agreement(
    model: CaptioningModel,
    onnx: OrtCaptioningModel,
    inputs: Mapping[str, Mapping[str, Tensor]],
    options: DecodingOptions,
) -> dict[str, Any]:
    """How many rows get the same caption tokens from PyTorch and from ONNX Runtime."""
    expected = model.generate(inputs, options)
    got = onnx.generate(inputs, options)
    differ = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b]
    return {
        "decoding": {k: v for k, v in options.as_dict().items() if k in ("num_beams",
                                                                        "max_length")},
        "rows": len(expected),
        "same": len(expected) - len(differ),
        "differing_rows": differ,
    }  # fmt: skip
