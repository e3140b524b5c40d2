"""Static arena planning over tensor lifetimes: one int8 arena, offsets fixed at compile time, no malloc.

The cost model uses it to predict peak SRAM and the MCU back end uses the same plan to lay out its arena, so the
predicted and the built figures agree. ``flatten`` is a view: it shares its input's buffer (the back ends permute the
following dense layer's weights instead of moving data).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinycompile.arch import ArchSpec, numel

VIEW_OPS = ("flatten",)
ALIGN = 4  # word alignment keeps 32-bit loads legal on every MCU


@dataclass(frozen=True)
class Buffer:
    """One tensor to place: its size in bytes and the first and last op (inclusive) during which it is live."""

    name: str
    size: int
    first: int
    last: int


@dataclass(frozen=True)
class ArenaPlan:
    """Byte offsets of every buffer in one arena of ``size`` bytes."""

    buffers: tuple[Buffer, ...]
    offsets: dict[str, int]
    size: int

    def offset_of_tensor(self, tensor: int, spec: ArchSpec) -> int:
        """Offset of layer ``tensor``'s output (``-1``: the network input), following views to their storage."""
        return self.offsets[_buffer_name(storage_tensor(spec, tensor))]


def plan(buffers: list[Buffer], align: int = ALIGN) -> ArenaPlan:
    """Greedy-by-size placement: largest first, each at the lowest offset free for its whole lifetime."""
    offsets: dict[str, int] = {}
    placed: list[tuple[Buffer, int]] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.name)):
        busy = sorted(
            (off, off + _aligned(other.size, align))
            for other, off in placed
            if other.first <= buf.last and buf.first <= other.last
        )
        offset = 0
        for start, end in busy:
            if offset + buf.size <= start:
                break
            offset = max(offset, _aligned(end, align))
        offsets[buf.name] = offset
        placed.append((buf, offset))
    size = max((off + b.size for b, off in placed), default=0)
    return ArenaPlan(tuple(buffers), offsets, _aligned(size, align))


def storage_tensor(spec: ArchSpec, tensor: int) -> int:
    """The tensor whose buffer holds ``tensor`` (itself, or the input of a chain of views)."""
    while tensor >= 0 and spec.layers[tensor].op in VIEW_OPS:
        tensor = spec.layers[tensor].inputs[0]
    return tensor


def activation_buffers(spec: ArchSpec) -> list[Buffer]:
    """The int8 activation buffers of a network with their lifetimes in op indices."""
    shapes = spec.shapes()
    n = len(spec.layers)
    first = {-1: 0}
    last = {-1: 0}
    for i, layer in enumerate(spec.layers):
        if layer.op not in VIEW_OPS:
            first[i] = last[i] = i
        for j in layer.inputs:
            root = storage_tensor(spec, j)
            last[root] = max(last[root], i)
    last[storage_tensor(spec, n - 1)] = n - 1  # the output stays live until the caller reads it
    sizes = {-1: numel(spec.input_shape), **{i: numel(shapes[i]) for i in first if i >= 0}}
    return [Buffer(_buffer_name(t), sizes[t], first[t], last[t]) for t in sorted(first)]


def plan_activations(spec: ArchSpec) -> ArenaPlan:
    """The arena plan of a network's activations."""
    return plan(activation_buffers(spec))


def _buffer_name(tensor: int) -> str:
    return "input" if tensor == -1 else f"t{tensor}"


def _aligned(n: int, align: int) -> int:
    return -(-n // align) * align
