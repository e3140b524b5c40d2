"""Single-rounding layers (TFLite's int8 fully connected, ``params["single_rounding"]``) run on the accelerator.

Their POSTPROCs set ``single``: the requantization lane then rounds ``t * M`` once, half up, as
``intmath.requantize_single`` does. A network of such dense layers behind a (double-rounding) conv builds for the fpga
target with every layer on the accelerator, bit-exact on the RTL; the ISA model agrees at N = 4, 8 and 16.
"""

from __future__ import annotations

import numpy as np
from fpga_helpers import INPUTS, random_graph, target_with_array

from tinycompile.accel.config import AccelConfig
from tinycompile.accel.layout import read_tensor
from tinycompile.accel.model import run_model
from tinycompile.arch import ArchSpec, Layer
from tinycompile.fpga.build import build_graph
from tinycompile.fpga.codegen import compile_graph
from tinycompile.fpga.partition import accelerator_reason, rounding_reason
from tinycompile.quant import reference
from tinycompile.quant.graph import QOp, QParams, QuantGraph
from tinycompile.targets import Target

L = Layer
# A conv (double rounding), then an autoencoder-like stack of dense layers (single rounding), as in MLPerf Tiny's
# anomaly detection model.
SPEC = ArchSpec(
    (4, 1, 16),
    40,
    (
        L("conv", (-1,), channels=8, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
        L("flatten", (0,)),
        L("dense", (1,), channels=64, relu=True),
        L("dense", (2,), channels=24, relu=True),
        L("dense", (3,), channels=8, relu=True),
        L("dense", (4,), channels=32, relu=True),
        L("dense", (5,), channels=40),
    ),
)
DENSE = [2, 3, 4, 5, 6]


def _graph(single: bool = True) -> QuantGraph:
    graph = random_graph(SPEC, seed=2)
    for i in DENSE:
        assert graph.ops[i].op == "dense"
        if single:
            graph.ops[i].params["single_rounding"] = 1
    return graph


def _inputs(graph: QuantGraph, count: int) -> np.ndarray:
    """``count`` inputs, first those (of a random pool) on which single and double rounding give different bytes
    in some dense layer (about one in ten): on the others the two roundings agree and prove nothing."""
    x = graph.quantize_input(np.random.default_rng(4).standard_normal((256, *SPEC.input_shape)).astype(np.float32))
    single, double = reference.run_layers(graph, x), reference.run_layers(_graph(single=False), x)
    differ = sum((single[i] != double[i]).reshape(len(x), -1).sum(axis=1) for i in DENSE)
    return x[np.argsort(differ == 0, kind="stable")[:count]]


def test_rounding_reason_refuses_only_the_division() -> None:
    """Single rounding is no longer a reason to leave an op on the host; TFLite's integer-division average still is."""
    q = QParams(0.1, 0)
    dense = QOp("dense", (-1,), ((1, 1, 8),), (1, 1, 4), (q,), q, params={"single_rounding": 1})
    avg = QOp("avgpool", (-1,), ((2, 2, 8),), (1, 1, 8), (q,), q, kernel=(2, 2), stride=(2, 2), params={"divide": 1})
    assert rounding_reason(dense) is None
    assert "divides" in rounding_reason(avg)
    graph = _graph()
    assert all(accelerator_reason(graph, i, n) is None for i in DENSE for n in (4, 8, 16))


def test_single_rounding_postprocs_and_isa_model() -> None:
    """The dense layers' POSTPROCs (and only theirs) set ``single``; every layer's output on the ISA model equals the
    reference at N = 4, 8, 16, whose single rounding changes some bytes of this network against double rounding."""
    graph = _graph()
    x = _inputs(graph, 4)
    want = reference.run_layers(graph, x)
    double = reference.run_layers(_graph(single=False), x)
    assert sum(int((want[i] != double[i]).sum()) for i in DENSE) > 0
    for n in (4, 8, 16):
        prog = compile_graph(graph, AccelConfig.for_array(n), (1 << 18) * n)
        for code in prog.layers:
            pps = [ins for ins in prog.instrs_of(code.index) if ins.op == "POSTPROC"]
            assert (code.count == 0) == (not pps)
            assert {ins.get("single") for ins in pps} <= ({1} if code.index in DENSE else {0})
        for b in range(len(x)):
            got = run_model(prog.with_input(x[b]), prog.prog_addr, AccelConfig.for_array(n))
            for code in prog.layers:
                if code.count:
                    np.testing.assert_array_equal(read_tensor(got, code.out), want[code.index][b],
                                                  err_msg=f"N={n} input {b} layer {code.index}")


def test_single_rounding_dense_layers_run_on_the_rtl_bit_exact(fpga_target: Target, tmp_path) -> None:
    """build_graph: one accelerator program, every dense layer on the accelerator, every layer bit-exact on the RTL."""
    graph = _graph()
    x = _inputs(graph, INPUTS)
    report = build_graph(graph, target_with_array(fpga_target, 8), tmp_path, 8, x).report
    assert report["bit_exact"] and report["inputs"] == INPUTS
    ran = [r["ran_on"] for r in report["layers"]]
    assert ran == ["accelerator", "view (no data moved)"] + ["accelerator"] * len(DENSE)
    # the reference the RTL matched rounds once in these layers: on every input double rounding gives other bytes
    want, double = reference.run_layers(graph, x), reference.run_layers(_graph(single=False), x)
    assert all(any((want[i][b] != double[i][b]).any() for i in DENSE) for b in range(INPUTS))
