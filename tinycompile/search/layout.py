"""Laying out convolutional candidates: a growing list of layers that tracks the feature map's shape, so that every
kernel, stride and pool a builder appends is legal for the map it meets (SAME padding; 1-D maps convolve along W).

Each layer with weights is also named by its place in the space (``stem``, ``block2.conv``, ``stage1.block0.expand``):
the same name in every candidate, which is what a weight-sharing supernet (:mod:`tinycompile.search.supernet`) keys
its shared weights by."""

from __future__ import annotations

from tinycompile.arch import Layer, Shape, same_padding


class LayerStack:
    """Layers appended in execution order, with the shape ``(C, H, W)`` of the last one's output."""

    def __init__(self, input_shape: Shape, two_d: bool) -> None:
        self.two_d = two_d
        self.layers_: list[Layer] = []
        self.shape = input_shape
        self.slots: dict[int, str] = {}  # layer index -> the name of its place in the space (layers with weights)

    @property
    def last(self) -> int:
        """Index of the last layer (-1: the network input)."""
        return len(self.layers_) - 1

    def conv(self, op: str, src: int, channels: int, kernel: int, stride: int, relu: bool, slot: str | None = None) -> None:
        """Append a ``conv`` or ``dwconv`` reading layer ``src``, with SAME padding (a square kernel on 2-D maps),
        named ``slot``."""
        if slot is not None:
            self.slots[len(self.layers_)] = slot
        _, h, w = self.shape
        if self.two_d:
            kh = kw = kernel
            sh = sw = stride
        else:
            kh, kw, sh, sw = 1, kernel, 1, stride
        pad = (*same_padding(h, kh, sh), *same_padding(w, kw, sw))
        self.append(Layer(op, (src,), channels=channels if op == "conv" else 0, kernel=(kh, kw), stride=(sh, sw),
                          padding=pad, relu=relu))

    def dense(self, channels: int, relu: bool, slot: str) -> None:
        """Append a dense layer named ``slot`` reading the last layer (a flat map: after a flatten, gap or dense)."""
        self.slots[len(self.layers_)] = slot
        self.layers_.append(Layer("dense", (self.last,), channels=channels, relu=relu))

    def append(self, layer: Layer) -> None:
        """Append a layer that reads the current map and keeps or shrinks it (conv, dwconv, pools, add)."""
        self.layers_.append(layer)
        c, h, w = self.shape
        kh, kw = layer.kernel
        sh, sw = layer.stride
        pt, pb, pl, pr = layer.padding
        channels = layer.channels if layer.op == "conv" else c
        self.shape = (channels, (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1)

    def spatial(self) -> int:
        """The smaller side of the map (its length for 1-D signals)."""
        _, h, w = self.shape
        return min(h, w) if self.two_d else w

    def legal_stride(self, stride: int) -> int:
        """``stride``, or 1 where the map is too small to be halved (a map never shrinks below one position)."""
        return stride if self.spatial() >= 2 * stride else 1
