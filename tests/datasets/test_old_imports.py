"""The builders moved from `plait.data` to `plait.datasets`; the old paths still work."""

from __future__ import annotations

import importlib

import pytest

MODULES = ("demo", "shapes", "digits", "avmnist")


@pytest.mark.parametrize("name", MODULES)
def test_old_path_reexports_every_public_name(name: str):
    new = importlib.import_module(f"plait.datasets.{name}")
    old = importlib.import_module(f"plait.data.{name}")
    assert new.__all__ and old.__all__ == new.__all__
    for public in new.__all__:
        assert getattr(old, public) is getattr(new, public), public
    assert "kept for old imports" in (old.__doc__ or "").lower()


@pytest.mark.parametrize("name", (*MODULES, "tone_captions", "tone_questions"))
def test_all_lists_every_public_function_and_class(name: str):
    """An `__all__` that forgot a public builder would silently shrink the old path."""
    import inspect

    module = importlib.import_module(f"plait.datasets.{name}")
    defined = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    }
    assert defined <= set(module.__all__)


def test_old_imports_users_hold():
    from plait.data.avmnist import build_avmnist, read_idx
    from plait.data.demo import generate_demo
    from plait.data.digits import build_digits
    from plait.data.shapes import CONCEPTS, generate_shapes
    from plait.datasets import avmnist, demo, digits, shapes

    assert build_avmnist is avmnist.build_avmnist and read_idx is avmnist.read_idx
    assert generate_demo is demo.generate_demo and build_digits is digits.build_digits
    assert generate_shapes is shapes.generate_shapes and CONCEPTS is shapes.CONCEPTS
