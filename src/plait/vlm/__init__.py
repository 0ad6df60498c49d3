"""Large vision-language models: describe pictures and sounds, label tables.

Two backends speak one protocol (`plait.vlm.base.VlmBackend`): a local hub model through
transformers' image-text-to-text classes, and any OpenAI-compatible chat-completions
server. Both sit behind an on-disk cache, so asking twice costs nothing.
"""
