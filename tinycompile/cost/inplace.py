"""In-place execution: which layers may write their output over their input, and at what byte distance.

Every kernel of the MCU back end that may run in place walks its output in *steps* in memory order (output rows:
depthwise, pools, convolutions, element-wise adds; for 1x1 convolutions, whose schedules fuse the pixels, tiles of
at most ``POINTWISE_TILE_MAX`` consecutive pixels and no more than a row, or two, read whole before any of their
outputs is stored) and step ``k`` reads only input bytes at or after ``first_read(k)``, which never decreases.
With the output placed ``d`` bytes before the input (``d = input base - output base``), step ``k`` writes bytes that
end at ``output base + end_write(k)``; when ``end_write(k) - first_read(k) <= d`` for every ``k``, no store of a step
touches a byte that this step or any later one still reads, so the output equals the out-of-place one. The distance
is at least one whole step, so a store never shares bytes with a load of its own step: only a load delayed past a
later step's store could read a clobbered byte, which no compiler does, and the kernels keep their no-alias
declarations. ``overlap`` returns the smallest such ``d`` (rounded up to the arena's alignment), or a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinycompile.arch import ArchSpec, Layer, Shape, numel

ROW_OPS = ("dwconv", "maxpool", "avgpool", "conv", "add")
# Pixels of a 1x1 convolution's largest tile in any MCU schedule: rv32's register tiles (up to 8 pixels within a
# row); the Arm pixel-pair tile takes 2 (across rows too), the other schedules 1 or 2.
POINTWISE_TILE_MAX = 8
ALIGN = 4


@dataclass(frozen=True)
class Overlap:
    """Layer ``layer`` may write its output ``distance`` bytes before the base of its input tensor ``tensor``."""

    layer: int
    tensor: int
    distance: int


def last_use(spec: ArchSpec) -> dict[int, int]:
    """For each tensor (-1: the network input), the last layer that reads it (views followed to their storage)."""
    from tinycompile.cost.arena import storage_tensor

    last: dict[int, int] = {}
    for i, layer in enumerate(spec.layers):
        for j in layer.inputs:
            root = storage_tensor(spec, j)
            last[root] = max(last.get(root, -1), i)
    return last


def overlap(spec: ArchSpec, index: int, shapes: list[Shape] | None = None) -> Overlap | str:
    """The in-place placement of layer ``index`` over one of its inputs, or why it is refused (a sentence)."""
    from tinycompile.cost.arena import storage_tensor

    shapes = shapes or spec.shapes()
    layer = spec.layers[index]
    if layer.op not in ROW_OPS:
        return f"{layer.op} does not write its output in the order it reads its input"
    if index == len(spec.layers) - 1:
        return "the network's output stays in its own buffer"
    last = last_use(spec)
    in_shapes = spec.input_shapes(index, shapes)
    reasons = []
    for j, in_shape in zip(layer.inputs, in_shapes):
        if storage_tensor(spec, j) != j:
            reasons.append(f"input {j} is a view of another tensor")
        elif last.get(j) != index:
            reasons.append(f"input {j} is read again by layer {last.get(j)}")
        else:
            d = _distance(layer, in_shape, shapes[index])
            if d >= numel(shapes[index]):
                reasons.append(f"the output would have to start {d} B before input {j}: nothing saved")
            else:
                return Overlap(index, j, d)
    return "; ".join(reasons)


def overlaps(spec: ArchSpec) -> list[Overlap]:
    """Every layer's in-place placement the planner may use (refused layers left out)."""
    shapes = spec.shapes()
    found = (overlap(spec, i, shapes) for i in range(len(spec.layers)))
    return [o for o in found if isinstance(o, Overlap)]


def _distance(layer: Layer, in_shape: Shape, out_shape: Shape) -> int:
    """Smallest ``max_k end_write(k) - first_read(k)`` over the kernel's steps, aligned up (module docstring)."""
    c_in, _, w_in = in_shape
    c_out, h_out, w_out = out_shape
    if layer.op == "conv" and layer.kernel == (1, 1) and layer.stride == (1, 1) and not any(layer.padding):
        # Tiles of at most t pixels, wherever they start: a tile [s, e) needs e * c_out - s * c_in, which is largest
        # for the first tile (c_out < c_in) or for one that ends the map (e = P, s = P - t)
        pixels = h_out * w_out
        t = min(POINTWISE_TILE_MAX, max(w_out, 2), pixels)  # rv32's tiles lie within a row, the Arm pairs may not
        need = max(t * c_out, pixels * c_out - (pixels - t) * c_in)
    else:
        row_in, row_out = w_in * c_in, w_out * c_out
        stride, top = layer.stride[0], layer.padding[0]
        need = max((y + 1) * row_out - max(0, y * stride - top) * row_in for y in range(h_out))
    return -(-max(need, 0) // ALIGN) * ALIGN
