"""The alignment task's training objective: the weighted sum of alignment objectives for
one batch of paired rows.

Only rows where both aligned modalities are present take part. Under DDP the embeddings
(with their gradients) and row fingerprints of every process are gathered, so each
process scores its rows against the whole global batch: the negatives grow with the
number of processes, as in CLIP, instead of being capped by one process's batch.

The losses themselves are functions of tensors in `plait.objectives`; this module runs
the model's towers and heads to get those tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn

from plait.alignment.model import AlignedModel
from plait.config import AlignmentConfig
from plait.encoders.base import EncoderOutput
from plait.heads.masked_region import MaskedRegionHead
from plait.objectives.alignment import TextTokens, gather, gather_with_grad, select
from plait.objectives.contrastive import clip_loss, fingerprints, positive_pairs, siglip_loss
from plait.objectives.masked_lm import IGNORE, mask_tokens, masked_lm_loss
from plait.objectives.masked_region import mask_regions, masked_region_loss
from plait.objectives.matching import hard_negatives, matching_loss, matching_pairs


class AlignmentObjective(nn.Module):
    """model + paired inputs -> {"loss": weighted total, "<objective>": each term}."""

    def __init__(self, config: AlignmentConfig, text: TextTokens | None = None) -> None:
        super().__init__()
        self.weights: dict[str, float] = {o.name: o.weight for o in config.objectives}
        self.duplicates = config.duplicates
        self.mlm_probability = config.mlm_probability
        self.mrm_ratio = config.mrm_ratio
        self.mrm_grid = config.region_grid
        self.text = text
        self.last_pairs: tuple[Tensor, Tensor, Tensor, Tensor] | None = None
        if "mlm" in self.weights and text is None:
            raise ValueError("the mlm objective needs the text modality's token ids")

    def forward(
        self,
        model: AlignedModel,
        inputs: Mapping[str, Mapping[str, Tensor]],
        presence: Mapping[str, Tensor],
    ) -> dict[str, Tensor]:
        a, b = model.pair
        both = presence[a].bool() & presence[b].bool()  # [B]
        rows = both.nonzero().squeeze(1)
        ins = {name: {k: v[rows] for k, v in inputs[name].items()} for name in (a, b)}
        out = {name: model.encode(name, ins[name]) for name in (a, b)}
        z = {name: model.project(name, out[name]) for name in (a, b)}  # [n, D] each
        prints = {name: fingerprints(dict(ins[name])) for name in (a, b)}
        # kept for validation recall, so it needs no second pass through the towers
        self.last_pairs = (z[a].detach(), z[b].detach(), prints[a], prints[b])

        # contrastive terms over the global batch (every DDP process's rows)
        za, zb = gather_with_grad(z[a]), gather_with_grad(z[b])
        global_positives = positive_pairs(gather(prints[a]), gather(prints[b]))
        terms: dict[str, Tensor] = {}
        if len(za) >= 2:
            if "clip" in self.weights:
                terms["clip"] = clip_loss(
                    za, zb, model.logit_scale, global_positives, self.duplicates
                )
            if "siglip" in self.weights:
                terms["siglip"] = siglip_loss(
                    za, zb, model.logit_scale, model.logit_bias, global_positives, self.duplicates
                )
        if "itm" in self.weights and len(rows) >= 2:
            positives = positive_pairs(prints[a], prints[b])
            terms["itm"] = self._matching(model, out, z, positives)
        if "mlm" in self.weights and len(rows) >= 1:
            terms["mlm"] = self._masked_lm(model, ins, out)
        if "mrm" in self.weights and len(rows) >= 1:
            terms["mrm"] = self._masked_regions(model, ins, out)
        weighted = [self.weights[name] * value for name, value in terms.items()]
        if weighted:
            total = torch.stack(weighted).sum()
        else:  # fewer than two complete pairs: a zero that still has a graph
            total = torch.stack([p.sum() for p in model.parameters() if p.requires_grad]).sum() * 0
        return {"loss": total, **{name: value.detach() for name, value in terms.items()}}

    def _matching(
        self,
        model: AlignedModel,
        out: dict[str, EncoderOutput],
        z: dict[str, Tensor],
        positives: Tensor,
    ) -> Tensor:
        if model.matcher is None:
            raise ValueError("the itm objective needs a model built with a matching head")
        a, b = model.pair
        similarity = z[a] @ z[b].T  # [n, n]
        index_a, index_b, label = matching_pairs(
            hard_negatives(similarity, positives), hard_negatives(similarity.T, positives.T)
        )
        pairs = {a: select(out[a], index_a), b: select(out[b], index_b)}
        present = torch.ones(len(label), dtype=torch.bool, device=label.device)
        logits = model.matcher(pairs, {a: present, b: present})  # [N, 2]
        return matching_loss(logits, label)

    def _masked_lm(
        self,
        model: AlignedModel,
        ins: dict[str, dict[str, Tensor]],
        out: dict[str, EncoderOutput],
    ) -> Tensor:
        if model.decoder is None or self.text is None:
            raise ValueError("the mlm objective needs a model built with a decoder")
        text = self.text.name
        other = next(name for name in model.pair if name != text)
        tokens = ins[text]
        masked, targets = mask_tokens(
            tokens["input_ids"],
            tokens["attention_mask"],
            mask_id=self.text.mask_id,
            vocab_size=self.text.vocab_size,
            special_ids=torch.tensor(self.text.special_ids, device=tokens["input_ids"].device),
            probability=self.mlm_probability,
        )
        hidden = model.encode(text, {**tokens, "input_ids": masked})
        chosen = targets != IGNORE  # [n, T]: only these tokens are scored
        logits = model.decoder(
            hidden.sequence, hidden.mask, out[other].sequence, out[other].mask, chosen
        )  # [N, V]
        return masked_lm_loss(logits, targets[chosen])

    def _masked_regions(
        self,
        model: AlignedModel,
        ins: dict[str, dict[str, Tensor]],
        out: dict[str, EncoderOutput],
    ) -> Tensor:
        """Mean MRM loss over the masked modalities (image and / or audio of the pair)."""
        if model.regions is None:
            raise ValueError("the mrm objective needs a model built with region heads")
        losses = []
        for name, module in model.regions.items():
            head = cast(MaskedRegionHead, module)
            other = next(n for n in model.pair if n != name)
            key = head.key
            masked, targets, chosen = mask_regions(ins[name][key], self.mrm_grid, self.mrm_ratio)
            if targets.shape[1] != head.regions:
                raise ValueError(
                    f"`{name}` input {tuple(ins[name][key].shape)} gives {targets.shape[1]} "
                    f"regions, its mrm head has {head.regions}: a smaller `alignment.mrm_grid`"
                )
            hidden = model.encode(name, {**ins[name], key: masked})
            predictions = head(
                hidden.sequence, hidden.mask, out[other].sequence, out[other].mask
            )  # [n, G, C]
            losses.append(masked_region_loss(predictions, targets, chosen))
        return torch.stack(losses).mean()
