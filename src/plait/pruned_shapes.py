"""The shapes of a structurally pruned model, so its saved folder rebuilds and reloads.

Structured pruning (`plait prune --structured`) removes whole channels: a layer built from
`config.yaml` is wider than the weights in `model.safetensors`. The folder then holds
`pruned_shapes.json` (listed in the manifest like every file)::

    {"format": "plait-pruned-shapes", "version": 1,
     "modules": {"fusion.net.0": {"class": "Linear",
                                  "tensors": {"weight": [12, 48], "bias": [12]},
                                  "sizes": {"in_features": 48, "out_features": 12}}}}

Loading builds the model from the config as always, then resizes each listed module
(its own parameters and buffers, and its integer size attributes such as `out_features`
or `normalized_shape`, which some forwards read) before the weights are loaded into it.
A folder without the file is an unpruned model: nothing changes for older folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from plait.errors import PlaitError

PRUNED_SHAPES = "pruned_shapes.json"
FORMAT = "plait-pruned-shapes"
VERSION = 1


def tensor_shapes(model: nn.Module) -> dict[str, dict[str, list[int]]]:
    """{module path: {tensor name: shape}} of every module's own parameters and buffers."""
    shapes: dict[str, dict[str, list[int]]] = {}
    for path, module in model.named_modules():
        own = {
            **{n: list(p.shape) for n, p in module.named_parameters(recurse=False)},
            **{n: list(b.shape) for n, b in module.named_buffers(recurse=False) if b is not None},
        }
        if own:
            shapes[path] = own
    return shapes


def changed_modules(model: nn.Module, before: dict[str, dict[str, list[int]]]) -> dict[str, Any]:
    """The `modules` entry of pruned_shapes.json: each module of `model` whose tensors no
    longer have the shapes in `before` (from `tensor_shapes` of the unpruned model)."""
    modules: dict[str, Any] = {}
    after = tensor_shapes(model)
    named = dict(model.named_modules())
    for path, tensors in after.items():
        if before.get(path) != tensors:
            modules[path] = {
                "class": type(named[path]).__name__,
                "tensors": tensors,
                "sizes": _size_attributes(named[path]),
            }
    return modules


def _size_attributes(module: nn.Module) -> dict[str, Any]:
    """The module's public integer attributes (and tuples of them): the sizes a forward
    may read, such as `in_features`, `normalized_shape` or `head_dim`."""
    sizes: dict[str, Any] = {}
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, bool):
            continue
        if isinstance(value, int):
            sizes[name] = value
        elif (
            isinstance(value, tuple | list)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            sizes[name] = list(value)
    return sizes


def shapes_document(modules: dict[str, Any]) -> dict[str, Any]:
    """The whole pruned_shapes.json content."""
    return {"format": FORMAT, "version": VERSION, "modules": modules}


def read_pruned_shapes(folder: str | Path) -> dict[str, Any]:
    """The `modules` of the folder's pruned_shapes.json; {} when the model is not pruned."""
    path = Path(folder) / PRUNED_SHAPES
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text())
        modules = document["modules"]
        version = int(document["version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PlaitError(f"{path} is corrupt or unreadable: {exc}") from None
    if document.get("format") != FORMAT or not isinstance(modules, dict):
        raise PlaitError(f"{path} is not a Plait pruned-shapes file")
    if version > VERSION:
        raise PlaitError(f"{path} was written by a newer Plait (version {version}); upgrade")
    return modules


def resize_modules(model: nn.Module, modules: dict[str, Any], source: str = PRUNED_SHAPES) -> None:
    """Give each listed module of `model` (just built from its config) the pruned shapes:
    empty tensors of the recorded shapes, filled when the weights are loaded."""
    named = dict(model.named_modules())
    for path, entry in modules.items():
        module = named.get(path)
        if module is None or type(module).__name__ != entry.get("class"):
            raise PlaitError(
                f"{source} lists module `{path}` ({entry.get('class')}) that the model built "
                "from config.yaml does not have: the folder's files do not belong together"
            )
        for name, value in entry.get("sizes", {}).items():
            setattr(module, name, tuple(value) if isinstance(value, list) else value)
        for name, shape in entry["tensors"].items():
            _resize(module, path, name, shape, source)


def _resize(module: nn.Module, path: str, name: str, shape: list[int], source: str) -> None:
    if name in module._parameters and module._parameters[name] is not None:
        old = module._parameters[name]
        assert old is not None
        empty = torch.empty(shape, dtype=old.dtype, device=old.device)
        module._parameters[name] = nn.Parameter(empty, requires_grad=old.requires_grad)
    elif name in module._buffers and module._buffers[name] is not None:
        old_buffer = module._buffers[name]
        assert old_buffer is not None
        module._buffers[name] = torch.empty(shape, dtype=old_buffer.dtype)
    else:
        raise PlaitError(f"{source}: module `{path}` has no tensor `{name}` to resize")


def apply_pruned_shapes(model: nn.Module, folder: str | Path) -> dict[str, Any]:
    """Resize `model` per the folder's pruned_shapes.json (if any); returns its modules."""
    modules = read_pruned_shapes(folder)
    if modules:
        resize_modules(model, modules, str(Path(folder) / PRUNED_SHAPES))
    return modules
