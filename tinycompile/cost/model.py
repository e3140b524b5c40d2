"""The cost model: per-layer and total cycles, latency, energy, peak SRAM and flash of a spec on a target.

Pure Python over the ArchSpec (no torch), fast enough to score thousands of candidates a second. Per-layer cycles
and constant bytes come from the back end of the target's kind (:meth:`tinycompile.backends.Backend.layer_cycles`,
:meth:`~tinycompile.backends.Backend.constant_bytes`); the arena, latency, energy and totals are computed here once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from tinycompile.arch import ArchSpec, Shape, numel
from tinycompile.backends.registry import get_backend
from tinycompile.cost.arena import VIEW_OPS
from tinycompile.cost.memory import MemoryPlan, baseline, choose

PLANNED_KINDS = ("mcu", "soc")  # kinds whose runner is the MCU back end's AOT runner (cost.memory's plan)


def arena_plan(spec: ArchSpec, target: Target) -> MemoryPlan:
    """The arena a build for ``target`` lays out: the memory planner's choice where the MCU runner runs, else the
    per-layer plan (the accelerator keeps its own tensors)."""
    return choose(spec) if target.kind in PLANNED_KINDS else baseline(spec)
from tinycompile.targets import Target


@dataclass(frozen=True)
class LayerCost:
    """One layer's predicted cost."""

    op: str
    macs: int
    cycles: int
    weight_bytes: int
    output_bytes: int


@dataclass(frozen=True)
class Cost:
    """A network's predicted cost on one target."""

    layers: tuple[LayerCost, ...]
    cycles: int
    latency_ms: float
    energy_uj: float
    arena_bytes: int
    peak_sram: int
    flash: int
    params: int
    macs: int

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def weight_bytes(spec: ArchSpec, target: Target, memory: MemoryPlan | None = None) -> list[int]:
    """Bytes of each layer's constants (weights, requantization tables) as the target's back end stores them: a
    patch stage's layers as their patch kernels read them (a layout may depend on the map's size). ``memory``: the
    build's ``arena_plan``, computed when not given."""
    backend = get_backend(target.kind)
    shapes = spec.shapes()
    patch = (memory or arena_plan(spec, target)).patch
    out = []
    for i, layer in enumerate(spec.layers):
        if patch is not None and i <= patch.end:
            out.append(backend.constant_bytes(patch.patch_layer(spec, i), patch.in_shape(spec, i, shapes),
                                              patch.out_shape(spec, i, shapes), target))
        else:
            out.append(backend.constant_bytes(layer, spec.input_shapes(i, shapes)[0], shapes[i], target))
    return out


def _stored_shape(spec: ArchSpec, index: int, shapes: list[Shape]) -> Shape:
    """Shape of the buffer holding tensor ``index``: a flatten is a view, its bytes keep its source's layout."""
    while index >= 0 and spec.layers[index].op in VIEW_OPS:
        index = spec.layers[index].inputs[0]
    return spec.input_shape if index == -1 else shapes[index]


def estimate(spec: ArchSpec, target: Target) -> Cost:
    """Predict the cost of running ``spec`` on ``target``."""
    layer_cycles = get_backend(target.kind).layer_cycles
    shapes = spec.shapes()
    macs = spec.macs()
    memory = arena_plan(spec, target)  # in-place layers, a patch stage where it pays
    weights = weight_bytes(spec, target, memory)
    patch = memory.patch
    layers = []
    for i, layer in enumerate(spec.layers):
        if patch is not None and i <= patch.end:  # its patch kernel, once per patch
            in_p, out_p = patch.in_shape(spec, i, shapes), patch.out_shape(spec, i, shapes)
            layer_macs = numel(out_p) * layer.kernel[0] * layer.kernel[1] * (in_p[0] if layer.op == "conv" else 1)
            cycles = patch.count * layer_cycles(patch.patch_layer(spec, i), in_p, out_p, layer_macs, target)
        else:
            in_shape = _stored_shape(spec, layer.inputs[0], shapes)
            cycles = layer_cycles(layer, in_shape, shapes[i], macs[i], target)
        layers.append(LayerCost(layer.op, macs[i], int(round(cycles)), weights[i], numel(shapes[i])))
    total_cycles = sum(lc.cycles for lc in layers)
    latency_ms = total_cycles / (target.clock_mhz * 1e3)
    arena = memory.size
    compute_layers = sum(1 for layer in spec.layers if layer.op not in VIEW_OPS)
    code = target.runtime["code_bytes"] + target.runtime["code_bytes_per_layer"] * compute_layers
    return Cost(
        layers=tuple(layers),
        cycles=total_cycles,
        latency_ms=latency_ms,
        energy_uj=latency_ms * target.energy["active_mw"],  # mW x ms = uJ
        arena_bytes=arena,
        peak_sram=arena + target.runtime["sram_bytes"],
        flash=sum(weights) + code,
        params=spec.params(),
        macs=sum(macs),
    )


def estimate_instructions(spec: ArchSpec, target: Target) -> Cost:
    """The same model with the target's ``instructions:`` coefficients (fitted to instruction counts, what an MCU
    build measures on QEMU): its ``cycles`` are instructions. The ``cycles:`` coefficients where the file has none."""
    return estimate(spec, replace(target, cycles=target.instructions) if target.instructions else target)
