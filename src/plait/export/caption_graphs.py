"""A captioner as two ONNX graphs: its encoder side and one decoding step.

`caption_encoder.onnx`: the source modality's tensors -> the context the decoder reads
(the scratch Transformer decoder: the encoder's sequence `memory` [B, T, D] and its mask
`memory_mask` [B, T]; a hub LM: the learned `prefix` [B, P, E], the mapper included).
`caption_step.onnx`: the tokens so far [N, t] (start token first) + that context ->
next-token logits [N, V]. The decoding loop (greedy, beams, sampling) stays in Python
(`plait.heads.decoding.generate`, as for the PyTorch scratch decoder) and calls the step
graph once per token, recomputing every position (no key/value cache).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from plait.export.graphs import BATCH, GraphInput, GraphSpec, tensor_axes
from plait.export.parity import ParityCase
from plait.heads.prefix_lm import PrefixLMDecoder
from plait.tasks.captioning_model import CaptioningModel

ENCODER_FILE = "caption_encoder.onnx"
STEP_FILE = "caption_step.onnx"
STEP = "decoder"  # the step graph's inputs are `decoder.<name>`
TOKENS = "tokens"
LOGITS = "logits"
MEMORY_AXES = {0: BATCH, 1: "memory"}


def context_names(model: CaptioningModel) -> list[str]:
    """What the encoder graph outputs and the step graph reads, in order."""
    return ["prefix"] if isinstance(model.decoder, PrefixLMDecoder) else ["memory", "memory_mask"]


def encoder_spec(
    model: CaptioningModel, sample: Mapping[str, Mapping[str, Tensor]], kind: str
) -> GraphSpec:
    """The encoder graph over the source modality's processor tensors."""
    source = model.source
    inputs = [
        GraphInput(source, key, tensor_axes(kind, source, key, value.dim()))
        for key, value in sample[source].items()
    ]
    first, *rest = context_names(model)
    axes = {0: BATCH} if first == "prefix" else dict(MEMORY_AXES)
    return GraphSpec(ENCODER_FILE, inputs, first, axes, {n: dict(MEMORY_AXES) for n in rest})


def step_spec(model: CaptioningModel) -> GraphSpec:
    inputs = [GraphInput(STEP, TOKENS, {0: BATCH, 1: "steps"})]
    for name in context_names(model):
        inputs.append(GraphInput(STEP, name, {0: BATCH} if name == "prefix" else MEMORY_AXES))
    return GraphSpec(STEP_FILE, inputs, LOGITS)


class CaptionEncoderGraph(nn.Module):
    """Flat source tensors -> the decoder's context (memory and mask, or the prefix)."""

    def __init__(self, model: CaptioningModel, spec: GraphSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec

    def forward(self, *tensors: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        inputs = {item.key: t for item, t in zip(self.spec.inputs, tensors, strict=True)}
        encoded = self.model.encode({self.model.source: inputs})
        decoder = self.model.decoder
        if isinstance(decoder, PrefixLMDecoder):
            prefix: Tensor = decoder.mapper(encoded.pooled)  # [B, P, E]
            return prefix
        return encoded.sequence, encoded.mask.bool()  # [B, T, D], [B, T]


class CaptionStepGraph(nn.Module):
    """tokens [N, t] (start token first) + context -> the next token's logits [N, V]."""

    def __init__(self, model: CaptioningModel) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, *tensors: Tensor) -> Tensor:  # flat, as every graph (dynamo's shapes)
        tokens, *context = tensors
        decoder = self.decoder
        if isinstance(decoder, PrefixLMDecoder):
            (prefix,) = context  # [N, P, E]; the LM never saw the start token
            words = decoder.lm.get_input_embeddings()(tokens[:, 1:])  # [N, t - 1, E]
            logits: Tensor = decoder.lm(inputs_embeds=torch.cat([prefix, words], 1)).logits
            return logits[:, -1]  # [N, V]
        memory, mask = context
        return decoder(tokens, memory, mask)[:, -1]  # [N, V]


def step_cases(
    context: list[Tensor], bos: int, vocab_size: int, longest: int, seed: int = 0
) -> list[ParityCase]:
    """Step inputs at several batch sizes and token counts (random tokens after the
    start token), over the context of real rows: 1 row x 1 token, 3 rows x 3 tokens,
    every row x `longest` tokens, and beam-like repeated rows x 2 tokens."""
    rows = len(context[0])
    generator = torch.Generator().manual_seed(seed)
    few = min(3, rows)
    shapes = [
        ("1 row, 1 token", [0], 1),
        (f"{few} rows, 3 tokens", list(range(few)), 3),
        (f"{rows} rows, {longest} tokens", list(range(rows)), longest),
        ("beams (rows repeated), 2 tokens", [r for r in range(min(2, rows)) for _ in range(3)], 2),
    ]
    names = ["prefix"] if len(context) == 1 else ["memory", "memory_mask"]
    cases = []
    for name, index, length in shapes:
        tokens = torch.randint(0, vocab_size, (len(index), length), generator=generator)
        tokens[:, 0] = bos  # [N, t]
        picked = torch.tensor(index)
        values = {TOKENS: tokens}
        values.update({n: c[picked] for n, c in zip(names, context, strict=True)})
        present = {STEP: torch.ones(len(index), dtype=torch.bool)}
        cases.append(ParityCase(name, {STEP: values}, present))
    return cases
