"""For the local backend's tests: a tiny random-init LLaVA (CLIP vision tower + 1-layer
Llama, width 16) with a byte-level BPE tokenizer trained offline on a few sentences, saved with `save_pretrained`: real
vision-language weights cannot be fetched here, so these tests check the plumbing (shapes,
batching, constrained answers, caching, saving), not what the model says. Its weights are
drawn wide (initializer_range 0.5) so that different pictures get different answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SENTENCES = [
    "a red circle on a blue background",
    "a green square next to a yellow triangle",
    "describe this picture in one short sentence",
    "which one of these classes does this picture belong to: cat, dog, bird",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def save_chat_vlm(folder: Path) -> Path:
    """LLaVA + processor (16x16 pictures, 4 patch tokens each) in `folder`."""
    import transformers as tf
    from tokenizers import ByteLevelBPETokenizer

    specials = ["<pad>", "<eos>", "<image>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 4, vocab_size=300, min_frequency=1,
                            special_tokens=specials, show_progress=False)  # fmt: skip
    tokenizer = tf.PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, pad_token="<pad>",
                                           eos_token="<eos>", extra_special_tokens={"image_token": "<image>"})  # fmt: skip
    image_processor = tf.CLIPImageProcessor(size={"shortest_edge": 16},
                                            crop_size={"height": 16, "width": 16})  # fmt: skip
    processor = tf.LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                  patch_size=8, vision_feature_select_strategy="default",
                                  num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)  # fmt: skip
    vision = tf.CLIPVisionConfig(image_size=16, patch_size=8, hidden_size=16, intermediate_size=32,
                                 num_hidden_layers=1, num_attention_heads=2, initializer_range=0.5)  # fmt: skip
    text = tf.LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                          max_position_embeddings=256, initializer_range=0.5, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)  # fmt: skip
    config = tf.LlavaConfig(vision_config=vision, text_config=text, vision_feature_layer=-1,
                            image_token_index=tokenizer.convert_tokens_to_ids("<image>"))  # fmt: skip
    tf.set_seed(0)
    tf.LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_pictures(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` small random PNGs (different sizes, so resizing is exercised)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(12 + 2 * i, 20, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i}.png")
        paths.append(folder / f"p{i}.png")
    return paths
