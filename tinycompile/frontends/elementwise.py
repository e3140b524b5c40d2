"""Elementwise regions of an imported float model: chains of elementwise ops on one tensor, as one function.

TVM's frontends spell many activations as small graphs of elementwise ops on one tensor ``x``: hard swish is
``x * clip(x + 3, 0, 6) / 6``, SiLU ``x * sigmoid(x)``, mish ``x * tanh(softplus(x))``, ELU a sum of ReLUs and an
exp. Whatever the chain, its output is a function of ``x`` alone, element by element, so in int8 it is exactly a
256-entry lookup table of its input: :func:`find_regions` finds each such region (all of its ops elementwise, every
non-constant operand derived from the same ``x``, constants scalar, one value read outside), and
:class:`Region` evaluates it on torch tensors (the SpecNet's forward and the quantizer's table).

Chains of scalar affine ops and ReLU-like clips alone are left to the walker, which folds them into the layer
before; so is a lone sigmoid or tanh, which imports as TFLite's own op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

F = nn.functional
# Relax op -> its torch equivalent (attrs read by ``_unary_with_attrs``); every one maps x to y element by element.
_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relax.sigmoid": torch.sigmoid, "relax.tanh": torch.tanh, "relax.exp": torch.exp, "relax.log": torch.log,
    "relax.sqrt": torch.sqrt, "relax.rsqrt": torch.rsqrt, "relax.erf": torch.erf, "relax.negative": torch.negative,
    "relax.abs": torch.abs, "relax.nn.relu": torch.relu, "relax.nn.relu6": F.relu6, "relax.nn.silu": F.silu,
    "relax.nn.gelu": F.gelu, "relax.nn.gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relax.square": torch.square,
}
_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "relax.add": torch.add, "relax.subtract": torch.subtract, "relax.multiply": torch.multiply,
    "relax.divide": torch.divide, "relax.maximum": torch.maximum, "relax.minimum": torch.minimum,
    "relax.power": torch.pow, "relax.greater": torch.gt, "relax.greater_equal": torch.ge, "relax.less": torch.lt,
    "relax.less_equal": torch.le, "relax.equal": torch.eq,
}
_OTHER = ("relax.clip", "relax.nn.leakyrelu", "relax.nn.prelu", "relax.nn.softplus", "relax.where", "relax.astype")
# Ops a chain may hold and still be a layer's own affine + clip (folded by the walker, no table needed).
_FOLDABLE = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.nn.relu", "relax.nn.relu6",
             "relax.clip", "relax.astype")
_OWN_OPS = ("relax.sigmoid", "relax.tanh")  # alone, each imports as the op of its own name


@dataclass(frozen=True)
class _Later:
    """A constant an earlier binding computes: its value is known only once the walker has folded it."""

    var: Any


@dataclass
class Region:
    """A chain of elementwise bindings computing ``output`` from ``root`` alone."""

    root: Any  # the Relax var of the tensor it reads
    output: Any  # the Relax var read outside the region
    steps: list[tuple[Any, str, list[Any], Any]]  # (var, op name, operands: vars or constant arrays, attrs)

    def resolve(self, const: Callable[[Any], np.ndarray | None]) -> str | None:
        """Give the constants computed by earlier bindings their values (known once the walker has folded them);
        the reason it cannot be one function when one is not a scalar."""
        for k, (var, name, args, attrs) in enumerate(self.steps):
            values = [a if not isinstance(a, _Later) else const(a.var) for a in args]
            if any(v is None or np.asarray(v).size != 1 for v in values):
                return f"{name} reads a constant that is not a scalar"
            self.steps[k] = (var, name, [v if not isinstance(a, _Later) else np.asarray(v, np.float64)
                                         for a, v in zip(args, values)], attrs)
        return None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The region's output for root values ``x`` (any shape, float32)."""
        env: dict[Any, torch.Tensor] = {self.root: x}
        for var, name, args, attrs in self.steps:
            vals = [env[a] if not isinstance(a, np.ndarray) else torch.tensor(a.reshape(()), dtype=x.dtype) for a in args]
            env[var] = _apply(name, vals, attrs)
        return env[self.output].to(x.dtype)

    def label(self) -> str:
        """The ops it chains, for messages."""
        return " -> ".join(dict.fromkeys(name.split(".")[-1] for _, name, _, _ in self.steps))


def _apply(name: str, vals: list[torch.Tensor], attrs: Any) -> torch.Tensor:
    if name in _UNARY:
        return _UNARY[name](vals[0])
    if name in _BINARY:
        return _BINARY[name](vals[0], vals[1])
    if name == "relax.clip":
        return torch.clamp(vals[0], float(vals[1]), float(vals[2]))
    if name == "relax.nn.leakyrelu":
        return F.leaky_relu(vals[0], float(attrs.alpha))
    if name == "relax.nn.prelu":  # one slope for every channel (a per-channel one is not a function of x alone)
        return torch.where(vals[0] >= 0, vals[0], vals[0] * vals[1])
    if name == "relax.nn.softplus":
        return F.softplus(vals[0], float(attrs.beta), float(attrs.threshold))
    if name == "relax.where":
        return torch.where(vals[0].bool(), vals[1], vals[2])
    return vals[0]  # astype to float32 (checked by find_regions)


def find_regions(bindings: list, const: Callable[[Any], np.ndarray | None], relax: Any) -> dict[Any, Region]:
    """The elementwise regions among ``bindings`` (``const``: a var's constant value or None), by output var."""
    readers: dict[Any, set[Any]] = {}
    for b in bindings:
        for a in _operands(b.value, relax):
            readers.setdefault(a, set()).add(b.var)
    root_of: dict[Any, Any] = {}  # eligible var -> the one tensor it derives from
    constant: set[Any] = set()  # vars computed from constants alone
    steps: dict[Any, tuple[Any, str, list[Any], Any]] = {}
    shapes: dict[Any, Any] = {}
    for b in bindings:
        if isinstance(b.value, relax.Call) and all(const(a) is not None or a in constant for a in b.value.args
                                                   if not isinstance(a, relax.ShapeExpr)):
            constant.add(b.var)
            continue
        step = _step(b.var, b.value, const, constant, relax)
        if step is None:
            continue
        roots = {root_of.get(a, a) for a in step[2] if not isinstance(a, (np.ndarray, _Later))}
        if len(roots) != 1:
            continue
        root = roots.pop()
        if root not in root_of and readers.get(root) == {b.var} and step[1] in _FOLDABLE and _scalar_operands(step):
            continue  # the only reader of a layer's output, scaling or clipping it: the walker folds it into it
        shape = _shape_of(b.var)
        if shape is None or shape != _shape_of(root) or any(
                not isinstance(a, (np.ndarray, _Later)) and not a.same_as(root) and shapes.get(a) != shape for a in step[2]):
            continue
        root_of[b.var], steps[b.var], shapes[b.var] = root, step, shape
    regions: dict[Any, Region] = {}
    by_root: dict[Any, list[Any]] = {}
    for var, root in root_of.items():
        by_root.setdefault(root, []).append(var)
    for root, members in by_root.items():
        inside = set(members)
        outputs = [v for v in members if not readers.get(v, set()) <= inside or not readers.get(v)]
        names = [steps[v][1] for v in members]
        if len(outputs) != 1 or all(n in _FOLDABLE and _scalar_operands(steps[v]) for v, n in zip(members, names)):
            continue
        if len(members) == 1 and names[0] in _OWN_OPS:
            continue
        regions[outputs[0]] = Region(root, outputs[0], [steps[v] for v in members])
    return regions


def _step(var: Any, value: Any, const: Callable[[Any], np.ndarray | None], constant: set[Any], relax: Any) -> tuple | None:
    """(var, op, operands, attrs) of an elementwise call on at least one activation, with scalar constants only."""
    if not isinstance(value, relax.Call) or not hasattr(value.op, "name"):
        return None
    name = value.op.name
    if name not in _UNARY and name not in _BINARY and name not in _OTHER:
        return None
    if name == "relax.astype" and str(value.attrs.dtype) != "float32":
        return None
    args: list[Any] = []
    for a in value.args:
        c = const(a)
        if c is not None:
            if np.asarray(c).size != 1:
                return None  # a per-channel constant: not one function of the tensor
            args.append(np.asarray(c, np.float64))
        elif a in constant:
            shape = _shape_of(a)
            if shape is None or int(np.prod(shape)) != 1:
                return None  # a per-channel constant (a bias): not one function of the tensor
            args.append(_Later(a))
        elif isinstance(a, relax.Var):
            args.append(a)
        else:
            return None
    return var, name, args, value.attrs


def _scalar_operands(step: tuple) -> bool:
    """Whether a step reads one activation and constants (an affine step or a clip the walker folds)."""
    return sum(not isinstance(a, (np.ndarray, _Later)) for a in step[2]) == 1


def _operands(value: Any, relax: Any) -> list[Any]:
    if isinstance(value, relax.Call):
        return [a for a in value.args if isinstance(a, relax.Var)]
    if isinstance(value, relax.Tuple):
        return [f for f in value.fields if isinstance(f, relax.Var)]
    if isinstance(value, relax.TupleGetItem):
        return [value.tuple_value]
    return [value] if isinstance(value, relax.Var) else []


def _shape_of(var: Any) -> tuple[int, ...] | None:
    shape = getattr(var.ty, "shape", None)
    try:
        return tuple(int(d) for d in shape.values) if shape is not None else None
    except (TypeError, AttributeError):
        return None
