"""The PyTorch module of an ArchSpec, and its float weights with batch norm folded (what the quantizer reads)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinycompile.arch import ArchSpec, Layer


# What has a torch module: the ops the spaces produce, and those a float model's import adds (lut is int8-only).
TRAINABLE_OPS = ("conv", "dwconv", "maxpool", "avgpool", "gap", "flatten", "dense", "add", "softmax", "pad", "concat", "mean",
                 "sigmoid", "tanh", "unary", "mul", "upsample", "spread", "slice")


class SpecNet(nn.Module):
    """Runs the layers of a spec in order; conv and depthwise layers train with batch norm, folded away later."""

    def __init__(self, spec: ArchSpec) -> None:
        """The module of ``spec``; ``ValueError`` for an op without one (``lut``: only int8 imports have it)."""
        super().__init__()
        self.spec = spec
        other = [f"{i} ({layer.op})" for i, layer in enumerate(spec.layers) if layer.op not in TRAINABLE_OPS]
        if other:
            raise ValueError(f"layer {other[0]} has no torch module; trainable ops are {', '.join(TRAINABLE_OPS)}")
        shapes = spec.shapes()
        self.ops = nn.ModuleList(_make_op(layer, spec.input_shapes(i, shapes)[0][0]) for i, layer in enumerate(spec.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, C, H, W) float; returns (N, num_classes) logits."""
        outs: list[torch.Tensor] = []
        for layer, op in zip(self.spec.layers, self.ops):
            args = [x if j == -1 else outs[j] for j in layer.inputs]
            outs.append(activation(layer, op(*args)))
        return outs[-1].flatten(1)


def activation(layer: Layer, y: torch.Tensor) -> torch.Tensor:
    """The layer's output activation on ``y``: its ReLU, then its cap."""
    y = torch.relu(y) if layer.relu else y
    return y if layer.cap is None else torch.clamp(y, max=layer.cap)


class _Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class _Mul(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b  # b (N, C, 1, 1) broadcasts over a's positions


class _Dense(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # keeps the (N, C, 1, 1) layout of every tensor
        return super().forward(x.flatten(1))[:, :, None, None]


class _FlattenKeep(nn.Module):  # keeps the (N, C, 1, 1) layout of every tensor
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :, None, None]


class Elementwise(nn.Module):
    """A ``unary`` layer: the function an importer gives it (``fn``: tensor -> tensor, element by element)."""

    def __init__(self) -> None:
        super().__init__()
        self.fn: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fn is None:
            raise ValueError("a unary layer has no function: only a float model's import gives it one")
        return self.fn(x)


class _Spread(nn.Module):
    """Pixels ``stride`` apart after ``padding``, zeros between: with a stride-1 conv, a transposed convolution."""

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (sh, sw), (pt, pb, pl, pr) = self.stride, self.padding
        n, c, h, w = x.shape
        out = x.new_zeros((n, c, (h - 1) * sh + 1 + pt + pb, (w - 1) * sw + 1 + pl + pr))
        out[:, :, pt : pt + (h - 1) * sh + 1 : sh, pl : pl + (w - 1) * sw + 1 : sw] = x
        return out


class _Slice(nn.Module):
    """Rows and columns ``padding`` cut away then every ``stride``-th kept; the channels ``select`` (empty: all)."""

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        self.stride, self.padding = layer.stride, layer.padding
        self.register_buffer("select", torch.tensor(layer.select, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (sh, sw), (pt, pb, pl, pr) = self.stride, self.padding
        x = x[:, :, pt : x.shape[2] - pb : sh, pl : x.shape[3] - pr : sw]
        return x[:, self.select] if len(self.select) else x


class _Concat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class _PaddedPool(nn.Module):
    """A pool whose taps in the padding are ignored: they hold -inf for a max and are left out of a mean's count."""

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        pt, pb, pl, pr = layer.padding
        self.pad, self.kernel, self.stride, self.is_max = (pl, pr, pt, pb), layer.kernel, layer.stride, layer.op == "maxpool"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_max:
            return F.max_pool2d(F.pad(x, self.pad, value=float("-inf")), self.kernel, self.stride)
        total = F.avg_pool2d(F.pad(x, self.pad), self.kernel, self.stride, divisor_override=1)
        count = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), self.pad), self.kernel, self.stride, divisor_override=1)
        return total / count


def _make_op(layer: Layer, c_in: int) -> nn.Module:
    pt, pb, pl, pr = layer.padding
    if layer.op in ("conv", "dwconv"):
        c_out = layer.channels if layer.op == "conv" else c_in
        groups = 1 if layer.op == "conv" else c_in
        conv = nn.Conv2d(c_in, c_out, layer.kernel, layer.stride, groups=groups, bias=False)
        return nn.Sequential(nn.ZeroPad2d((pl, pr, pt, pb)), conv, nn.BatchNorm2d(c_out))
    if layer.op in ("maxpool", "avgpool") and any(layer.padding):
        return _PaddedPool(layer)
    if layer.op == "maxpool":
        return nn.MaxPool2d(layer.kernel, layer.stride)
    if layer.op == "avgpool":
        return nn.AvgPool2d(layer.kernel, layer.stride)
    if layer.op in ("gap", "mean"):
        return nn.AdaptiveAvgPool2d(1)
    if layer.op == "flatten":
        return _FlattenKeep()
    if layer.op == "dense":
        return _Dense(c_in, layer.channels)
    if layer.op == "add":
        return _Add()
    if layer.op == "mul":
        return _Mul()
    if layer.op == "softmax":  # over the channels of each position, as the spec defines it
        return nn.Softmax(dim=1)
    if layer.op == "pad":  # float models pad with zeros (the int8 graph pads with the input zero point)
        return nn.ZeroPad2d((pl, pr, pt, pb))
    if layer.op == "concat":
        return _Concat()
    if layer.op == "sigmoid":
        return nn.Sigmoid()
    if layer.op == "tanh":
        return nn.Tanh()
    if layer.op == "unary":
        return Elementwise()
    if layer.op == "upsample":
        return nn.Upsample(scale_factor=tuple(float(s) for s in layer.stride), mode="nearest")
    if layer.op == "spread":
        return _Spread(layer.stride, layer.padding)
    if layer.op == "slice":
        return _Slice(layer)
    raise ValueError(f"op {layer.op!r} has no float module: the spec does not say which function its table holds")


def folded_weights(model: SpecNet) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per layer, float ``(weight, bias)`` in torch layout with batch norm folded in (None for ops without weights)."""
    result: list[tuple[np.ndarray, np.ndarray] | None] = []
    with torch.no_grad():
        for layer, op in zip(model.spec.layers, model.ops):
            if layer.op in ("conv", "dwconv"):
                conv, bn = op[1], op[2]
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                w = conv.weight * scale[:, None, None, None]
                b = bn.bias - bn.running_mean * scale
                result.append((w.numpy().copy(), b.numpy().copy()))
            elif layer.op == "dense":
                result.append((op.weight.numpy().copy(), op.bias.numpy().copy()))
            else:
                result.append(None)
    return result
