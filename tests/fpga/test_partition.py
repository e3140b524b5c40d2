"""The Relax BYOC partition: tinyaccel patterns, the relax.ext.tinyaccel codegen, and what runs where."""

from __future__ import annotations

import tvm
from fpga_helpers import random_graph
from nets import repeated_blocks
from tvm.relax.backend.pattern_registry import get_patterns_with_prefix

from tinycompile.accel.config import AccelConfig
from tinycompile.arch import ArchSpec, Layer
from tinycompile.fpga.partition import CODEGEN, PATTERN_OPS, partition

L = Layer


def test_whole_network_goes_to_the_accelerator_through_run_codegen() -> None:
    """Every op matches a tinyaccel pattern, the regions merge into one external function, the codegen emits it."""
    graph = random_graph(repeated_blocks())
    part = partition(graph, AccelConfig.for_array(8), 1 << 21)
    assert [part.placement[i] for i in range(len(graph.ops))] == ["accelerator"] * 6 + ["view", "accelerator"]
    assert part.refused == {}
    assert part.program is not None and len(part.program.ops) == 7
    assert 'R.call_dps_packed("fused_' in part.relax_text and f'_{CODEGEN}"' in part.relax_text
    assert "R.call_tir" not in part.relax_text  # nothing left for the host
    assert tvm.get_global_func(f"relax.ext.{CODEGEN}") is not None
    names = {p.name for p in get_patterns_with_prefix(CODEGEN)}
    assert {f"{CODEGEN}.{s}" for s in PATTERN_OPS} | {f"{CODEGEN}.view"} <= names


def test_unsupported_layer_stays_in_relax_with_its_reason() -> None:
    """A stride beyond the address generator's 4-bit steps fails its pattern check and stays a host call_tir."""
    spec = ArchSpec((1, 1, 64), 3, (L("conv", (-1,), channels=4, kernel=(1, 16), stride=(1, 16)), L("gap", (0,)),
                                     L("flatten", (1,)), L("dense", (2,), channels=3)))
    part = partition(random_graph(spec), AccelConfig.for_array(8), 1 << 21)
    assert part.placement[0] == "host" and "stride" in part.refused[0]
    assert part.placement[1] == "accelerator" and part.program is None
    assert "R.call_tir" in part.relax_text and "l0_conv" in part.relax_text
