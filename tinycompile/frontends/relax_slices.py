"""The Relax ops that pick parts of a tensor, read into ``slice`` layers (:class:`SliceOps`, a part of the walker).

* ``strided_slice`` (ONNX Slice, torch's ``x[:, a:b]``, ``x[..., ::2, ::2]``, ``narrow``): rows and columns cut and
  stepped, channels as a range;
* ``split`` (torch's ``chunk`` / ``split``, ONNX Split): each part read is the slice of its range, made where it is
  read, so a part nobody reads costs nothing;
* ``take`` with constant indices along the channels (``index_select``, ``x[:, [2, 0, 1]]``) and ``flip`` of the
  channels: any channel order;
* a channel shuffle (ShuffleNet's reshape ``C -> (g, C / g)``, transpose of the two, reshape back): the permutation
  as one slice layer. A reshape that splits the channels is held until it is merged back, and a transpose may swap
  the two halves meanwhile; anything else reading the split view is refused.

A slice copies int8 values, so it keeps its input's quantization (no requantization, no calibration).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tinycompile.frontends.relax_walker import Draft, GraphWalker, Val
from tinycompile.frontends.slicing import NO_CUT, slice_fields


@dataclass(frozen=True)
class _Grouped:
    """A tensor whose channel axis (at ``axis``) a reshape split into ``groups`` x ``C / groups`` (``swapped``: the two
    transposed since)."""

    val: Val
    axis: int
    groups: int
    swapped: bool = False


class SliceOps(GraphWalker):
    """The walker's handlers of slices, splits, channel gathers and channel shuffles."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.splits: dict[Any, tuple[Val, int, list[tuple[int, int]]]] = {}  # a split's var: input, axis, ranges
        self.grouped: dict[Any, _Grouped] = {}

    def _strided_slice(self, var: Any, call: Any) -> None:
        val = self._sliceable(call.args[0])
        ranges = {int(a) % len(val.shape): (int(b), int(e), int(s))
                  for a, b, e, s in zip(*(_ints(arg) for arg in call.args[1:5]))}
        self._slice(var, val, ranges, call.args[0])

    def _split(self, var: Any, call: Any) -> None:
        val = self._sliceable(call.args[0])
        axis = int(call.attrs.axis) % len(val.shape)
        size, parts = val.shape[axis], call.attrs.indices_or_sections
        if isinstance(parts, (int, np.integer)) or hasattr(parts, "value"):  # n equal sections
            n = int(getattr(parts, "value", parts))
            cuts = [size * k // n for k in range(1, n)]
        else:
            cuts = [min(int(getattr(i, "value", i)), size) for i in parts]
        bounds = [0, *cuts, size]
        self.splits[var] = (val, axis, list(zip(bounds[:-1], bounds[1:])))

    def _tuple_item(self, var: Any, item: Any) -> None:
        tup = item.tuple_value
        if tup not in self.splits:
            super()._tuple_item(var, item)
            return
        val, axis, ranges = self.splits[tup]
        begin, end = ranges[item.index]
        self._slice(var, val, {axis: (begin, end, 1)})

    def _take(self, var: Any, call: Any) -> None:
        val = self._sliceable(call.args[0])
        index = self._const(call.args[1])
        axis = int(call.attrs.axis) % len(val.shape) if call.attrs.axis is not None else None
        if index is None or axis is None or val.axes[axis] != "C" or index.ndim != 1:
            raise self._error("a gather is supported only with constant indices along the channels")
        select = tuple(int(i) % val.size("C") for i in index)
        self._emit_slice(var, val, Draft("slice", (val.layer,), select=select), call.args[0])

    def _flip(self, var: Any, call: Any) -> None:
        val = self._sliceable(call.args[0])
        axis = int(call.attrs.axis) % len(val.shape)
        self._slice(var, val, {axis: (val.shape[axis] - 1, -val.shape[axis] - 1, -1)}, call.args[0])

    def _sliceable(self, expr: Any) -> Val:
        val = self._materialize(self._value(expr))
        if val.order:
            raise self._error(f"a slice of a tensor flattened in {val.order} order has no spec equivalent")
        return val

    def _slice(self, var: Any, val: Val, ranges: dict[int, tuple[int, int, int]], src: Any = None) -> None:
        """``var`` is ``val`` (read from ``src``) cut to ``ranges`` (axis -> begin, end, step, as Python slices)."""
        try:
            cut, channels = slice_fields({val.axes[a]: r for a, r in ranges.items()},
                                         dict(zip(val.axes, val.shape)))
        except ValueError as exc:
            raise self._error(str(exc)) from None
        if channels is None and cut == {"H": NO_CUT, "W": NO_CUT}:  # all of it
            self.vals[var] = val
            return
        (top, bottom, sh), (left, right, sw) = cut["H"], cut["W"]
        draft = Draft("slice", (val.layer,), stride=(sh, sw), padding=(top, bottom, left, right),
                      select=() if channels is None else tuple(channels))
        self._emit_slice(var, val, draft, src)

    def _emit_slice(self, var: Any, val: Val, draft: Draft, src: Any) -> None:
        """Emit the slice ``draft`` of ``val``; a slice of a slice layer is one slice of that layer's input (torch
        slices one axis at a time), made in place where ``src`` is the first's only reader."""
        first = self.drafts[val.layer] if val.layer >= 0 else None
        if first is None or first.op != "slice":
            self._emit_like(var, draft, val)
            return
        source = first.inputs[0]
        c_in, h_in, w_in = self.drafts[source].chw if source >= 0 else self.vals[self.fn.params[0]].chw
        chw = replace(val, shape=self._shape(var, self.where)).chw
        (t1, _, l1, _), (s1h, s1w) = first.padding, first.stride
        top, sh = t1 + draft.padding[0] * s1h, s1h * draft.stride[0]
        left, sw = l1 + draft.padding[2] * s1w, s1w * draft.stride[1]
        outer = first.select or tuple(range(c_in))
        select = tuple(outer[j] for j in (draft.select or range(len(outer))))
        composed = Draft("slice", (source,), stride=(sh, sw), select=() if select == tuple(range(c_in)) else select,
                         padding=(top, h_in - top - (chw[1] - 1) * sh - 1, left, w_in - left - (chw[2] - 1) * sw - 1))
        if self._open(src) is first:  # the first slice has no other reader: it becomes the composition
            self.drafts[val.layer] = replace(composed, chw=chw, where=first.where)
            self._fold_into(self.drafts[val.layer], var, replace(val, shape=self._shape(var, self.where)))
        else:  # the first stays for its other readers (or is left unread: pruned with the walk's other dead layers)
            self._emit_like(var, composed, replace(val, layer=source))

    def _split_channels(self, var: Any, val: Val, out: tuple[int, ...]) -> bool:
        """Hold ``var`` when the reshape to ``out`` splits ``val``'s channel axis in two (a channel shuffle's start)."""
        if "C" not in val.axes or val.order or len(out) != len(val.shape) + 1:
            return False
        axis = val.axes.index("C")
        groups, per_group = out[axis], out[axis + 1]
        if (out[:axis], out[axis + 2:]) != (val.shape[:axis], val.shape[axis + 1:]) or groups * per_group != val.shape[axis]:
            return False
        self.grouped[var] = _Grouped(val, axis, groups)
        return True

    def _pass_grouped(self, var: Any, src: Any) -> bool:
        """A pre-quantized model's quantize or dequantize of a channel-split view: the view passes on (a shuffle is a
        copy, so it keeps what it views' quantization)."""
        if src not in self.grouped:
            return False
        self.grouped[var] = self.grouped[src]
        return True

    def _swap_groups(self, var: Any, src: Any, perm: list[int]) -> None:
        """A transpose of a channel-split view: only the two halves of the channels may trade places."""
        held = self.grouped[src]
        swap = list(range(len(perm)))
        swap[held.axis], swap[held.axis + 1] = held.axis + 1, held.axis
        if perm == swap:
            self.grouped[var] = replace(held, swapped=not held.swapped)
        elif perm == list(range(len(perm))):
            self.grouped[var] = held
        else:
            raise self._error(f"a transpose {perm} of a tensor whose channels a reshape split is not supported "
                              "(only a channel shuffle's swap of the two)")

    def _merge_groups(self, var: Any, src: Any, out: tuple[int, ...]) -> None:
        """The reshape that ends a channel shuffle: a slice layer with the channels in their new order."""
        held = self.grouped[src]
        if out != held.val.shape:
            raise self._error(f"a reshape of a tensor whose channels a reshape split to {list(out)} is not supported "
                              f"(only back to {list(held.val.shape)}, a channel shuffle)")
        if not held.swapped:
            self.vals[var] = held.val
            return
        channels = held.val.shape[held.axis]
        per_group = channels // held.groups
        select = tuple((j % held.groups) * per_group + j // held.groups for j in range(channels))
        self._emit_like(var, Draft("slice", (held.val.layer,), select=select), held.val)


def _ints(arg: Any) -> list[int]:
    """A tuple of integers as a Relax op's argument holds it."""
    return [int(getattr(v, "value", v)) for v in arg.fields]
