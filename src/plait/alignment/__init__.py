"""Aligned models: two modalities embedded in one space (CLIP / SigLIP / CLAP style).

`AlignedModel` is the plain module, `build_aligned_model` turns a config into one,
`AlignedPredictor` embeds, scores, classifies zero-shot, evaluates, saves and loads.
"""

from plait.alignment.model import AlignedModel

__all__ = ["AlignedModel"]
