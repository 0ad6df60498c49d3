"""Multilabel: any subset of labels per row; binary cross-entropy per label."""

from __future__ import annotations

from plait.tasks.supervised import SupervisedTask


class MultilabelTask(SupervisedTask):
    name = "multilabel"
