"""The TFLite oracles: TFLite's reference kernels and TFLite Micro, checked against hand integer arithmetic, against
each other on a keyword-spotting model, and for the one-line errors a user sees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tflite_models import ModelBuilder, ds_cnn_like
from tinycompile.errors import UserError
from tinycompile.quant.intmath import quantize_multiplier, requantize_to_int8

pytest.importorskip("ai_edge_litert.interpreter")
pytest.importorskip("tflite_micro")

from tinycompile.frontends.tflite_oracle import (  # noqa: E402  (after the skips: the oracle needs both packages)
    TflmResult,
    reference_outputs,
    reference_tensors,
    tflm_run,
)

KWS_ENV = "TINYCOMPILE_KWS_MODEL"


def random_int8(shape: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)


def round_half_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def dense_model(per_channel: bool = False) -> tuple[ModelBuilder, bytes]:
    b = ModelBuilder(seed=21)
    x = b.input((1, 32), scale=0.05, zero_point=-3)
    y = b.fully_connected(x, 16, per_channel=per_channel)
    return b, b.finish([y])


def dense_accumulators(b: ModelBuilder, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 accumulators of the builder's FULLY_CONNECTED and its effective scales (double, as TFLite takes them)."""
    x, wt, bt = b.ops[0].inputs
    y = b.ops[0].outputs[0]
    acc = (xs[:, 0].astype(np.int64) - x.zero_point) @ b.data(wt).astype(np.int64).T + b.data(bt)
    eff = np.float64(np.float32(x.scale)) * b.scales(wt).astype(np.float64) / np.float64(np.float32(y.scale))
    return acc, eff


# ------------------------------------------------------------------------------------------ hand arithmetic


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_fully_connected_matches_hand_requantization_in_both_oracles(per_channel: bool) -> None:
    b, data = dense_model(per_channel)
    y = b.ops[0].outputs[0]
    xs = random_int8((1, 32), 300)
    acc, eff = dense_accumulators(b, xs)
    # LiteRT's reference kernel rescales in double precision and rounds half away from zero (C's round) ...
    float_rounded = np.clip(round_half_away(acc * eff) + y.zero_point, -128, 127).astype(np.int8)
    ref = reference_outputs(data, xs)
    assert ref.shape == (300, 1, 16) and ref.dtype == np.int8
    np.testing.assert_array_equal(ref[:, 0], float_rounded)
    # ... while TFLite Micro uses the fixed-point double rounding of tinycompile.quant.intmath.
    mult, shift = (np.array(v) for v in zip(*(quantize_multiplier(float(e)) for e in eff)))
    double_rounded = requantize_to_int8(acc, mult, shift, y.zero_point)
    tflm = tflm_run(data, xs)
    np.testing.assert_array_equal(tflm.outputs[:, 0], double_rounded)
    # The two meet everywhere but on near-ties (the oracle's docstring says so): few, but there.
    differ = np.count_nonzero(ref != tflm.outputs)
    assert 0 < differ < 0.01 * ref.size


def test_reference_conv_matches_hand_double_rounding_per_channel() -> None:
    b = ModelBuilder(seed=22)
    x = b.input((1, 6, 5, 4), scale=0.04, zero_point=-128)
    y = b.conv2d(x, 6, (1, 1), activation="RELU", weight_scales=np.logspace(-4, -1, 6))
    data = b.finish([y])
    xs = random_int8(x.shape, 20)
    _, wt, bt = b.ops[0].inputs
    acc = (xs[:, 0].astype(np.int64) + 128) @ b.data(wt)[:, 0, 0, :].astype(np.int64).T + b.data(bt)
    eff = np.float64(np.float32(x.scale)) * b.scales(wt).astype(np.float64) / np.float64(np.float32(y.scale))
    mult, shift = (np.array(v) for v in zip(*(quantize_multiplier(float(e)) for e in eff)))
    expected = requantize_to_int8(acc, mult, shift, y.zero_point, lo=y.zero_point)
    ref = reference_outputs(data, xs)
    np.testing.assert_array_equal(ref[:, 0], expected)
    np.testing.assert_array_equal(tflm_run(data, xs).outputs, ref)


def test_reference_tensors_returns_every_asked_tensor_per_input() -> None:
    b = ModelBuilder(seed=23)
    x = b.input((1, 8, 8, 2), scale=0.05, zero_point=4)
    c = b.conv2d(x, 4, (3, 3), (2, 2), "SAME", "RELU6")
    p = b.max_pool2d(c, (2, 2), (2, 2))
    y = b.fully_connected(b.reshape(p, (1, -1)), 5)
    data = b.finish([y])
    xs = random_int8(x.shape, 7)
    weights = b.ops[0].inputs[1]
    got = reference_tensors(data, xs, [x.index, c.index, p.index, y.index, weights.index])
    assert set(got) == {x.index, c.index, p.index, y.index, weights.index}
    assert got[c.index].shape == (7, 1, 4, 4, 4) and got[p.index].shape == (7, 1, 2, 2, 4)
    np.testing.assert_array_equal(got[x.index], xs)
    np.testing.assert_array_equal(got[y.index], reference_outputs(data, xs))
    np.testing.assert_array_equal(got[weights.index][0], b.data(weights))
    # The pool of the preserved conv output is the preserved pool output: the tensors belong to the same input.
    conv = got[c.index][:, 0]
    np.testing.assert_array_equal(got[p.index][:, 0], conv.reshape(7, 2, 2, 2, 2, 4).max(axis=(2, 4)))
    assert len({row.tobytes() for row in got[c.index]}) == 7


def test_float_models_run_in_both_oracles() -> None:
    b = ModelBuilder(seed=24)
    x = b.input((1, 6, 6, 2), dtype="float32")
    y = b.softmax(b.fully_connected(b.reshape(b.conv2d(x, 3, activation="RELU"), (1, -1)), 4))
    data = b.finish([y])
    xs = np.random.default_rng(0).uniform(-1, 1, (5, *x.shape)).astype(np.float32)
    ref = reference_outputs(data, xs)
    assert ref.dtype == np.float32 and ref.shape == (5, 1, 4)
    np.testing.assert_allclose(ref.sum(axis=-1), 1, rtol=1e-5)
    np.testing.assert_allclose(tflm_run(data, xs).outputs, ref, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------- TFLM vs reference


@pytest.fixture(scope="module")
def kws_model() -> tuple[str, bytes]:
    """MLPerf Tiny's KWS model when TINYCOMPILE_KWS_MODEL names it, else a DS-CNN of the same layout.

    The stand-in ends in a 1x1 convolution rather than FULLY_CONNECTED: on FULLY_CONNECTED the two oracles round
    near-ties differently (tested above), and random weights put such ties in the classifier often enough.
    """
    path = os.environ.get(KWS_ENV)
    if path and Path(path).is_file():
        return "kws", Path(path).read_bytes()
    b, y = ds_cnn_like(seed=0, head="conv")
    return "ds_cnn_like", b.finish([y])


def test_tflm_agrees_with_reference_bit_for_bit_on_keyword_spotting(kws_model: tuple[str, bytes]) -> None:
    name, data = kws_model
    xs = random_int8((1, 49, 10, 1), 40, seed=5)
    ref = reference_outputs(data, xs)
    tflm = tflm_run(data, xs)
    assert isinstance(tflm, TflmResult)
    assert ref.shape == tflm.outputs.shape == (40, 1, 12) and ref.dtype == tflm.outputs.dtype == np.int8
    np.testing.assert_array_equal(tflm.outputs, ref, err_msg=f"TFLM and the reference differ on {name}")
    assert len({row.tobytes() for row in ref}) > 5, "the model's outputs barely depend on its input"
    assert tflm.arena_bytes > 0 and tflm.arena_bytes == tflm.arena_head_bytes + tflm.arena_tail_bytes
    # DS-CNN's two largest live activations are a 25x5x64 block's input and output: 16,000 bytes of head.
    assert tflm.arena_head_bytes >= 2 * 25 * 5 * 64


TRY_ARENA = """
import sys
from tflite_micro.python.tflite_micro import runtime
try:
    runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=int(sys.argv[2]))
except RuntimeError:
    sys.exit(1)
"""


def tflm_allocates(path: Path, arena_size: int) -> bool:
    """Whether TFLM allocates the model in ``arena_size`` bytes (in a child: some of its failures crash)."""
    return subprocess.run([sys.executable, "-c", TRY_ARENA, str(path), str(arena_size)],
                          capture_output=True, timeout=120).returncode == 0


def test_tflm_arena_is_the_smallest_that_works(tmp_path: Path) -> None:
    b, y = ds_cnn_like(seed=1, channels=16, blocks=2, head="conv")
    path = b.save(tmp_path / "m.tflite", [y])
    result = tflm_run(path, random_int8((1, 49, 10, 1), 2))
    assert result.arena_bytes % 16 == 0
    assert result.arena_head_bytes >= 2 * 25 * 5 * 16
    assert tflm_allocates(path, result.arena_bytes)
    assert not tflm_allocates(path, result.arena_bytes - 16)


def test_tflm_arena_covers_what_prepare_needs_beyond_the_reported_use(tmp_path: Path) -> None:
    # A small FULLY_CONNECTED model: its Prepare needs temporary room that TFLM's used-bytes figure leaves out,
    # and failing for want of it crashes TFLM at some sizes (the oracle probes in a child process).
    _, data = dense_model(per_channel=True)
    path = tmp_path / "dense.tflite"
    path.write_bytes(data)
    result = tflm_run(data, random_int8((1, 32), 1))
    assert result.arena_bytes > result.arena_head_bytes + result.arena_tail_bytes
    assert tflm_allocates(path, result.arena_bytes)
    assert not tflm_allocates(path, result.arena_bytes - 16)


def test_kws_model_file_is_read_from_a_path(tmp_path: Path) -> None:
    b, y = ds_cnn_like(seed=2, channels=8, blocks=1, head="conv")
    path = b.save(tmp_path / "kws.tflite", [y])
    xs = random_int8((1, 49, 10, 1), 3)
    np.testing.assert_array_equal(reference_outputs(path, xs), reference_outputs(path.read_bytes(), xs))
    np.testing.assert_array_equal(tflm_run(str(path), xs).outputs, reference_outputs(path, xs))


def test_no_inputs_give_empty_outputs() -> None:
    _, data = dense_model()
    empty = np.zeros((0, 1, 32), np.int8)
    assert reference_outputs(data, empty).shape == (0, 1, 16)
    result = tflm_run(data, empty)
    assert result.outputs.shape == (0, 1, 16) and result.arena_bytes > 0


# ------------------------------------------------------------------------------------------------ errors


def one_line_user_error(call) -> str:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_a_model_the_interpreters_reject_is_a_one_line_user_error() -> None:
    b = ModelBuilder()
    x = b.input((1, 10))
    data = b.finish([b.softmax(x, output_scale=0.01)])  # int8 softmax must output 1/256
    xs = random_int8((1, 10), 1)
    assert "SOFTMAX" in one_line_user_error(lambda: reference_outputs(data, xs))
    assert "1.f / 256" in one_line_user_error(lambda: tflm_run(data, xs))
    assert "SOFTMAX" in one_line_user_error(lambda: reference_tensors(data, xs, [0]))


def test_malformed_files_inputs_and_indices_are_user_errors(tmp_path: Path) -> None:
    _, data = dense_model()
    xs = random_int8((1, 32), 2)
    assert "not a valid Flatbuffer" in one_line_user_error(lambda: reference_outputs(data[: len(data) // 2], xs))
    assert "cannot parse" in one_line_user_error(lambda: tflm_run(data[: len(data) // 2], xs))
    missing = tmp_path / "missing.tflite"
    assert str(missing) in one_line_user_error(lambda: reference_outputs(missing, xs))
    for call in (reference_outputs, tflm_run):
        assert "int8" in one_line_user_error(lambda: call(data, xs.astype(np.float32)))
        assert "(N, 1, 32)" in one_line_user_error(lambda: call(data, xs[:, 0]))
    assert "tensor index 99" in one_line_user_error(lambda: reference_tensors(data, xs, [99]))
    b = ModelBuilder()
    x = b.input((1, 4))
    two = b.finish([b.logistic(x), b.tanh(x)])
    assert "one input and one output" in one_line_user_error(lambda: reference_outputs(two, random_int8((1, 4), 1)))
    assert "one input and one output" in one_line_user_error(lambda: tflm_run(two, random_int8((1, 4), 1)))


def test_missing_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _, data = dense_model()
    xs = random_int8((1, 32), 1)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    assert "pip install ai-edge-litert" in one_line_user_error(lambda: reference_outputs(data, xs))
    monkeypatch.setitem(sys.modules, "tflite_micro.python.tflite_micro", None)
    assert "pip install tflite-micro" in one_line_user_error(lambda: tflm_run(data, xs))
