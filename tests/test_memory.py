"""The memory planner: in-place distances (checked byte by byte against the kernels' step order), refusals, patch
geometry, and the cost model predicting the arena the planner builds."""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.arch import ArchSpec, Layer, numel
from tinycompile.cost import memory
from tinycompile.cost.inplace import POINTWISE_TILE_MAX, Overlap, overlap
from tinycompile.cost.model import estimate
from tinycompile.cost.patches import plan_patches, stage_ends, stage_macs
from tinycompile.targets import load_target


def image_net(size: int = 20, width: int = 8) -> ArchSpec:
    """A small image network of MobileNetV1's shape: conv s2, depthwise-separable blocks, pool, dense."""
    layers = [Layer("conv", (-1,), channels=width, kernel=(3, 3), stride=(2, 2), padding=(0, 1, 0, 1), relu=True),
              Layer("dwconv", (0,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
              Layer("conv", (1,), channels=2 * width, relu=True),
              Layer("dwconv", (2,), kernel=(3, 3), stride=(2, 2), padding=(0, 1, 0, 1), relu=True),
              Layer("conv", (3,), channels=2 * width, relu=True),
              Layer("dwconv", (4,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
              Layer("conv", (5,), channels=2 * width, relu=True),
              Layer("gap", (6,)), Layer("flatten", (7,)), Layer("dense", (8,), channels=2)]
    return ArchSpec((3, size, size), 2, tuple(layers), {"name": "image"})


def _steps(layer: Layer, in_shape, out_shape, end_aligned: bool = False):  # type: ignore[no-untyped-def]
    """The kernel's steps as byte ranges: (bytes read, bytes written) per step, in execution order, from the
    window of each output (not from the formula under test). 1x1 convs: tiles of the most pixels a schedule takes
    (``POINTWISE_TILE_MAX``, no more than a row or two) from the first pixel, or (``end_aligned``) with the short
    tile first, so a whole one ends the map."""
    c_in, h_in, w_in = in_shape
    c_out, h_out, w_out = out_shape
    if layer.kernel == (1, 1) and layer.op == "conv":
        pixels = h_out * w_out
        t = min(POINTWISE_TILE_MAX, max(w_out, 2), pixels)
        starts = sorted({0, *range(pixels % t if end_aligned else 0, pixels, t)})
        for s, e in zip(starts, [*starts[1:], pixels]):
            yield range(s * c_in, e * c_in), range(s * c_out, e * c_out)
        return
    (kh, _), (s, _), top = layer.kernel, layer.stride, layer.padding[0]
    for y in range(h_out):
        rows = [r for r in range(y * s - top, y * s - top + kh) if 0 <= r < h_in]
        read = [b for r in rows for b in range(r * w_in * c_in, (r + 1) * w_in * c_in)]
        yield read, range(y * w_out * c_out, (y + 1) * w_out * c_out)


def _clobbered(layer: Layer, in_shape, out_shape, distance: int) -> bool:  # type: ignore[no-untyped-def]
    """Run the steps over one buffer, the output ``distance`` bytes before the input: does a read see a write (in
    either tiling of a 1x1 conv)? A step's loads and stores interleave (in any order), so its own stores count too."""
    for end_aligned in (False, True):
        written = np.zeros(distance + numel(in_shape) + numel(out_shape), dtype=bool)
        for read, wrote in _steps(layer, in_shape, out_shape, end_aligned):
            written[list(wrote)] = True
            if written[[distance + b for b in read]].any():
                return True
    return False


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4, 5, 6])
def test_inplace_distance_is_safe_and_tight(index: int) -> None:
    spec = image_net()
    shapes = spec.shapes()
    found = overlap(spec, index, shapes)
    assert isinstance(found, Overlap), found
    layer, in_shape = spec.layers[index], spec.input_shapes(index, shapes)[0]
    assert not _clobbered(layer, in_shape, shapes[index], found.distance)
    assert found.distance % 4 == 0 and found.distance < numel(shapes[index])
    # 4 bytes closer (the arena's alignment) a step reads a byte an earlier step wrote
    assert found.distance == 0 or _clobbered(layer, in_shape, shapes[index], found.distance - 4)


def test_inplace_refused_where_unsafe() -> None:
    layers = (Layer("conv", (-1,), channels=4, kernel=(3, 3), padding=(1, 1, 1, 1)),
              Layer("dwconv", (0,), kernel=(3, 3), padding=(1, 1, 1, 1)),
              Layer("add", (0, 1)),
              Layer("gap", (2,)), Layer("flatten", (3,)), Layer("dense", (4,), channels=3))
    spec = ArchSpec((2, 6, 6), 3, layers)
    assert overlap(spec, 1, None) == "input 0 is read again by layer 2"  # the residual still needs it
    assert isinstance(overlap(spec, 2, None), Overlap)  # the add may overwrite one of its inputs (its last reader)
    assert overlap(spec, 3, None) == "gap does not write its output in the order it reads its input"
    assert overlap(spec, 5, None) == "dense does not write its output in the order it reads its input"
    plan = memory.plan_memory(spec, True, None)
    assert 1 not in [o.layer for o in plan.inplace]


def test_inplace_plan_keeps_live_tensors_apart() -> None:
    spec = image_net(24)
    plan = memory.plan_memory(spec, True, None)
    assert plan.inplace and plan.size < memory.baseline(spec).size
    inplace = {(o.layer, o.tensor): o.distance for o in plan.inplace}
    shapes = spec.shapes()
    sizes = {-1: numel(spec.input_shape), **{i: numel(s) for i, s in enumerate(shapes) if i in plan.tensor_offsets}}
    buffers = {b.name: b for b in memory.activation_buffers(spec)}
    for a in plan.tensor_offsets:
        for b in plan.tensor_offsets:
            if a >= b or (b, a) in inplace:
                continue
            ba, bb = buffers["input" if a == -1 else f"t{a}"], buffers[f"t{b}"]
            if ba.first <= bb.last and bb.first <= ba.last:  # live together: disjoint bytes
                oa, ob = plan.tensor_offsets[a], plan.tensor_offsets[b]
                assert oa + sizes[a] <= ob or ob + sizes[b] <= oa, (a, b)
    for (layer, tensor), d in inplace.items():
        assert plan.tensor_offsets[tensor] - plan.tensor_offsets[layer] == d


def test_patch_regions_are_receptive_fields() -> None:
    spec = image_net(20)
    assert stage_ends(spec) == [1, 2, 3, 4, 5, 6]  # not the dense, nor past the pool
    plan = plan_patches(spec, 3, (2, 2))
    assert plan is not None and plan.patch == (3, 3) and plan.row_starts == (0, 2)  # 5 rows: the last patch shifted
    # a patch's input region, walked forward through each layer, gives exactly the next layer's region
    for a in plan.row_starts:
        for l in range(plan.end + 1):
            layer, r = spec.layers[l], plan.rows[l]
            out = plan.rows[l + 1] if l < plan.end else None
            first_out = (r.scale * a + r.shift + layer.padding[0]) // layer.stride[0]
            n_out = (r.size - layer.kernel[0]) // layer.stride[0] + 1
            if out is not None:
                assert (first_out, n_out) == (out.scale * a + out.shift, out.size)
            else:
                assert (first_out, n_out) == (a, plan.patch[0])
    whole, patched = stage_macs(spec, plan)
    assert patched > whole == sum(spec.macs()[:4])


def test_planner_takes_patches_only_when_they_lower_the_arena_within_the_overhead() -> None:
    spec = image_net(48, 16)
    unpatched = memory.plan_memory(spec, True, None)
    # a small network: every stage recomputes more than 5% of its MACs, so no patches by default
    assert memory.choose(spec).patch is None and memory.choose(spec).size == unpatched.size
    chosen = memory.choose(spec, max_overhead=0.25)
    assert chosen.patch is not None and chosen.size < unpatched.size and not chosen.input_in_arena
    whole, patched = stage_macs(spec, chosen.patch)
    assert 0.05 < (patched - whole) / sum(spec.macs()) <= 0.25
    assert chosen.patch.end in (3, 4) and chosen.patch.grid == (2, 2)  # it ends where the tensors shrink
    assert memory.choose(spec, patches=False, max_overhead=0.25).patch is None


@pytest.mark.parametrize("size", [20, 48])
def test_cost_model_predicts_the_planned_arena(size: int) -> None:
    spec = image_net(size)
    cost = estimate(spec, load_target("cortex-m4"))
    assert cost.arena_bytes == memory.choose(spec).size
