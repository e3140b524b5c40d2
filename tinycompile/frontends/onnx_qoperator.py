"""Pre-quantized ONNX models in operator form (QLinearConv, QLinearMatMul, ONNX Runtime's QGemm, QLinearAdd...) ->
the same model in QDQ form, in place: each quantized operator becomes a dequantize of its inputs, the float operator
and a quantize of its output, with the model's own scales and zero points. TVM's ONNX frontend reads QDQ (and not
most of these operators), and the walker then keeps each tensor's quantization (:mod:`tinycompile.frontends.relax_ops`).

An operator that reads an int8 tensor as it is (MaxPool, Reshape, Flatten...) gets a dequantize before it and a
quantize after it with its input's scale and zero point: what it computes on int8 values is what it computes on the
dequantized floats, requantized.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinycompile.errors import UserError

# op -> (float op, the input slots (data, scale, zero point) it dequantizes, the output's (scale, zero point) slots,
# the slot of an int32 bias and the two scales that make its scale, or None)
_QLINEAR: dict[str, tuple[str, list[tuple[int, int, int]], tuple[int, int] | None, tuple[int, int, int] | None]] = {
    "QLinearConv": ("Conv", [(0, 1, 2), (3, 4, 5)], (6, 7), (8, 1, 4)),
    "QLinearMatMul": ("MatMul", [(0, 1, 2), (3, 4, 5)], (6, 7), None),
    "QGemm": ("Gemm", [(0, 1, 2), (3, 4, 5)], (7, 8), (6, 1, 4)),
    "QLinearAdd": ("Add", [(0, 1, 2), (3, 4, 5)], (6, 7), None),
    "QLinearMul": ("Mul", [(0, 1, 2), (3, 4, 5)], (6, 7), None),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", [(0, 1, 2)], (3, 4), None),
    "QLinearAveragePool": ("AveragePool", [(0, 1, 2)], (3, 4), None),
    "QLinearSigmoid": ("Sigmoid", [(0, 1, 2)], (3, 4), None),
    "QLinearLeakyRelu": ("LeakyRelu", [(0, 1, 2)], (3, 4), None),
    "QLinearSoftmax": ("Softmax", [(0, 1, 2)], (3, 4), None),
}
_DROPPED_ATTRS = ("channels_last", "opset")  # ONNX Runtime's attributes that the float operators do not have


def qoperator_to_qdq(proto: Any) -> None:
    """Rewrite ``proto``'s quantized operators into QDQ form, in place (a model without any is left as it is)."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    if not any(n.op_type in _QLINEAR or n.op_type == "QLinearConcat" for n in graph.node):
        return
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    quantized: dict[str, tuple[str, str]] = {}  # int8 activation -> (scale, zero point) names
    dequantized: dict[str, str] = {}
    nodes: list[Any] = []

    def dq(name: str, scale: str, zero: str, axis: int = 1) -> str:
        """The float value of ``name`` (an int8 activation or a constant), dequantized once."""
        if name not in dequantized:
            dequantized[name] = f"{name}__dq"
            nodes.append(helper.make_node("DequantizeLinear", [name, scale, zero], [dequantized[name]], axis=axis))
        return dequantized[name]

    def q(source: str, out: str, params: tuple[str, str]) -> None:
        nodes.append(helper.make_node("QuantizeLinear", [source, *params], [out]))
        quantized[out] = params

    for node in graph.node:
        ins = list(node.input) + [""] * 10
        every = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if every.get("channels_last"):
            raise UserError(f"{node.op_type} {node.name!r} reads channels last; only channels-first (NCHW) quantized "
                            "pools import")
        attrs = {k: v for k, v in every.items() if k not in _DROPPED_ATTRS}
        if node.op_type == "QuantizeLinear":
            nodes.append(node)
            quantized[node.output[0]] = (ins[1], ins[2])
        elif node.op_type == "DequantizeLinear":
            nodes.append(node)
        elif node.op_type in _QLINEAR:
            op, reads, out_q, bias = _QLINEAR[node.op_type]
            floats = [dq(ins[d], ins[s], ins[z], _weight_axis(node.op_type, d, attrs, inits.get(ins[s])))
                      for d, s, z in reads]
            if bias is not None and ins[bias[0]]:
                floats.append(_float_bias(graph, inits, ins[bias[0]], ins[bias[1]], ins[bias[2]]))
            if out_q is None or not ins[out_q[0]]:  # QGemm without an output scale: a float output
                nodes.append(helper.make_node(op, floats, [node.output[0]], **attrs))
                continue
            nodes.append(helper.make_node(op, floats, [f"{node.output[0]}__f"], **attrs))
            q(f"{node.output[0]}__f", node.output[0], (ins[out_q[0]], ins[out_q[1]]))
        elif node.op_type == "QLinearConcat":  # (Y scale, Y zero point, then X, its scale, its zero point per input)
            parts = list(node.input)
            floats = [dq(parts[i], parts[i + 1], parts[i + 2]) for i in range(2, len(parts), 3)]
            nodes.append(helper.make_node("Concat", floats, [f"{node.output[0]}__f"], **attrs))
            q(f"{node.output[0]}__f", node.output[0], (parts[0], parts[1]))
        elif any(i in quantized for i in node.input):  # an operator on int8 values as they are (MaxPool, Reshape...)
            first = next(i for i in node.input if i in quantized)
            # an int8 constant beside it (Pad's value: the zero point) is in the same quantization
            node_ins = [dq(i, *quantized[i if i in quantized else first])
                        if i in quantized or (i in inits and inits[i].dtype in (np.int8, np.uint8)) else i
                        for i in node.input]
            outs = [f"{o}__f" for o in node.output]
            nodes.append(helper.make_node(node.op_type, node_ins, outs, domain=node.domain, **attrs))
            for source, out in zip(outs, node.output):
                q(source, out, quantized[first])
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _weight_axis(op: str, slot: int, attrs: dict[str, Any], scale: np.ndarray | None) -> int:
    """The axis a per-channel weight scale runs along: output channels (Conv's axis 0, MatMul's last, Gemm's by
    ``transB``); 1 for anything per tensor."""
    if scale is None or np.asarray(scale).size == 1 or slot != 3:
        return 1
    if op == "QGemm":
        return 0 if attrs.get("transB", 0) else 1
    return 1 if op == "QLinearMatMul" else 0


def _float_bias(graph: Any, inits: dict[str, np.ndarray], bias: str, x_scale: str, w_scale: str) -> str:
    """An int32 bias (scale: the input's times the weights') as a float initializer; its name."""
    from onnx import numpy_helper

    missing = [n for n in (bias, x_scale, w_scale) if n not in inits]
    if missing:
        raise UserError(f"the bias {bias!r} of a quantized operator reads {missing[0]!r}, which is not an initializer; "
                        "only constant biases and scales import")
    value = inits[bias].astype(np.float64) * inits[x_scale].astype(np.float64) * inits[w_scale].astype(np.float64)
    name = f"{bias}__float"
    graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    return name
