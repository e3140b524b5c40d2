"""Post-training int8 quantization of a trained SpecNet into a QuantGraph (NHWC).

Weights: symmetric, per output channel. Activations: asymmetric, per tensor, from the min/max seen on calibration
data (a few hundred training samples). Biases: int32 at ``s_in * s_w``. Requantization: per-channel fixed point
(``intmath.quantize_multiplier``); ReLU and cap folded into the output clamp. Ops of imported float models: softmax
gets TFLite's fixed output quantization (1/256, -128) and its integer parameters, sigmoid and tanh TFLite's fixed
output quantizations and lookup tables (a ``lut`` op); pad keeps its input's quantization;
concat does not rescale (TFLite's int8 CONCATENATION), so the tensors it joins share one quantization, calibrated
over all of them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from tinycompile.arch import ArchSpec, Layer
from tinycompile.cost.arena import storage_tensor
from tinycompile.errors import UserError
from tinycompile.model import SpecNet, activation, folded_weights
from tinycompile.quant.graph import QOp, QParams, QuantGraph
from tinycompile.quant.intmath import INT32_MAX, INT32_MIN, quantize_multiplier
from tinycompile.quant.semantics import (
    ADD_LEFT_SHIFT,
    add_multipliers,
    avgpool_multiplier,
    logistic_table,
    min_out_scale,
    softmax_params,
    tanh_table,
    window_counts,
)

CALIBRATION_SAMPLES = 512
SUPPORTED_OPS = ("conv", "dwconv", "dense", "maxpool", "avgpool", "gap", "flatten", "add", "softmax", "pad", "concat",
                 "sigmoid", "tanh", "unary", "mul", "upsample", "spread", "slice")
PASS_THROUGH_OPS = ("maxpool", "flatten", "pad", "concat", "upsample", "spread", "slice")  # their output keeps their input's quantization
# TFLite's fixed int8 output quantizations: softmax and logistic [0, 1) in steps of 1/256, tanh [-1, 1) in 1/128.
FIXED_OUT_Q = {"softmax": QParams(1.0 / 256.0, -128), "sigmoid": QParams(1.0 / 256.0, -128), "tanh": QParams(1.0 / 128.0, 0)}
LOOKUP_TABLES = {"sigmoid": logistic_table, "tanh": tanh_table}
FIXED_QUANTIZATION_OPS = (*PASS_THROUGH_OPS, *FIXED_OUT_Q)  # their output's quantization needs no calibration


def quantize(spec: ArchSpec, model: SpecNet, calibration: np.ndarray | None,
             given: Mapping[int, QParams] | None = None) -> QuantGraph:
    """Quantize ``model`` (float, BN in eval mode) using ``calibration`` inputs ``(N, C, H, W)`` for activation ranges.

    ``given``: the quantization a pre-quantized model fixes for its input (-1) and layers' outputs, used instead of
    a calibrated range; ``calibration`` may then be None if it covers every tensor that needs one."""
    _check_supported(spec)
    given = _concat_inputs_share(spec, given or {})
    samples = 0 if calibration is None else int(min(len(calibration), CALIBRATION_SAMPLES))
    ranges = _shared_ranges(spec, _activation_ranges(model, calibration[:samples])) if samples else {}
    weights = folded_weights(model)
    chw = spec.shapes()
    input_q = _out_qparams(-1, ranges.get(-1), given.get(-1))
    qs: dict[int, QParams] = {-1: input_q}
    ops: list[QOp] = []
    for i, layer in enumerate(spec.layers):
        in_chw = spec.input_shapes(i, chw)
        in_q = tuple(qs[j] for j in layer.inputs)
        op = _quantize_layer(spec, i, layer, in_chw, chw[i], in_q, (ranges.get(i), given.get(i)), weights[i],
                             model.ops[i])
        qs[i] = op.out_q
        ops.append(op)
    meta = {"calibration_samples": samples, **({"given_quantizations": len(given)} if given else {})}
    return QuantGraph(_hwc(spec.input_shape), input_q, ops, meta)


def _concat_inputs_share(spec: ArchSpec, given: Mapping[int, QParams]) -> dict[int, QParams]:
    """A pre-quantized model may quantize a concatenation's inputs apart (ONNX Runtime's QLinearConcat requantizes
    each); an int8 concatenation here copies bytes, so each input layer takes the concatenation's own quantization
    (its requantization then lands there directly)."""
    shared = dict(given)
    for i, layer in enumerate(spec.layers):
        if layer.op == "concat" and i in given:
            # an input that copies another tensor (ShuffleNet's half passed on) cannot requantize: its source's
            # quantization is then the concatenation's, and the other inputs requantize to it
            copied = [shared[r] for r in (_copied_from(spec, j) for j in layer.inputs) if r is not None and r in shared]
            q = copied[0] if copied else given[i]
            shared.update({i: q, **{j: q for j in layer.inputs}})
    return shared


def _copied_from(spec: ArchSpec, j: int) -> int | None:
    """The tensor layer ``j`` copies through pass-through ops other than a concatenation (None: it computes)."""
    source = j
    while source >= 0 and spec.layers[source].op in PASS_THROUGH_OPS and spec.layers[source].op != "concat":
        source = spec.layers[source].inputs[0]
    return None if source == j else source


def _check_supported(spec: ArchSpec) -> None:
    users = spec.consumers()
    shapes = spec.shapes()
    for i, layer in enumerate(spec.layers):
        if layer.op not in SUPPORTED_OPS:
            raise UserError(f"layer {i}: op {layer.op!r} is not supported by the int8 quantizer; use one of {SUPPORTED_OPS}")
        if (layer.op in ("pad", "unary", "upsample", "spread", "slice") or layer.op in FIXED_OUT_Q) and (layer.relu or layer.cap is not None):
            raise UserError(f"layer {i}: {layer.op} with an activation is not supported; its output needs none")
        if layer.op == "flatten":
            c, h, w = spec.input_shapes(i, shapes)[0]
            if layer.relu or layer.cap is not None:
                raise UserError(f"layer {i}: flatten with relu is not supported (flatten is a view); put the relu on the layer before")
            # In NHWC a flatten of a (C, H, W) tensor with H*W > 1 is only a view for a dense reader (its weights are permuted).
            if h * w > 1 and (i == len(spec.layers) - 1 or any(spec.layers[u].op != "dense" for u in users[i])):
                raise UserError(f"layer {i}: flatten of a {c}x{h}x{w} tensor must feed only dense layers (NHWC views)")


def _activation_ranges(model: SpecNet, x: np.ndarray) -> dict[int, tuple[float, float]]:
    """Min and max of the network input (-1) and of every layer's output (after its ReLU)."""
    spec = model.spec
    model.eval()
    ranges: dict[int, tuple[float, float]] = {-1: (float(x.min()), float(x.max()))}
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        outs: list[torch.Tensor] = []
        for i, (layer, op) in enumerate(zip(spec.layers, model.ops)):
            y = activation(layer, op(*[xt if j == -1 else outs[j] for j in layer.inputs]))
            outs.append(y)
            ranges[i] = (float(y.min()), float(y.max()))
    return ranges


def _shared_ranges(spec: ArchSpec, ranges: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Each tensor's calibration range widened to the union over the tensors that must share its quantization: a
    pass-through op's input and output (for maxpool, flatten and pad this changes nothing: their output range lies
    within their input's), and all the inputs of a concat."""
    parent = {i: i for i in ranges}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, layer in enumerate(spec.layers):
        if layer.op in PASS_THROUGH_OPS:
            for j in layer.inputs:
                parent[root(j)] = root(i)
    union: dict[int, tuple[float, float]] = {}
    for i, (lo, hi) in ranges.items():
        r = root(i)
        ulo, uhi = union.get(r, (lo, hi))
        union[r] = (min(ulo, lo), max(uhi, hi))
    joined = {root(i) for i, layer in enumerate(spec.layers) if layer.op == "concat"}
    for i, layer in enumerate(spec.layers):
        if layer.op in FIXED_OUT_Q and root(i) in joined:
            raise UserError(f"layer {i}: a {layer.op} output joined by a concatenation is not supported (its int8 "
                            "quantization is fixed; the concatenation's inputs must share one)")
    return {i: union[root(i)] for i in ranges}


def _out_qparams(i: int, calibrated: tuple[float, float] | None, given: QParams | None,
                 min_scale: float = 0.0) -> QParams:
    """A tensor's int8 quantization: the model's own where it gives one, else from its calibrated range."""
    what = "the input" if i < 0 else f"layer {i}'s output"
    if given is not None:
        if given.scale < min_scale:
            raise UserError(f"{what}: the model quantizes it with scale {given.scale:.4g}, below {min_scale:.4g}, "
                            "the smallest the int8 kernels can requantize to")
        return given
    if calibrated is None:
        raise UserError(f"{what}: the model gives no quantization for it; give calibration inputs with --calib")
    return _act_qparams(*calibrated, min_scale=min_scale)


def _act_qparams(lo: float, hi: float, min_scale: float = 0.0) -> QParams:
    lo, hi = min(lo, 0.0), max(hi, 0.0)  # real 0.0 must be exact: it is the padding value
    scale = max((hi - lo) / 255.0, min_scale, 1e-8)
    zero_point = int(np.clip(round(-128 - lo / scale), -128, 127))
    return QParams(float(scale), zero_point)


def _hwc(chw: tuple[int, int, int]) -> tuple[int, int, int]:
    c, h, w = chw
    return (h, w, c)


def _clamp(layer: Layer, q: QParams) -> tuple[int, int]:
    """The int8 output bounds of the layer's activation (TFLite's rule: a bound is quantized, rounded half away)."""
    lo = max(-128, q.zero_point) if layer.relu else -128
    hi = 127 if layer.cap is None else min(127, q.zero_point + int(np.floor(layer.cap / q.scale + 0.5)))
    return lo, hi


def _quantize_layer(
    spec: ArchSpec,
    i: int,
    layer: Layer,
    in_chw: list[tuple[int, int, int]],
    out_chw: tuple[int, int, int],
    in_q: tuple[QParams, ...],
    out: tuple[tuple[float, float] | None, QParams | None],
    folded: tuple[np.ndarray, np.ndarray] | None,
    module: torch.nn.Module,
) -> QOp:
    base = dict(
        op=layer.op,
        inputs=tuple(layer.inputs),
        in_shapes=tuple(_hwc(s) for s in in_chw),
        out_shape=_hwc(out_chw),
        in_q=in_q,
        kernel=tuple(layer.kernel),
        stride=tuple(layer.stride),
        padding=tuple(layer.padding),
    )
    s_in = in_q[0].scale
    if layer.op in ("conv", "dwconv", "dense"):
        assert folded is not None
        w, b = folded
        w = w.astype(np.float64)
        w_scale = np.maximum(np.abs(w.reshape(len(w), -1)).max(axis=1), 1e-8) / 127.0
        out_q = _out_qparams(i, *out, min_scale=min_out_scale(float((s_in * w_scale).max())))
        wq = np.clip(np.round(w / w_scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
        bias = np.clip(np.round(b / (s_in * w_scale)), INT32_MIN, INT32_MAX).astype(np.int32)
        pairs = [quantize_multiplier(float(s_in * ws / out_q.scale)) for ws in w_scale]
        tensors = {
            "weight": _layout_weight(spec, i, layer, wq),
            "bias": bias,
            "multiplier": np.array([m for m, _ in pairs], dtype=np.int32),
            "shift": np.array([s for _, s in pairs], dtype=np.int32),
        }
        lo, hi = _clamp(layer, out_q)
        return QOp(**base, out_q=out_q, lo=lo, hi=hi, tensors=tensors)  # type: ignore[arg-type]
    if layer.op in ("maxpool", "flatten", "concat"):
        if any(q != in_q[0] for q in in_q):  # only where a minimum output scale (min_out_scale) made them differ
            raise UserError(f"layer {i}: the inputs of this concatenation could not share one int8 quantization "
                            f"({', '.join(f'{q.scale:.4g} @ {q.zero_point}' for q in in_q)}); calibrate with more "
                            "varied inputs")
        lo, hi = _clamp(layer, in_q[0])
        return QOp(**base, out_q=in_q[0], lo=lo, hi=hi)  # type: ignore[arg-type]
    if layer.op == "upsample":  # copies of its input's values
        return QOp(**base, out_q=in_q[0])  # type: ignore[arg-type]
    if layer.op == "slice":
        index = np.array(layer.select or range(in_chw[0][0]), dtype=np.int32)
        return QOp(**base, out_q=in_q[0], tensors={"index": index})  # type: ignore[arg-type]
    if layer.op in ("pad", "spread"):  # real zero is the input zero point: the tensor keeps the input's quantization
        return QOp(**base, out_q=in_q[0], params={"value": in_q[0].zero_point})  # type: ignore[arg-type]
    if layer.op == "softmax":
        return QOp(**base, out_q=FIXED_OUT_Q["softmax"], params=softmax_params(beta=1.0, input_scale=s_in))  # type: ignore[arg-type]
    if layer.op == "unary":  # the function on each of the 256 input values, requantized: exact to the output step
        out_q = _out_qparams(i, *out)
        q = np.arange(-128, 128)
        with torch.no_grad():
            y = module(torch.tensor((q - in_q[0].zero_point) * s_in, dtype=torch.float32)).double().numpy()
        y = np.nan_to_num(y, nan=0.0, posinf=1e30, neginf=-1e30)  # outside the function's domain (log of < 0)
        table = np.clip(np.round(y / out_q.scale) + out_q.zero_point, -128, 127).astype(np.int8)
        base["op"] = "lut"
        return QOp(**base, out_q=out_q, tensors={"table": table})  # type: ignore[arg-type]
    if layer.op in LOOKUP_TABLES:
        out_q = FIXED_OUT_Q[layer.op]
        table = LOOKUP_TABLES[layer.op](s_in, in_q[0].zero_point, out_q.scale, out_q.zero_point)
        base["op"] = "lut"
        return QOp(**base, out_q=out_q, tensors={"table": np.asarray(table, np.int8)})  # type: ignore[arg-type]
    if layer.op in ("avgpool", "gap"):
        if layer.op == "gap":  # a gap is an avgpool over the whole input
            base.update(kernel=(in_chw[0][1], in_chw[0][2]), stride=(1, 1), padding=(0, 0, 0, 0))
        # the taps of each window inside the input: one count, or one per output position in a padded pool
        counts = window_counts(in_chw[0][1:], out_chw[1:], base["kernel"], base["stride"], base["padding"])  # type: ignore[arg-type]
        counts = counts.reshape(-1) if any(layer.padding) else counts.reshape(-1)[:1]
        out_q = _out_qparams(i, *out, min_scale=min_out_scale(s_in / int(counts.min())))
        pairs = [avgpool_multiplier(s_in, int(n), out_q.scale) for n in counts]
        lo, hi = _clamp(layer, out_q)
        tensors = {"multiplier": np.array([m for m, _ in pairs], np.int32),
                   "shift": np.array([sh for _, sh in pairs], np.int32)}
        return QOp(**base, out_q=out_q, lo=lo, hi=hi, tensors=tensors)  # type: ignore[arg-type]
    if layer.op == "mul":  # the output scale at least s_a s_b: the requantization only scales down (shift >= 0)
        out_q = _out_qparams(i, *out, min_scale=in_q[0].scale * in_q[1].scale)
        m, s = quantize_multiplier(in_q[0].scale * in_q[1].scale / out_q.scale)
        lo, hi = _clamp(layer, out_q)
        tensors = {"multiplier": np.array([m], np.int32), "shift": np.array([s], np.int32)}
        return QOp(**base, out_q=out_q, lo=lo, hi=hi, tensors=tensors)  # type: ignore[arg-type]
    # add
    s_a, s_b = in_q[0].scale, in_q[1].scale
    out_q = _out_qparams(i, *out, min_scale=min_out_scale(2.0 * max(s_a, s_b) / (1 << ADD_LEFT_SHIFT)))
    mults, shifts = add_multipliers(s_a, s_b, out_q.scale)
    lo, hi = _clamp(layer, out_q)
    tensors = {"multiplier": np.array(mults, np.int32), "shift": np.array(shifts, np.int32)}
    return QOp(**base, out_q=out_q, lo=lo, hi=hi, params={"left_shift": ADD_LEFT_SHIFT}, tensors=tensors)  # type: ignore[arg-type]


def _layout_weight(spec: ArchSpec, i: int, layer: Layer, wq: np.ndarray) -> np.ndarray:
    """torch layout -> the QuantGraph's NHWC-friendly layout."""
    if layer.op == "conv":  # (O, I, KH, KW) -> (O, KH, KW, I)
        return np.ascontiguousarray(wq.transpose(0, 2, 3, 1))
    if layer.op == "dwconv":  # (C, 1, KH, KW) -> (KH, KW, C)
        return np.ascontiguousarray(wq[:, 0].transpose(1, 2, 0))
    # dense: its input may be a flatten view of a (C, H, W) tensor, stored (H, W, C): permute the columns to match
    src = layer.inputs[0]
    root = storage_tensor(spec, src)
    if root != src:
        c, h, w = spec.input_shape if root == -1 else spec.shapes()[root]
        return np.ascontiguousarray(wq.reshape(len(wq), c, h, w).transpose(0, 2, 3, 1).reshape(len(wq), -1))
    return np.ascontiguousarray(wq)
