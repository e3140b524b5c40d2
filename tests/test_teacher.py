"""The distillation teacher: picked for its convolutions, not for weights a flattened dense layer holds, from the
space's largest candidate and a DS-CNN under the same cap."""

from __future__ import annotations

import numpy as np

from tinycompile.arch import ArchSpec, Layer
from tinycompile.search.space import load_space
from tinycompile.search.teacher import TEACHER_MAX_MACS, conv_weights, teacher_candidates, teacher_spec
from tinycompile.tasks import Task


def shaped_task(input_shape: tuple[int, int, int], classes: int) -> Task:
    """A task of the given shape (teacher_spec reads only its input shape and class count)."""
    x = np.zeros((2 * classes, *input_shape), np.float32)
    y = np.arange(2 * classes) % classes
    return Task("shaped", x, y, x, y, x, y, classes, 0.0, 1.0)


def test_the_kws_teacher_holds_its_weights_in_convolutions() -> None:
    # On the keyword task's MFCC shape the candidate with the most parameters under the cap is a flattened dense
    # layer behind 8-channel convolutions; the teacher must be a real feature extractor.
    spec = teacher_spec(load_space("cnn2d"), shaped_task((1, 49, 10), 12), seed=0)
    dense = sum(int(np.prod(s)) for layer, s in zip(spec.layers, spec.weight_shapes()) if layer.op == "dense")
    assert sum(spec.macs()) <= TEACHER_MAX_MACS
    assert conv_weights(spec) > dense
    assert conv_weights(spec) > 20_000


def test_conv_weights_count_convolutions_only() -> None:
    spec = ArchSpec((1, 6, 6), 3, (
        Layer("conv", (-1,), channels=8, kernel=(3, 3), relu=True),  # 8 x 1 x 3 x 3 = 72
        Layer("dwconv", (0,), kernel=(3, 3), relu=True),  # 8 x 1 x 3 x 3 = 72
        Layer("flatten", (1,)),
        Layer("dense", (2,), channels=3),  # 3 x 32: not a convolution
    ))
    assert conv_weights(spec) == 144


def test_the_teacher_is_chosen_from_the_spaces_largest_and_a_ds_cnn_under_the_cap() -> None:
    task = shaped_task((1, 49, 10), 12)
    space, ds = teacher_candidates(load_space("cnn2d"), task, seed=0)
    assert space.to_dict() == teacher_spec(load_space("cnn2d"), task, seed=0).to_dict()
    assert ds.meta["name"] == "ds-cnn-54x4"  # the widest under 2 M MACs: 55 channels would be over
    assert sum(ds.macs()) <= TEACHER_MAX_MACS
    assert teacher_candidates(load_space("cnn2d"), shaped_task((1, 8, 8), 10), seed=0)[1].meta["name"] == "ds-cnn-64x4"
