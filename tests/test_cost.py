"""The cost model: its totals follow from its per-layer figures and the target's parameters."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from tinycompile.arch import ArchSpec, Layer
from tinycompile.cost.arena import plan_activations
from tinycompile.cost.memory import choose
from tinycompile.cost.model import estimate, estimate_instructions
from tinycompile.errors import UserError
from tinycompile.targets import available_targets, load_target


def conv_net(channels: int) -> ArchSpec:
    return ArchSpec(
        (1, 1, 32),
        4,
        (
            Layer("conv", (-1,), channels=channels, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
            Layer("maxpool", (0,), kernel=(1, 2), stride=(1, 2)),
            Layer("gap", (1,)),
            Layer("dense", (2,), channels=4),
        ),
    )


@pytest.mark.parametrize("name", available_targets())
def test_totals_are_consistent(name: str) -> None:
    target = load_target(name)
    spec = conv_net(16)
    cost = estimate(spec, target)
    assert cost.cycles == sum(layer.cycles for layer in cost.layers)
    assert cost.latency_ms == pytest.approx(cost.cycles / (target.clock_mhz * 1e3))
    assert cost.energy_uj == pytest.approx(cost.latency_ms * target.energy["active_mw"])
    # the MCU runners' arena is the memory planner's (in-place layers, patches), the accelerator's the per-layer one
    assert cost.arena_bytes == (plan_activations(spec).size if target.kind == "fpga" else choose(spec).size)
    assert cost.peak_sram == cost.arena_bytes + target.runtime["sram_bytes"]
    if target.kind == "fpga" or (target.kind == "soc" and "accelerator" in target.raw["soc"]):
        # constants as the accelerator reads them (the SoC's accelerator runs both layers): channels padded to the array's N (8): the conv as 1 x 3 taps of
        # 8 x 16, the dense 16 x 8; one 12-byte parameter row per padded output channel; plus the program
        weights = (3 * 8 * 16 + 16 * 12) + (16 * 8 + 8 * 12)
    else:
        # constants as the MCU back end stores them: on Arm DSP cores the conv's 3 taps of one input channel are
        # packed as 4 int16; 16 bytes of requantization tables per output channel (the larger form); plus code
        dsp = name in ("cortex-m4", "cortex-m7", "cortex-m55")
        weights = (2 * 16 * 4 if dsp else 16 * 3) + 16 * 16 + (16 * 4 + 4 * 16)
    assert cost.flash == weights + target.runtime["code_bytes"] + 4 * target.runtime["code_bytes_per_layer"]
    assert cost.macs == sum(spec.macs()) and cost.params == spec.params()


@pytest.mark.parametrize("name", available_targets())
def test_bigger_networks_cost_more(name: str) -> None:
    target = load_target(name)
    small, big = estimate(conv_net(8), target), estimate(conv_net(64), target)
    assert big.cycles > small.cycles and big.flash > small.flash and big.peak_sram > small.peak_sram


def test_a_faster_clock_lowers_latency_not_cycles() -> None:
    target = load_target("cortex-m4")
    fast = dataclasses.replace(target, clock_mhz=2 * target.clock_mhz)
    a, b = estimate(conv_net(16), target), estimate(conv_net(16), fast)
    assert a.cycles == b.cycles and b.latency_ms == pytest.approx(a.latency_ms / 2)


def _mcu_file(tmp_path, edit) -> str:
    """cortex-m4's YAML with ``edit`` applied to its mapping, written to ``tmp_path``."""
    raw = yaml.safe_load(load_target("cortex-m4").path.read_text())
    edit(raw)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_instructions_have_their_own_coefficients(tmp_path) -> None:
    """An MCU target's ``instructions:`` drive the instruction prediction (the same formula), ``cycles:`` the
    latency; a file without ``instructions:`` predicts instructions with ``cycles:``."""

    def doubled(raw: dict) -> None:
        raw["instructions"] = {k: 2 * v for k, v in raw["cycles"].items()}

    spec = conv_net(16)
    target = load_target(_mcu_file(tmp_path, doubled))
    cycles, instructions = estimate(spec, target), estimate_instructions(spec, target)
    for c, i in zip(cycles.layers, instructions.layers):
        assert abs(i.cycles - 2 * c.cycles) <= 1, (c, i)  # each layer rounded once
    assert cycles.cycles > 0 and estimate(spec, dataclasses.replace(target, instructions={})).cycles == cycles.cycles
    assert estimate_instructions(spec, dataclasses.replace(target, instructions={})).cycles == cycles.cycles


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw.update(instructions={**raw["cycles"], "conv": "fast"}), "key 'instructions.conv' must be a number"),
    (lambda raw: raw.update(instructions={k: v for k, v in raw["cycles"].items() if k != "dense"}),
     "missing key 'instructions.dense'"),
    (lambda raw: raw.update(instructions=[1, 2]), "key 'instructions' must be a mapping"),
])
def test_a_bad_instructions_section_is_one_line(tmp_path, edit, message) -> None:
    with pytest.raises(UserError) as info:
        load_target(_mcu_file(tmp_path, edit))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_each_conv_is_priced_by_the_loop_it_runs() -> None:
    """On a SIMD core a conv that no dot product takes has its own rate, and so do Helium's kernels on the M55;
    a core without SIMD has one rate."""
    from tinycompile.backends.mcu import McuBackend, cost_keys
    from tinycompile.mcu.layout import kernel_path

    assert kernel_path("conv", 2, 8, (5, 5), "dsp") == "portable"  # 2 -> 4 channels would double the MACs
    same = (1, 1, 1, 1)
    assert kernel_path("conv", 8, 8, (3, 3), "dsp", (1, 1), same) == kernel_path("conv", 1, 8, (10, 4), "dsp") == "dsp"
    assert kernel_path("conv", 64, 8, (1, 1), "mve") == kernel_path("dwconv", 32, 32, (3, 3), "mve") == "mve"
    assert kernel_path("conv", 44, 8, (3, 3), "mve") == kernel_path("dwconv", 40, 40, (3, 3), "mve") == "dsp"
    assert kernel_path("conv", 2, 8, (5, 5), None) == kernel_path("dense", 64, 10, (1, 1), "dsp") == "scalar"
    # the pixel-pair GEMM (tinycompile/mcu/microkernels.py): a packed dot axis of 2 to 64 groups of four taps, output
    # channels in fours, the input as it is (unpadded, channels in fours) or copied within PAIR_INPUT_MAX bytes
    assert kernel_path("conv", 40, 8, (1, 1), "dsp") == kernel_path("conv", 40, 8, (1, 1), "mve") == "pairs"
    assert kernel_path("conv", 8, 8, (3, 3), "dsp", (2, 2)) == kernel_path("conv", 24, 8, (3, 3), "mve") == "pairs"
    assert kernel_path("conv", 1, 8, (10, 4), "dsp", (2, 2), (4, 5, 1, 2), (25, 5)) == "pairs"  # DS-CNN's first
    assert kernel_path("conv", 3, 8, (3, 3), "dsp", (1, 1), same, (48, 48)) == "dsp"  # a copy of 50 x 50 x 4 B
    assert kernel_path("conv", 40, 6, (1, 1), "dsp") == kernel_path("conv", 4, 8, (1, 1), "dsp") == "dsp"
    stem = Layer("conv", (-1,), channels=8, kernel=(5, 5), padding=(2, 2, 2, 2))
    pointwise = Layer("conv", (-1,), channels=8, kernel=(1, 1))
    cases = [("cortex-m4", stem, 2, "conv_portable"), ("rv32imc", stem, 2, "conv"),
             ("cortex-m4", pointwise, 64, "conv_pairs"), ("cortex-m4", pointwise, 4, "conv"),
             ("cortex-m55", pointwise, 64, "conv_mve"), ("cortex-m55", pointwise, 40, "conv_pairs")]
    for name, layer, cin, key in cases:
        target = load_target(name)
        unit = dataclasses.replace(target, cycles={k: float(k == key) for k in cost_keys(target)})
        macs = 8 * 8 * 8 * cin * layer.kernel[0] * layer.kernel[1]
        assert McuBackend().layer_cycles(layer, (cin, 8, 8), (8, 8, 8), macs, unit) == macs, (name, key)
    assert cost_keys(load_target("rv32imc")) == ("conv", "dwconv", "dense", "pool", "gap", "add", "lut", "mul",
                                                 "per_output", "layer_overhead")


def test_lookups_and_products_have_their_own_rates() -> None:
    """A table lookup (imported activations, sigmoid, tanh) and a product are priced per output element by their own
    coefficients, not the residual add's two requantizations."""
    from tinycompile.backends.mcu import McuBackend, cost_keys

    target = load_target("cortex-m4")
    for op, key in (("lut", "lut"), ("sigmoid", "lut"), ("unary", "lut"), ("mul", "mul"), ("add", "add")):
        unit = dataclasses.replace(target, cycles={k: float(k == key) for k in cost_keys(target)})
        inputs = (-1, -1) if op in ("add", "mul") else (-1,)
        assert McuBackend().layer_cycles(Layer(op, inputs), (8, 4, 4), (8, 4, 4), 0, unit) == 128, op
    assert target.cycles["lut"] < target.cycles["mul"] < target.cycles["add"]
