"""Small image networks on QEMU (cortex-m4) with in-place layers and with a patch stage: every layer's output
bit-exact against the integer reference, and the built arena the one the cost model predicts."""

from __future__ import annotations

import numpy as np
import pytest
from mcu_helpers import random_model

from tinycompile.arch import ArchSpec, Layer
from tinycompile.cost import memory
from tinycompile.cost.inplace import overlaps
from tinycompile.cost.model import estimate
from tinycompile.cost.patches import plan_patches
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.quant.quantize import quantize
from tinycompile.targets import load_target


def image_net(size: int) -> ArchSpec:
    """conv 3x3 s2 (TF's SAME: padded bottom and right only), depthwise-separable blocks (s1, s2, s1), pool, dense."""
    layers = (Layer("conv", (-1,), channels=8, kernel=(3, 3), stride=(2, 2), padding=(0, 1, 0, 1), relu=True),
              Layer("dwconv", (0,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
              Layer("conv", (1,), channels=16, relu=True),
              Layer("dwconv", (2,), kernel=(3, 3), stride=(2, 2), padding=(0, 1, 0, 1), relu=True),
              Layer("conv", (3,), channels=12, relu=True),
              Layer("dwconv", (4,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
              Layer("conv", (5,), channels=20, relu=True),
              Layer("gap", (6,)), Layer("flatten", (7,)), Layer("dense", (8,), channels=3))
    return ArchSpec((3, size, size), 3, layers, {"name": "image"})


def _build(spec: ArchSpec, plan: memory.MemoryPlan, tmp_path, codegen: str = "c"):  # type: ignore[no-untyped-def]
    model = random_model(spec, 1)
    rng = np.random.default_rng(1)
    calib = rng.normal(0, 1, (16, *spec.input_shape)).astype(np.float32)
    graph = quantize(spec, model, calib)
    vectors = graph.quantize_input(rng.normal(0, 1.5, (3, *spec.input_shape)).astype(np.float32))
    return build_and_run(graph, spec, load_target("cortex-m4"), tmp_path, vectors, codegen,
                         compiled=compile_graph(graph, plan), check_layers=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("codegen", ["c", "llvm"])
def test_inplace_layers_are_bit_exact(codegen: str, tmp_path) -> None:
    spec = image_net(18)
    # every layer the planner allows in place, at its smallest distance (the planner itself keeps only those that
    # shrink the arena): conv s2, depthwise s1 and s2, pointwise expanding and shrinking
    allowed = tuple(overlaps(spec))
    assert {o.layer for o in allowed} == {0, 1, 2, 3, 4, 5, 6}
    plan = memory.plan_memory(spec, allowed, None)
    result = _build(spec, plan, tmp_path, codegen)
    assert result.ok and result.mismatches == 0  # logits and every layer's output
    r = result.report
    assert r["arena_bytes"] == r["arena_bytes_in_elf"] == plan.size


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("end,grid", [(3, (2, 2)), (2, (3, 3))])
def test_patch_stage_is_bit_exact(end: int, grid: tuple[int, int], tmp_path) -> None:
    spec = image_net(22)  # 11 x 11 after conv0: patches shifted back at the border, padding on two sides only
    patch = plan_patches(spec, end, grid)
    assert patch is not None
    plan = memory.plan_memory(spec, True, patch)
    result = _build(spec, plan, tmp_path)
    assert result.ok and result.mismatches == 0  # logits and the stage's output and every later layer's
    r = result.report
    assert r["arena_bytes"] == r["arena_bytes_in_elf"] == plan.size
    assert r["kernels"][0] == "patch stage" and len(r["kernels"]) == len(spec.layers) - end - 1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cost_model_predicts_the_built_arena(tmp_path) -> None:
    spec = image_net(18)
    result = _build(spec, memory.choose(spec), tmp_path)
    r = result.report
    assert result.ok and r["arena_bytes"] == estimate(spec, load_target("cortex-m4")).arena_bytes == r["arena_planned_bytes"]
    assert r["arena_per_layer_bytes"] == memory.baseline(spec).size > r["arena_bytes"]
