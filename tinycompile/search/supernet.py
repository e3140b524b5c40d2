"""A weight-sharing supernet over a search space (once-for-all, BigNAS): one set of weights from which every candidate
of the space takes its own, so that a candidate is scored without being trained.

Every layer with weights has a name in the space (``stem``, ``block2.conv``, ``stage1.block0.dw``, ``head.hidden``,
``classifier``: :meth:`SearchSpace.build_with_slots`), and the supernet holds one tensor per name, as large as any
candidate needs it. A candidate uses

- elastic depth: its blocks are the first ``count`` (cnn, mlp) or the first ``depth`` of each stage (mbconv), so block
  ``i`` always takes the weights of name ``block{i}``;
- elastic width: the first output and input channels (the width multiplier, the channel choices, the units of dense
  layers, MBConv's expansion: the first ``in * e`` channels of the expand conv);
- elastic kernel: the centre of the largest kernel, passed through a small learned transform per kernel size (a
  ``k*k x k*k`` matrix shared by all channels, once-for-all's kernel transformation; identity at first), from the
  largest size down: 7 -> 5 -> 3;
- parameter-free choices (strides, pools, residual adds, the input resolution) as they are.

A dense layer is named together with what it reads (``classifier@gap``, ``classifier@dense``, ``head.hidden@flatten``):
a classifier over pooled features and one over a hidden layer share nothing. After a flatten, the dense weights are
held per position of the largest map (the network's input) and a smaller map takes the positions at the centres of
its cells, so that every stride and pool shares one tensor.

Batch norm: each conv's statistics are the first channels of its name's; a candidate's statistics are recomputed on a
few training batches after extraction (:func:`recalibrate_bn`), as the shared running averages fit no one network.

:meth:`Supernet.extract` copies a candidate's weights into a standalone :class:`~tinycompile.model.SpecNet`, whose
forward equals :meth:`Supernet.forward` with that candidate; quantizing and building it work as for a trained trial.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinycompile.arch import ArchSpec, Layer, Shape
from tinycompile.model import SpecNet
from tinycompile.search.space import SUPERNET_FAMILIES, SearchSpace

BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # torch's defaults, as SpecNet's batch norm has them
# The largest and smallest candidates (the sandwich rule's two ends): per key name, values from largest to smallest
# where "larger" is not "more" (a stride of 1 keeps more of the map; a flatten keeps every position).
LARGE_FIRST: dict[str, tuple[Any, ...]] = {
    "type": ("conv", "dwsep"),
    "pool": ("none", "avg", "max"),
    "reduce": ("flatten", "gap"),
    "residual": (True, False),
}
SMALLER_IS_LARGER = {"stride"}


@dataclass
class Subnet:
    """One candidate of the space: its choices, its spec and the name of every layer's weights (None: no weights)."""

    choices: dict[str, Any]
    spec: ArchSpec
    slots: tuple[str | None, ...]
    _shapes: list[Shape] = field(default_factory=list, repr=False)

    @property
    def shapes(self) -> list[Shape]:
        """The spec's output shapes, computed once."""
        if not self._shapes:
            self._shapes = self.spec.shapes()
        return self._shapes

    def key(self, i: int) -> str:
        """The supernet's name for layer ``i``'s weights: a dense layer's name with what it reads."""
        slot = self.slots[i]
        layer = self.spec.layers[i]
        if slot is None:
            raise ValueError(f"layer {i} ({layer.op}) has no name in the space, so no shared weights")
        if layer.op != "dense":
            return slot
        src = layer.inputs[0]
        return f"{slot}@{'input' if src < 0 else self.spec.layers[src].op}"

    def need(self, i: int) -> tuple[int, int, int, int]:
        """The weight shape layer ``i`` takes: (out, in, kh, kw) for convs, (out, C, H, W) for dense layers (the
        flattened map's C, H, W after a flatten, else (in, 1, 1))."""
        layer = self.spec.layers[i]
        src = layer.inputs[0]
        c_in = self.spec.input_shape[0] if src < 0 else self.shapes[src][0]
        if layer.op == "conv":
            return (layer.channels, c_in, *layer.kernel)
        if layer.op == "dwconv":
            return (c_in, 1, *layer.kernel)
        if src >= 0 and self.spec.layers[src].op == "flatten":
            fsrc = self.spec.layers[src].inputs[0]
            return (layer.channels, *(self.spec.input_shape if fsrc < 0 else self.shapes[fsrc]))
        return (layer.channels, c_in, 1, 1)


def is_numeric(values: list[Any]) -> bool:
    """Whether a key's values are numbers (not booleans)."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def extreme_choices(space: SearchSpace, largest: bool) -> dict[str, Any]:
    """The space's largest candidate (every dimension at its most: channels, depth, kernels, expansion, width,
    resolution, hidden units; stride 1, no pool, full convs, flatten) or its smallest."""
    choices: dict[str, Any] = {}
    for key, values in space.parameters().items():
        name = key.rsplit(".", 1)[-1]
        if name in LARGE_FIRST:
            ranked = [v for v in LARGE_FIRST[name] if v in values] + [v for v in values if v not in LARGE_FIRST[name]]
        elif is_numeric(values):
            ranked = sorted(values, reverse=name not in SMALLER_IS_LARGER)
        else:
            ranked = list(values)
        choices[key] = ranked[0] if largest else ranked[-1]
    return choices


def _shape_configs(space: SearchSpace) -> list[dict[str, Any]]:
    """Candidates that between them need every weight name at its largest: numbers at their maximum, and every
    combination of the structural choices (each categorical key name, set alike in every block; hidden layers of 0
    units or the most), since a name can exist only under one of them (``block1.dw``: a depthwise block;
    ``classifier@gap``: no hidden layer)."""
    params = space.parameters()
    base = {key: max(values) if is_numeric(values) else values[0] for key, values in params.items()}
    options: dict[str, list[Any]] = {}
    for key, values in params.items():
        name = key.rsplit(".", 1)[-1]
        if not is_numeric(values):
            options.setdefault(name, [])
            options[name] += [v for v in values if v not in options[name]]
        elif min(values) == 0:
            options.setdefault(name, [0, "max"])
    configs = []
    names = sorted(options)
    for combo in itertools.product(*(options[n] for n in names)):
        choices = dict(base)
        for name, value in zip(names, combo):
            for key, values in params.items():
                if key.rsplit(".", 1)[-1] == name:
                    choices[key] = max(values) if value == "max" else value if value in values else values[0]
        configs.append(choices)
    return configs


class _Slot(nn.Module):
    """The shared weights of one name: a conv's (with its batch norm) or a dense layer's (with its bias)."""

    def __init__(self, op: str, shape: tuple[int, int, int, int], kernel_sizes: list[int]) -> None:
        super().__init__()
        self.op = op
        self.weight = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # torch's own default for Conv2d and Linear
        out = shape[0]
        if op == "dense":
            bound = 1 / math.sqrt(shape[1] * shape[2] * shape[3])
            self.bias = nn.Parameter(torch.empty(out).uniform_(-bound, bound))
        else:
            self.bn_weight = nn.Parameter(torch.ones(out))
            self.bn_bias = nn.Parameter(torch.zeros(out))
            self.register_buffer("running_mean", torch.zeros(out))
            self.register_buffer("running_var", torch.ones(out))
        kh, kw = shape[2], shape[3]
        # kernel transforms: 1-D kernels (1 x k) and square 2-D ones, for every smaller size the space offers
        self.square = op != "dense" and kh == kw and kh > 1
        largest = kw if op != "dense" and (kh == 1 or self.square) else 1
        self.chain = sorted((k for k in kernel_sizes if k < largest), reverse=True)
        self.transforms = nn.ParameterDict(
            {str(k): nn.Parameter(torch.eye(k * k if self.square else k)) for k in self.chain})

    def _crop(self, w: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
        top, left = (w.shape[2] - kh) // 2, (w.shape[3] - kw) // 2
        return w[:, :, top:top + kh, left:left + kw]

    def conv_weight(self, out: int, c_in: int, kh: int, kw: int) -> torch.Tensor:
        """The first ``out`` x ``c_in`` filters, their kernels cut to ``kh x kw`` (centre, transformed)."""
        w = self.weight[:out, :c_in]
        target = kw
        for k in self.chain:  # from the largest size down to the one asked for
            if k < target:
                break
            w = self._crop(w, k if self.square else 1, k)
            t = self.transforms[str(k)]
            w = (w.reshape(-1, t.shape[0]) @ t.t()).reshape(w.shape)
        return w if tuple(w.shape[2:]) == (kh, kw) else self._crop(w, kh, kw)

    def dense_weight(self, out: int, c: int, h: int, w: int) -> torch.Tensor:
        """The ``(out, c * h * w)`` matrix of a dense layer over a flattened ``c x h x w`` map (h = w = 1: flat)."""
        weight = self.weight[:out, :c]
        full_h, full_w = weight.shape[2:]
        if (h, w) != (full_h, full_w):  # the positions at the centres of the smaller map's cells
            weight = weight[:, :, _centres(h, full_h)][:, :, :, _centres(w, full_w)]
        return weight.reshape(out, c * h * w)

    def bn(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        c = x.shape[1]
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.bn_weight[:c], self.bn_bias[:c],
                            training=training, momentum=BN_MOMENTUM, eps=BN_EPS)


def _centres(size: int, full: int) -> list[int]:
    """For a map of ``size`` cells over ``full`` positions, the position at each cell's centre."""
    return [int((j + 0.5) * full / size) for j in range(size)]


def _module_name(key: str) -> str:
    return key.replace(".", "_")  # a module's name cannot hold dots; the space's names hold no "_"


class Supernet(nn.Module):
    """The shared weights of every candidate of ``space`` on inputs of ``input_shape`` (the task's, before any
    resizing to a chosen resolution) into ``num_classes`` classes."""

    def __init__(self, space: SearchSpace, input_shape: Shape, num_classes: int) -> None:
        super().__init__()
        if space.family not in SUPERNET_FAMILIES:
            raise ValueError(f"family {space.family!r} has no supernet")
        self.space, self.input_shape, self.num_classes = space, input_shape, num_classes
        shapes: dict[str, tuple[int, ...]] = {}
        ops: dict[str, str] = {}
        flat: set[str] = set()
        largest_map = (1, 1)
        for choices in _shape_configs(space):
            sub = self.subnet(choices)
            largest_map = max(largest_map[0], sub.spec.input_shape[1]), max(largest_map[1], sub.spec.input_shape[2])
            for i, layer in enumerate(sub.spec.layers):
                if sub.slots[i] is None:
                    continue
                key = sub.key(i)
                if ops.setdefault(key, layer.op) != layer.op:
                    raise ValueError(f"weights {key!r} are a {ops[key]} in one candidate and a {layer.op} in another")
                shapes[key] = tuple(max(a, b) for a, b in zip(shapes.get(key, (0, 0, 0, 0)), sub.need(i)))
                if key.endswith("@flatten"):
                    flat.add(key)
        for key in flat:  # held per position of the largest map any flatten can see: the network's input
            out, c, _, _ = shapes[key]
            shapes[key] = (out, c, *largest_map)
        kernels = sorted({v for key, values in space.parameters().items() if key.endswith("kernel") for v in values})
        self.shapes = {key: shapes[key] for key in sorted(shapes)}
        self.slots = nn.ModuleDict({_module_name(k): _Slot(ops[k], s, kernels) for k, s in self.shapes.items()})  # type: ignore[arg-type]

    def subnet(self, choices: dict[str, Any]) -> Subnet:
        """The candidate of ``choices``."""
        spec, slots = self.space.build_with_slots(choices, self.input_shape, self.num_classes)
        return Subnet(choices, spec, slots)

    def largest(self) -> Subnet:
        """The space's largest candidate."""
        return self.subnet(extreme_choices(self.space, largest=True))

    def smallest(self) -> Subnet:
        """The space's smallest candidate."""
        return self.subnet(extreme_choices(self.space, largest=False))

    def random_subnet(self, rng: random.Random) -> Subnet:
        """A uniformly random candidate."""
        return self.subnet(self.space.random_choices(rng))

    def _slot(self, sub: Subnet, i: int) -> tuple[_Slot, tuple[int, int, int, int]]:
        key = sub.key(i)
        need = sub.need(i)
        slot = self.slots[_module_name(key)] if _module_name(key) in self.slots else None
        held = self.shapes.get(key)
        if slot is None or held is None or any(n > h for n, h in zip(need, held)):
            raise ValueError(f"layer {i} needs weights {key!r} shaped {list(need)}, but the supernet holds "
                             f"{list(held) if held else 'none'}; the supernet was made for another space")
        return slot, need  # type: ignore[return-value]

    def forward(self, x: torch.Tensor, sub: Subnet) -> torch.Tensor:  # type: ignore[override]
        """The logits of candidate ``sub`` on ``x`` (N, C, H, W) at its input shape, computed with the shared weights."""
        outs: list[torch.Tensor] = []
        for i, layer in enumerate(sub.spec.layers):
            args = [x if j == -1 else outs[j] for j in layer.inputs]
            y = self._layer(sub, i, layer, args)
            outs.append(torch.relu(y) if layer.relu else y)
        return outs[-1].flatten(1)

    def _layer(self, sub: Subnet, i: int, layer: Layer, args: list[torch.Tensor]) -> torch.Tensor:
        x = args[0]
        if layer.op in ("conv", "dwconv"):
            slot, need = self._slot(sub, i)
            pt, pb, pl, pr = layer.padding
            w = slot.conv_weight(*need)
            y = F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, None, layer.stride, groups=1 if layer.op == "conv" else x.shape[1])
            return slot.bn(y, self.training)
        if layer.op == "dense":
            slot, need = self._slot(sub, i)
            return F.linear(x.flatten(1), slot.dense_weight(*need), slot.bias[: need[0]])[:, :, None, None]
        if layer.op == "maxpool":
            return F.max_pool2d(x, layer.kernel, layer.stride)
        if layer.op == "avgpool":
            return F.avg_pool2d(x, layer.kernel, layer.stride)
        if layer.op in ("gap", "mean"):
            return F.adaptive_avg_pool2d(x, 1)
        if layer.op == "flatten":
            return x.flatten(1)[:, :, None, None]
        if layer.op == "add":
            return args[0] + args[1]
        raise ValueError(f"layer {i}: op {layer.op!r} is not one a search space makes")

    def extract(self, sub: Subnet) -> SpecNet:
        """A standalone SpecNet of candidate ``sub`` holding copies of its shared weights and batch-norm statistics,
        in eval mode on the CPU; its forward equals ``self.forward(x, sub)`` in the same mode."""
        model = SpecNet(sub.spec)
        with torch.no_grad():
            for i, (layer, op) in enumerate(zip(sub.spec.layers, model.ops)):
                if layer.op in ("conv", "dwconv"):
                    slot, need = self._slot(sub, i)
                    c = need[0]
                    conv, bn = op[1], op[2]
                    conv.weight.copy_(slot.conv_weight(*need))
                    bn.weight.copy_(slot.bn_weight[:c])
                    bn.bias.copy_(slot.bn_bias[:c])
                    bn.running_mean.copy_(slot.running_mean[:c])
                    bn.running_var.copy_(slot.running_var[:c])
                elif layer.op == "dense":
                    slot, need = self._slot(sub, i)
                    op.weight.copy_(slot.dense_weight(*need))
                    op.bias.copy_(slot.bias[: need[0]])
        return model.eval()


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` has batch norm (a SpecNet has it after every conv and depthwise conv; an MLP has none)."""
    return any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def recalibrate_bn(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> bool:
    """Recompute every batch norm's statistics of ``model`` as the plain average over ``x`` (a few training batches);
    False (nothing done) for a model without batch norm. Leaves the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        model.eval()
        return False
    device = next(model.parameters()).device
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            model(torch.from_numpy(x[start:start + batch_size]).to(device))
    for bn in bns:
        bn.momentum = BN_MOMENTUM
    model.eval()
    return True
