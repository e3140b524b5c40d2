"""The pointwise register tile (tinycompile/mcu/microkernels.py): its instruction list computes the tile's dot
products (run here by an interpreter of its three instructions), its limits, the weight layout it reads, and whole
kernels built with it bit-exact on QEMU: odd and even pixel counts, both load orders, LLVM and C (GCC's assembly)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from mcu_helpers import random_graph

from tinycompile.arch import ArchSpec, Layer
from tinycompile.mcu import microkernels, packing
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.targets import load_target

L = Layer
_LOAD = re.compile(r"ldrd? (\{\w+\})(?:, (\{\w+\}))?, \[\{(P[01])\}, #(\d+)\]$")
_ADD = re.compile(r"add \{(P[01])\}, \{(P[01])\}, #(\d+)$")
_MAC = re.compile(r"smlad \{(A\d)\}, \{(X\d)\}, \{(W\d)\}, \{(A\d)\}$")


def _half(v: int, top: int) -> int:
    h = (v >> (16 * top)) & 0xFFFF
    return h - 0x10000 if h & 0x8000 else h


def _interpret(lines: list[str], memory: dict[str, np.ndarray]) -> np.ndarray:
    """Run the tile's instructions on word arrays ``memory["P0"]`` and ``memory["P1"]`` (the pointers start at their
    first words); the 8 accumulators."""
    regs = {f"A{i}": 0 for i in range(8)} | {"P0": 0, "P1": 0}  # pointers as byte offsets
    for line in lines:
        if m := _ADD.match(line):
            assert m.group(1) == m.group(2) and int(m.group(3)) <= 4095, line
            regs[m.group(1)] += int(m.group(3))
        elif m := _LOAD.match(line):
            offset = int(m.group(4))
            assert offset <= (1020 if m.group(2) else 4095), line  # the Thumb-2 immediates of LDRD and LDR
            words = memory[m.group(3)]
            for k, reg in enumerate(r for r in m.group(1, 2) if r):
                regs[reg.strip("{}")] = int(words[(regs[m.group(3)] + offset) // 4 + k])
        else:
            m = _MAC.match(line)
            assert m is not None and m.group(1) == m.group(4), line
            x, w = regs[m.group(2)], regs[m.group(3)]
            total = regs[m.group(1)] + _half(x, 0) * _half(w, 0) + _half(x, 1) * _half(w, 1)
            regs[m.group(1)] = (total + 2**31) % 2**32 - 2**31
    return np.array([regs[f"A{i}"] for i in range(8)])


def _pack(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (lo.astype(np.int64) & 0xFFFF) | (hi.astype(np.int64) << 16)


@pytest.mark.parametrize("order", microkernels.LOAD_ORDERS)
@pytest.mark.parametrize("groups", [1, 3, 16, 64])  # 64: offsets beyond an LDRD's, the pointers advance
def test_tile_instructions_compute_the_dot_products(order: str, groups: int) -> None:
    rng = np.random.default_rng(groups)
    x = rng.integers(-128, 128, (2, 4 * groups))  # two pixels' input channels
    w = rng.integers(-128, 128, (4, 4 * groups))  # four output channels
    # the expanded inputs, words (group, half, pixel): channels (4g + a, 4g + a + 2) as halfwords
    g, a, p = np.meshgrid(np.arange(groups), np.arange(2), np.arange(2), indexing="ij")
    xe = _pack(x[p, 4 * g + a], x[p, 4 * g + a + 2]).reshape(-1)
    w7 = packing.pointwise_weight_array(w.reshape(4, 1, 1, -1))
    wp = _pack(w7[..., 0], w7[..., 1]).reshape(-1)
    lines = microkernels.pointwise_tile_asm(groups, order)
    got = _interpret(lines, {"P0": xe, "P1": wp})
    np.testing.assert_array_equal(got, (x @ w.T).reshape(-1))
    assert sum(line.startswith("smlad") for line in lines) == 16 * groups  # two MACs each: 32 per group


def test_tile_refuses_an_unknown_order() -> None:
    with pytest.raises(ValueError, match="unknown load order 'runs'; known: pairs, interleaved"):
        microkernels.pointwise_tile_asm(2, "runs")


def test_pointwise_weight_layout() -> None:
    w = np.arange(8 * 12).reshape(8, 1, 1, 12)
    w7 = packing.pointwise_weight_array(w)
    assert w7.shape == (2, 1, 1, 3, 2, 4, 2)
    for t, g, a, c, b in np.ndindex(2, 3, 2, 4, 2):
        assert w7[t, 0, 0, g, a, c, b] == w[4 * t + c, 0, 0, 4 * g + a + 2 * b]


def _pointwise_graph(h: int, w: int, seed: int, cin: int = 8):
    """A pointwise conv (cin -> 12 channels) on an h x w map between a 3x3 conv and a dense layer."""
    spec = ArchSpec((3, h, w), 4, (
        L("conv", (-1,), channels=cin, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        L("conv", (0,), channels=12, kernel=(1, 1), relu=True),
        L("flatten", (1,)), L("dense", (2,), channels=4)))  # fmt: skip
    return (spec, *random_graph(spec, seed, 6))


def _conv_graph(cin: int, h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int, int, int], seed: int, cout: int = 8):
    """One conv (the layer under test) and a dense layer."""
    spec = ArchSpec((cin, h, w), 4, (
        L("conv", (-1,), channels=cout, kernel=kernel, stride=stride, padding=padding, relu=True),
        L("flatten", (0,)), L("dense", (1,), channels=4)))  # fmt: skip
    return (spec, *random_graph(spec, seed, 6))


def test_pixel_pairs_take_only_the_layers_they_fit() -> None:
    # the 3x3 conv on three channels (rounded up to four in a padded copy) and the pointwise one
    _, graph, _ = _pointwise_graph(3, 5, 0)
    assert [packing.pixel_pairs(op) for op in graph.ops] == [True, True, False, False]
    first = ((1, 13, 10), (10, 4), (2, 2), (4, 5, 1, 2))  # DS-CNN's first conv on a smaller map
    assert packing.pixel_pairs(_conv_graph(*first[0], *first[1:], seed=0)[1].ops[0])
    assert not packing.pixel_pairs(_conv_graph(*first[0], *first[1:], seed=0, cout=6)[1].ops[0])  # channels
    # a padded copy of 34 x 34 x 4 bytes: past layout.PAIR_INPUT_MAX
    assert not packing.pixel_pairs(_conv_graph(3, 32, 32, (3, 3), (1, 1), (1, 1, 1, 1), seed=0)[1].ops[0])
    assert not packing.pixel_pairs(_conv_graph(2, 8, 8, (3, 3), (1, 1), (0, 0, 0, 0), seed=0)[1].ops[0])  # no axis


def test_conv_weight_flattens_the_taps_of_the_dot_axis() -> None:
    _, graph, _ = _conv_graph(3, 6, 6, (3, 2), (1, 1), (0, 0, 0, 0), seed=0)
    op = graph.ops[0]
    w7 = packing.pointwise_weight(op)
    w = op.tensors["weight"]  # (O, KH, KW, I), I = 3 rounded up to 4 with zero weights
    for t, g, a, c, b in np.ndindex(*w7.shape[:1], *w7.shape[3:]):
        k = 4 * g + a + 2 * b
        tap, ci = divmod(k, 4)
        want = w[4 * t + c, tap // 2, tap % 2, ci] if ci < 3 else 0
        assert w7[t, 0, 0, g, a, c, b] == want


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("target", "codegen", "h", "w", "cin"), [
    # 15 pixels: a spare one in the last pair; both codegens, and the M7's interleaved loads
    ("cortex-m4", "llvm", 3, 5, 8), ("cortex-m4", "c", 3, 5, 8), ("cortex-m7", "llvm", 3, 5, 8),
    ("cortex-m4", "llvm", 4, 4, 8),  # 16 pixels
    # 136 input channels: the weights' offsets pass an LDRD's range and the pointer advances
    ("cortex-m4", "llvm", 3, 3, 136), ("cortex-m4", "c", 3, 3, 136)])
def test_pixel_pair_kernels_are_bit_exact_on_qemu(target: str, codegen: str, h: int, w: int, cin: int,
                                                  tmp_path) -> None:
    spec, graph, vectors = _pointwise_graph(h, w, seed=h * w, cin=cin)
    result = build_and_run(graph, spec, load_target(target), tmp_path, vectors, codegen,
                           compiled=compile_graph(graph), check_layers=True)
    assert result.mismatches == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("target", "codegen", "shape", "kernel", "stride", "padding"), [
    # one input channel along kernel columns, padded, stride 2 (DS-CNN's first conv on a smaller map)
    ("cortex-m4", "llvm", (1, 13, 10), (10, 4), (2, 2), (4, 5, 1, 2)),
    ("cortex-m4", "c", (1, 13, 10), (10, 4), (2, 2), (4, 5, 1, 2)),
    # channels in fours read in place, 3x3 stride 2 (an odd pixel count), on the M7's interleaved loads
    ("cortex-m7", "llvm", (8, 9, 7), (3, 3), (2, 2), (0, 0, 0, 0))])
def test_conv_pair_kernels_are_bit_exact_on_qemu(target: str, codegen: str, shape: tuple[int, int, int],
                                                 kernel: tuple[int, int], stride: tuple[int, int],
                                                 padding: tuple[int, int, int, int], tmp_path) -> None:
    spec, graph, vectors = _conv_graph(*shape, kernel, stride, padding, seed=sum(shape))
    assert packing.pixel_pairs(graph.ops[0])
    result = build_and_run(graph, spec, load_target(target), tmp_path, vectors, codegen,
                           compiled=compile_graph(graph), check_layers=True)
    assert result.mismatches == 0
