"""The depthwise convolution over row pairs on DS-CNN-sized maps (DSP cores): the weight layout against a direct
depthwise convolution in numpy, which layers take it, and its kernels bit-exact on QEMU."""

from __future__ import annotations

import numpy as np
import pytest
from mcu_helpers import random_graph

from tinycompile.arch import ArchSpec, Layer
from tinycompile.mcu import layout, packing
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.targets import load_target

L = Layer


def _depthwise(x: np.ndarray, w: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """A direct depthwise convolution of a padded map ``x`` (H, W, C) with ``w`` (KH, KW, C), int64."""
    kh, kw, _ = w.shape
    sh, sw = stride
    ho, wo = (x.shape[0] - kh) // sh + 1, (x.shape[1] - kw) // sw + 1
    out = np.zeros((ho, wo, x.shape[2]), np.int64)
    for i, j in np.ndindex(kh, kw):
        out += x[i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw] * w[i, j]
    return out


@pytest.mark.parametrize(("kernel", "stride", "size"), [((3, 3), (1, 1), (9, 6)), ((3, 3), (1, 1), (8, 5)),
                                                        ((3, 3), (2, 2), (9, 9)), ((5, 3), (1, 2), (10, 7)),
                                                        ((2, 2), (1, 1), (6, 4)), ((1, 3), (3, 1), (7, 5))])
def test_row_pair_products_equal_the_depthwise_convolution(kernel: tuple[int, int], stride: tuple[int, int],
                                                           size: tuple[int, int]) -> None:
    """The kernel's arithmetic in numpy: output row ``h`` meets the pairs of padded rows from ``sh h // 2`` with its
    phase's weights, one dual product per pair and kernel column."""
    rng = np.random.default_rng(sum(kernel) + sum(size))
    c = 8
    x = rng.integers(-128, 128, (*size, c))
    w = rng.integers(-128, 128, (*kernel, c))
    want = _depthwise(x, w, stride)
    ho, wo, _ = want.shape
    packed = packing.row_pair_weight(w.astype(np.int8), stride).astype(np.int64)
    assert packed.shape == layout.row_pair_weight_shape(c, kernel, stride)
    rows = layout.row_pair_rows(kernel[0], stride[0], ho)
    plane = np.zeros((2 * rows, x.shape[1], c), np.int64)  # rows past the map meet zero weights or the spare row
    plane[: min(2 * rows, size[0])] = x[: 2 * rows]
    pairs = plane.reshape(rows, 2, x.shape[1], c)
    got = np.zeros_like(want)
    for h, col in np.ndindex(ho, wo):
        r0 = stride[0] * h
        for j, kc, e in np.ndindex(packed.shape[2], kernel[1], 2):
            got[h, col] += pairs[r0 // 2 + j, e, col * stride[1] + kc] * packed[:, r0 % 2 if packed.shape[1] == 2 else 0, j, kc, e]
    np.testing.assert_array_equal(got, want)


def _dw_graph(h: int, w: int, channels: int, kernel: tuple[int, int], stride: tuple[int, int],
              padding: tuple[int, int, int, int], seed: int):
    """A 3x3 conv into ``channels``, the depthwise conv under test, a dense layer."""
    spec = ArchSpec((3, h, w), 4, (
        L("conv", (-1,), channels=channels, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        L("dwconv", (0,), kernel=kernel, stride=stride, padding=padding, relu=True),
        L("flatten", (1,)), L("dense", (2,), channels=4)))  # fmt: skip
    return (spec, *random_graph(spec, seed, 4))


def test_row_pairs_take_the_maps_whose_plane_fits() -> None:
    assert layout.kernel_path("dwconv", 64, 64, (3, 3), "dsp", (1, 1), (1, 1, 1, 1), (25, 5)) == "rowpairs"
    assert layout.kernel_path("dwconv", 64, 64, (3, 3), "mve", (1, 1), (1, 1, 1, 1), (25, 5)) == "mve"
    assert layout.kernel_path("dwconv", 8, 8, (3, 3), None, (1, 1), (1, 1, 1, 1), (25, 5)) == "scalar"
    assert layout.kernel_path("dwconv", 6, 6, (3, 3), "dsp", (1, 1), (1, 1, 1, 1), (25, 5)) == "dsp"  # not in fours
    # 48 x 48: four channels' plane is 16 x 25 x 50 B, past the bound
    assert layout.kernel_path("dwconv", 8, 8, (3, 3), "dsp", (1, 1), (1, 1, 1, 1), (48, 48)) == "dsp"
    assert layout.kernel_path("dwconv", 8, 8, (3, 3), "dsp") == "dsp"  # no map given
    assert layout.weight_bytes("dwconv", 64, 64, (3, 3), "dsp", (1, 1), (25, 5)) == 64 * 2 * 2 * 3 * 2 * 2
    assert layout.weight_bytes("dwconv", 64, 64, (3, 3), "dsp", (2, 2), (12, 3)) == 64 * 1 * 2 * 3 * 2 * 2
    spec, graph, _ = _dw_graph(25, 5, 8, (3, 3), (1, 1), (1, 1, 1, 1), 0)
    assert [packing.row_pairs(op) for op in graph.ops] == [False, True, False, False]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("target", "codegen", "h", "w", "kernel", "stride", "padding"), [
    ("cortex-m4", "llvm", 7, 5, (3, 3), (1, 1), (1, 1, 1, 1)),  # odd rows: a spare one
    ("cortex-m4", "c", 8, 5, (3, 3), (1, 1), (1, 1, 1, 1)),
    ("cortex-m7", "llvm", 7, 6, (3, 3), (1, 1), (1, 1, 1, 1)),  # the phases unrolled (its YAML)
    ("cortex-m4", "llvm", 9, 8, (3, 3), (2, 2), (0, 1, 0, 1)),  # stride 2: one phase
    ("cortex-m4", "llvm", 8, 6, (5, 3), (1, 1), (2, 2, 1, 1))])
def test_row_pair_kernels_are_bit_exact_on_qemu(target: str, codegen: str, h: int, w: int, kernel: tuple[int, int],
                                                stride: tuple[int, int], padding: tuple[int, int, int, int],
                                                tmp_path) -> None:
    spec, graph, vectors = _dw_graph(h, w, 8, kernel, stride, padding, seed=h * w)
    assert packing.row_pairs(graph.ops[1])
    result = build_and_run(graph, spec, load_target(target), tmp_path, vectors, codegen,
                           compiled=compile_graph(graph), check_layers=True)
    assert result.mismatches == 0
