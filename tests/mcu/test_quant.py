"""Quantizer, QuantGraph serialisation, integer reference, and TVM's requantization against intmath."""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.quant import reference
from tinycompile.quant.graph import QuantGraph
from tinycompile.quant.intmath import requantize


def test_int8_loses_at_most_one_point_on_mnist1d(prepared_mnist1d) -> None:
    p = prepared_mnist1d
    int8_acc = reference.accuracy(p.graph, p.task.x_test, p.task.y_test)
    assert p.float_acc > 0.5, "the fixture model did not learn; the bar below would mean nothing"
    assert int8_acc >= p.float_acc - 0.01, (p.float_acc, int8_acc)


def test_graph_round_trips_through_json_and_npz(prepared_digits, tmp_path) -> None:
    p = prepared_digits
    p.graph.save(tmp_path)
    loaded = QuantGraph.load(tmp_path)
    x = p.graph.quantize_input(p.task.x_test[:64])
    for a, b in zip(reference.run_layers(p.graph, x), reference.run_layers(loaded, x)):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "quant_graph.json").read_text().count('"op"') == len(p.spec.layers)


def test_weights_are_per_channel_int8_and_relu_is_a_clamp(prepared_digits) -> None:
    for op in prepared_digits.graph.ops:
        if op.op in ("conv", "dwconv", "dense"):
            w = op.tensors["weight"]
            assert w.dtype == np.int8 and np.abs(w).max() == 127  # symmetric: each channel reaches +-127 somewhere
            assert op.tensors["bias"].dtype == np.int32
            assert (op.tensors["multiplier"] >= 2**30).all() and (op.tensors["shift"] >= 0).all()
        layer = prepared_digits.spec.layers[prepared_digits.graph.ops.index(op)]
        if layer.relu:
            assert op.lo == max(-128, op.out_q.zero_point)


def test_tvm_requantization_equals_intmath_on_random_values() -> None:
    tvm = pytest.importorskip("tvm")
    from tvm import te

    from tinycompile.lowering.requant import requantize_expr

    n = 100_000
    rng = np.random.default_rng(1)
    acc = np.concatenate([rng.integers(-(2**31), 2**31, n // 2), rng.integers(-3000, 3000, n // 2)]).astype(np.int32)
    mult = rng.integers(2**30, 2**31, n).astype(np.int32)
    mult[:500] = 0
    shift = rng.integers(0, 32, n).astype(np.int32)
    a, m, s = (te.placeholder((n,), "int32", name=k) for k in "ams")
    out = te.compute((n,), lambda i: requantize_expr(a[i], m[i], s[i]))
    lib = tvm.tirx.build(tvm.IRModule({"main": te.create_prim_func([a, m, s, out])}), target=tvm.target.Target({"kind": "llvm"}))
    got = tvm.runtime.tensor(np.zeros(n, np.int32))
    lib(tvm.runtime.tensor(acc), tvm.runtime.tensor(mult), tvm.runtime.tensor(shift), got)
    np.testing.assert_array_equal(got.numpy(), requantize(acc, mult, shift).astype(np.int32))


def test_flatten_feeding_a_non_dense_layer_is_refused() -> None:
    from tinycompile.arch import ArchSpec, Layer
    from tinycompile.errors import UserError
    from tinycompile.quant.quantize import quantize
    from mcu_helpers import random_model

    spec = ArchSpec((2, 2, 2), 8, (Layer("flatten", (-1,)), Layer("maxpool", (0,))))
    with pytest.raises(UserError, match="flatten of a 2x2x2 tensor must feed only dense"):
        quantize(spec, random_model(spec, 0), np.zeros((4, 2, 2, 2), np.float32))


def test_fast_requantization_equals_intmath_where_it_is_used() -> None:
    """``fast_requantize_expr`` (SMMLAR form) on its domain: |acc| < 2**30, shift in [1, 31], any multiplier."""
    tvm = pytest.importorskip("tvm")
    from tvm import te

    from tinycompile.lowering.requant import FAST_ACC_BOUND, fast_requantize_expr

    n = 100_000
    rng = np.random.default_rng(2)
    acc = np.concatenate([rng.integers(-FAST_ACC_BOUND + 1, FAST_ACC_BOUND, n // 2), rng.integers(-3000, 3000, n // 2)]).astype(np.int32)
    acc[:4] = [FAST_ACC_BOUND - 1, -FAST_ACC_BOUND + 1, 0, -1]
    mult = rng.integers(2**30, 2**31, n).astype(np.int32)
    mult[:500] = 0
    shift = rng.integers(1, 32, n).astype(np.int32)
    rnd = (1 << (shift.astype(np.int64) - 1)).astype(np.int32)
    a, m, r, s = (te.placeholder((n,), "int32", name=k) for k in "amrs")
    out = te.compute((n,), lambda i: fast_requantize_expr(a[i] << 1, m[i], r[i], s[i]))
    lib = tvm.tirx.build(tvm.IRModule({"main": te.create_prim_func([a, m, r, s, out])}), target=tvm.target.Target({"kind": "llvm"}))
    got = tvm.runtime.tensor(np.zeros(n, np.int32))
    lib(*(tvm.runtime.tensor(v) for v in (acc, mult, rnd, shift)), got)
    np.testing.assert_array_equal(got.numpy(), requantize(acc, mult, shift).astype(np.int32))


def test_fast_requantization_with_the_zero_point_folded_equals_intmath_plus_zero_point() -> None:
    """The fast form with ``2**(S-1) + zp 2**S`` as its rounding (``requant.zero_point_folded``) gives intmath's
    result plus ``zp`` wherever that rounding stays below 2**30 - 1 in magnitude (the fold's own condition)."""
    tvm = pytest.importorskip("tvm")
    from tvm import te

    from tinycompile.lowering.requant import FAST_ACC_BOUND, fast_requantize_expr

    n = 100_000
    rng = np.random.default_rng(3)
    acc = np.concatenate([rng.integers(-FAST_ACC_BOUND + 1, FAST_ACC_BOUND, n // 2), rng.integers(-3000, 3000, n // 2)]).astype(np.int32)
    acc[:4] = [FAST_ACC_BOUND - 1, -FAST_ACC_BOUND + 1, 0, -1]
    mult = rng.integers(2**30, 2**31, n).astype(np.int32)
    zp = rng.integers(-128, 128, n)
    zp[:2] = [-128, 127]
    shift = np.minimum(rng.integers(1, 23, n), 21).astype(np.int32)  # |zp| 2**S + 2**(S-1) < 2**30 - 1 up to S = 21
    rnd = (1 << (shift.astype(np.int64) - 1)) + zp * (1 << shift.astype(np.int64))
    assert np.abs(rnd).max() < (1 << 30) - 1
    a, m, r, s = (te.placeholder((n,), "int32", name=k) for k in "amrs")
    out = te.compute((n,), lambda i: fast_requantize_expr(a[i] << 1, m[i], r[i], s[i]))
    lib = tvm.tirx.build(tvm.IRModule({"main": te.create_prim_func([a, m, r, s, out])}), target=tvm.target.Target({"kind": "llvm"}))
    got = tvm.runtime.tensor(np.zeros(n, np.int32))
    lib(*(tvm.runtime.tensor(v) for v in (acc, mult, rnd.astype(np.int32), shift)), got)
    np.testing.assert_array_equal(got.numpy(), requantize(acc, mult, shift).astype(np.int64) + zp)


def test_signless_fast_requantization_equals_intmath_after_a_relu_clamp() -> None:
    """Without its sign term the fast form differs from intmath only below the zero point, which a clamp floor at or
    above the zero point (a fused ReLU) erases; with the zero point folded into the rounding too. Not vacuous: the
    two forms differ before the clamp."""
    tvm = pytest.importorskip("tvm")
    from tvm import te

    from tinycompile.lowering.requant import fast_requantize_expr

    n = 100_000
    rng = np.random.default_rng(4)
    acc = rng.integers(-3000, 3000, n).astype(np.int32)
    mult = rng.integers(2**30, 2**31, n).astype(np.int32)
    shift = rng.integers(1, 12, n).astype(np.int32)
    zp = rng.integers(-128, 128, n)
    rnd = ((1 << (shift.astype(np.int64) - 1)) + zp * (1 << shift.astype(np.int64))).astype(np.int32)
    a, m, r, s = (te.placeholder((n,), "int32", name=k) for k in "amrs")
    target = tvm.target.Target({"kind": "llvm"})
    got = {}
    for signless in (False, True):
        out = te.compute((n,), lambda i: fast_requantize_expr(a[i] << 1, m[i], r[i], s[i], signless))  # noqa: B023
        lib = tvm.tirx.build(tvm.IRModule({"main": te.create_prim_func([a, m, r, s, out])}), target=target)
        got[signless] = tvm.runtime.tensor(np.zeros(n, np.int32))
        lib(*(tvm.runtime.tensor(v) for v in (acc, mult, rnd, shift)), got[signless])
    want = requantize(acc, mult, shift).astype(np.int64) + zp
    assert (got[True].numpy() != want).any()
    np.testing.assert_array_equal(got[False].numpy(), want)
    floor = zp + rng.integers(0, 3, n)  # clamp floors at or above the zero point
    np.testing.assert_array_equal(np.maximum(got[True].numpy(), floor), np.maximum(want, floor))


@pytest.mark.parametrize("mult,shift", [(1 << 30, 0), (1 << 30, 5), (1 << 30, 31), (1518500250, 0), (1518500250, 1), (2147483647, 17), (1073741825, 31)])
def test_build_time_requantization_equals_intmath(mult: int, shift: int) -> None:
    """``requantize_const`` (power-of-two, SMMLAR and general forms) for accumulators within the stated bound."""
    tvm = pytest.importorskip("tvm")
    from tvm import te

    from tinycompile.lowering.requant import requantize_const

    n = 50_000
    bound = (1 << 30) - 1
    rng = np.random.default_rng(shift)
    acc = np.concatenate([rng.integers(-bound, bound + 1, n // 2), rng.integers(-3000, 3000, n // 2)]).astype(np.int32)
    acc[:3] = [bound, -bound, 0]
    a = te.placeholder((n,), "int32", name="a")
    out = te.compute((n,), lambda i: requantize_const(a[i], mult, shift, bound))
    lib = tvm.tirx.build(tvm.IRModule({"main": te.create_prim_func([a, out])}), target=tvm.target.Target({"kind": "llvm"}))
    got = tvm.runtime.tensor(np.zeros(n, np.int32))
    lib(tvm.runtime.tensor(acc), got)
    np.testing.assert_array_equal(got.numpy(), requantize(acc, mult, shift).astype(np.int32))
