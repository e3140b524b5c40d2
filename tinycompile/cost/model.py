"""The cost model: per-layer and total cycles, latency, energy, peak SRAM and flash of a spec on a target.

Pure Python over the ArchSpec (no torch), fast enough to score thousands of candidates a second. The per-layer
cycle formula is looked up by the target's kind, so a back end with its own schedule (the accelerator) plugs in
by registering a function in ``LAYER_CYCLES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from tinycompile.arch import WEIGHTED_OPS, ArchSpec, Layer, Shape, numel
from tinycompile.cost.arena import VIEW_OPS, plan_activations
from tinycompile.mcu.layout import constant_bytes, uses_dsp
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


LayerCycles = Callable[[Layer, Shape, Shape, int, Target], float]


def mcu_layer_cycles(layer: Layer, in_shape: Shape, out_shape: Shape, macs: int, target: Target) -> float:
    """Cycles of one layer on an MCU: a per-MAC (or per-element) rate, requantization per output, a fixed overhead."""
    c = target.cycles
    if layer.op in VIEW_OPS:
        return 0.0
    if layer.op in WEIGHTED_OPS:
        work = macs * c[layer.op] + numel(out_shape) * c["per_output"]
    elif layer.op in ("maxpool", "avgpool"):
        work = macs * c["pool"]
    elif layer.op in ("gap", "mean"):
        work = numel(in_shape) * c["gap"]
    else:  # add, and the element-wise ops of imported models (softmax, lut, pad, concat) at the same rate
        work = numel(out_shape) * c["add"]
    return work + c["layer_overhead"]


def fpga_layer_cycles(layer: Layer, in_shape: Shape, out_shape: Shape, macs: int, target: Target) -> float:
    """Cycles of one layer on the accelerator: the FPGA back end's schedule replayed through its timing model."""
    from tinycompile.fpga.schedule import fpga_layer_cycles as scheduled  # the back end owns its schedule

    return scheduled(layer, in_shape, out_shape, macs, target)


LAYER_CYCLES: dict[str, LayerCycles] = {"mcu": mcu_layer_cycles, "fpga": fpga_layer_cycles}


def weight_bytes(spec: ArchSpec, target: Target | None = None) -> list[int]:
    """Flash bytes of each layer's constants as the MCU back end stores them: weights (packed as int16 where an Arm
    core's DSP schedules read them so) and per-channel int32 requantization tables (the larger of their two forms)."""
    dsp = target is not None and uses_dsp(target.build.get("llvm_target"))
    shapes = spec.shapes()
    result = []
    for i, layer in enumerate(spec.layers):
        if layer.op not in WEIGHTED_OPS:
            result.append(0)
            continue
        cin = spec.input_shapes(i, shapes)[0][0] if layer.op != "dense" else numel(spec.input_shapes(i, shapes)[0])
        result.append(constant_bytes(layer.op, cin, shapes[i][0], tuple(layer.kernel), dsp))  # type: ignore[arg-type]
    return result


def _stored_shape(spec: ArchSpec, index: int, shapes: list[Shape]) -> Shape:
    """Shape of the buffer holding tensor ``index``: a flatten is a view, its bytes keep its source's layout."""
    while index >= 0 and spec.layers[index].op in VIEW_OPS:
        index = spec.layers[index].inputs[0]
    return spec.input_shape if index == -1 else shapes[index]


def estimate(spec: ArchSpec, target: Target) -> Cost:
    """Predict the cost of running ``spec`` on ``target``."""
    layer_cycles = LAYER_CYCLES[target.kind]
    shapes = spec.shapes()
    macs = spec.macs()
    weights = weight_bytes(spec, target)
    layers = []
    for i, layer in enumerate(spec.layers):
        in_shape = _stored_shape(spec, layer.inputs[0], shapes)
        cycles = layer_cycles(layer, in_shape, shapes[i], macs[i], target)
        layers.append(LayerCost(layer.op, macs[i], int(round(cycles)), weights[i], numel(shapes[i])))
    total_cycles = sum(lc.cycles for lc in layers)
    latency_ms = total_cycles / (target.clock_mhz * 1e3)
    arena = plan_activations(spec).size
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
