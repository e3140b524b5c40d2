"""Patch-based execution of a network's first stage: its geometry, from the ArchSpec alone.

The stage is the chain of convolutions from the input up to layer ``end``; its output is cut into a grid of equal
patches (the last row and column of patches shifted back to end at the border, so every patch has one shape). Each
patch is computed from its receptive field in the input, layer by layer, in small patch buffers: only the stage's
output exists whole. Going back from an output patch of ``size`` rows starting at row ``a``, a layer with kernel
``k``, stride ``s`` and top padding ``p`` reads rows ``a*s - p .. a*s - p + (size-1)*s + k - 1`` of its input: every
region is an affine function ``scale * a + shift`` of the patch's start with a fixed size. The regions are not
clipped at the borders (the patch kernels are compiled once, without padding, for one shape): positions outside a
tensor are filled with its zero point (what padding reads) before the next layer runs, and the values computed from
positions further out land only on positions that are themselves outside, and are overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tinycompile.arch import ArchSpec, Layer, Shape, numel

STAGE_OPS = ("conv", "dwconv")
MAX_GRID = 8


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a layer's input region: start ``scale * a + shift`` for a stage-output patch at ``a``."""

    scale: int
    shift: int
    size: int


@dataclass(frozen=True)
class PatchPlan:
    """Layers ``0..end`` run per patch on a ``grid`` (rows, columns) of the stage output; per layer its input region
    (``rows[l]``, ``cols[l]``) and the patch starts along each axis of the stage output."""

    end: int
    grid: tuple[int, int]
    patch: tuple[int, int]
    rows: tuple[Axis, ...]
    cols: tuple[Axis, ...]
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @property
    def count(self) -> int:
        """Number of patches."""
        return self.grid[0] * self.grid[1]

    def in_shape(self, spec: ArchSpec, layer: int, shapes: list[Shape] | None = None) -> Shape:
        """(C, H, W) of layer ``layer``'s input patch buffer."""
        shapes = shapes or spec.shapes()
        c = spec.input_shape[0] if layer == 0 else shapes[layer - 1][0]
        return (c, self.rows[layer].size, self.cols[layer].size)

    def out_shape(self, spec: ArchSpec, layer: int, shapes: list[Shape] | None = None) -> Shape:
        """(C, H, W) of layer ``layer``'s output patch (the next layer's input patch, or the stage's output patch)."""
        shapes = shapes or spec.shapes()
        if layer == self.end:
            return (shapes[layer][0], *self.patch)
        return self.in_shape(spec, layer + 1, shapes)

    def patch_layer(self, spec: ArchSpec, layer: int) -> Layer:
        """Layer ``layer`` as its patch kernel computes it: the same op without padding (the buffers hold it)."""
        src = spec.layers[layer]
        return replace(src, padding=(0, 0, 0, 0))


def stage_ends(spec: ArchSpec) -> list[int]:
    """Layers that may end a patch stage: a chain of convolutions from the input whose inner tensors nothing else
    reads, ending before the last layer."""
    ends = []
    readers: dict[int, list[int]] = {}
    for i, layer in enumerate(spec.layers):
        for j in layer.inputs:
            readers.setdefault(j, []).append(i)
    for i, layer in enumerate(spec.layers[:-1]):
        if layer.op not in STAGE_OPS or layer.inputs != (i - 1,):
            break
        if i > 0 and readers.get(i - 1) != [i]:
            break
        ends.append(i)
    return [e for e in ends if e >= 1]


def plan_patches(spec: ArchSpec, end: int, grid: tuple[int, int]) -> PatchPlan | None:
    """The geometry of running layers ``0..end`` per patch on ``grid``; None when the grid does not fit the output."""
    shapes = spec.shapes()
    _, h, w = shapes[end]
    if grid[0] > h or grid[1] > w or grid == (1, 1):
        return None
    ph, pw = -(-h // grid[0]), -(-w // grid[1])
    row_starts = tuple(min(i * ph, h - ph) for i in range(grid[0]))
    col_starts = tuple(min(j * pw, w - pw) for j in range(grid[1]))
    if len(set(row_starts)) < grid[0] or len(set(col_starts)) < grid[1]:
        return None  # two patches would coincide
    rows: list[Axis] = []
    cols: list[Axis] = []
    r, c = Axis(1, 0, ph), Axis(1, 0, pw)  # the output region of the layer being walked back through
    for layer in reversed(spec.layers[: end + 1]):
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        pt, _, pl, _ = layer.padding
        r = Axis(r.scale * sh, r.shift * sh - pt, (r.size - 1) * sh + kh)
        c = Axis(c.scale * sw, c.shift * sw - pl, (c.size - 1) * sw + kw)
        rows.insert(0, r)
        cols.insert(0, c)
    return PatchPlan(end, grid, (ph, pw), tuple(rows), tuple(cols), row_starts, col_starts)


def stage_macs(spec: ArchSpec, plan: PatchPlan) -> tuple[int, int]:
    """Multiply-accumulates of the stage run whole and run per patch (recomputed overlaps and borders included)."""
    shapes = spec.shapes()
    whole = sum(spec.macs()[: plan.end + 1])
    per_patch = 0
    for layer in range(plan.end + 1):
        c_in = plan.in_shape(spec, layer, shapes)[0]
        c_out, h, w = plan.out_shape(spec, layer, shapes)
        kh, kw = spec.layers[layer].kernel
        per_patch += h * w * c_out * kh * kw * (c_in if spec.layers[layer].op == "conv" else 1)
    return whole, per_patch * plan.count


def patch_buffer_sizes(spec: ArchSpec, plan: PatchPlan) -> list[int]:
    """Bytes of the patch buffers: layer ``l``'s input patch for each stage layer, then the stage's output patch."""
    shapes = spec.shapes()
    return [numel(plan.in_shape(spec, l, shapes)) for l in range(plan.end + 1)] + [numel(plan.out_shape(spec, plan.end, shapes))]
