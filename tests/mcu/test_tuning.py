"""Per-core schedule choices (``build.schedule`` of a target YAML): parsing, their effect on the kernels, and the
eight-channel depthwise tile bit-exact on QEMU (cortex-m4's YAML chooses it; a map too large for the row pairs)."""

from __future__ import annotations

import pytest
import tvm_ffi
from mcu_helpers import random_graph

from tinycompile.arch import ArchSpec, Layer
from tinycompile.errors import UserError
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.mcu.lower import lower
from tinycompile.mcu.tuning import DEFAULT, ScheduleChoices, choices_from
from tinycompile.targets import load_target

L = Layer


def _dw_graph(channels: int, seed: int = 0, hw: tuple[int, int] = (20, 19)):
    """A pointwise conv into ``channels``, a padded 3x3 depthwise on them, gap and dense; the default map is too
    large for the depthwise row pairs' plane (``layout.row_pairs``)."""
    spec = ArchSpec((3, *hw), 4, (
        L("conv", (-1,), channels=channels, kernel=(1, 1), relu=True),
        L("dwconv", (0,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        L("gap", (1,)), L("dense", (2,), channels=4)))  # fmt: skip
    return (spec, *random_graph(spec, seed, 8))


def test_choices_parse_and_refuse_with_one_line() -> None:
    assert choices_from(None, "t.yaml") == DEFAULT
    assert choices_from({"dwconv_channels": 8}, "t.yaml") == ScheduleChoices(dwconv_channels=8)
    with pytest.raises(UserError, match=r"t.yaml: build.schedule.dwconv_channels must be one of 4, 8, but got 6"):
        choices_from({"dwconv_channels": 6}, "t.yaml")
    unknown = r"t.yaml: unknown key\(s\) in build.schedule: tile; known: dwconv_channels, dwconv_phases, pointwise_loads"
    with pytest.raises(UserError, match=unknown):
        choices_from({"tile": 2}, "t.yaml")
    assert choices_from({"pointwise_loads": "interleaved"}, "t.yaml") == ScheduleChoices(pointwise_loads="interleaved")
    bad = r"t.yaml: build.schedule.pointwise_loads must be one of pairs, interleaved, but got 'runs'$"
    with pytest.raises(UserError, match=bad):
        choices_from({"pointwise_loads": "runs"}, "t.yaml")
    assert choices_from({"dwconv_phases": "unrolled"}, "t.yaml") == ScheduleChoices(dwconv_phases="unrolled")
    with pytest.raises(UserError, match=r"t.yaml: build.schedule.dwconv_phases must be one of loop, unrolled, but got 2"):
        choices_from({"dwconv_phases": 2}, "t.yaml")
    with pytest.raises(UserError, match=r"t.yaml: build.schedule must be a mapping"):
        choices_from([8], "t.yaml")


def test_target_files_carry_their_choice() -> None:
    assert choices_from(load_target("cortex-m4").build.get("schedule"), "m4") == ScheduleChoices(dwconv_channels=8)
    m7 = choices_from(load_target("cortex-m7").build.get("schedule"), "m7")
    assert m7 == ScheduleChoices(pointwise_loads="interleaved", dwconv_phases="unrolled")
    assert choices_from(load_target("cortex-m55").build.get("schedule"), "m55") == DEFAULT


@pytest.mark.parametrize(("channels", "differs"), [(16, True), (12, False)])
def test_eight_channel_tiles_only_where_channels_allow(channels: int, differs: bool) -> None:
    _, graph, _ = _dw_graph(channels)
    four = lower(graph, "llvm", True).tir
    eight = lower(graph, "llvm", True, ScheduleChoices(dwconv_channels=8)).tir
    assert (not tvm_ffi.structural_equal(four, eight)) == differs
    # The C codegen keeps four channels whatever the choice.
    assert tvm_ffi.structural_equal(lower(graph, "c", True).tir, lower(graph, "c", True, ScheduleChoices(8)).tir)


def test_row_pair_phases_unroll_only_where_chosen() -> None:
    _, graph, _ = _dw_graph(8, hw=(7, 5))
    loop = lower(graph, "llvm", True).tir
    assert not tvm_ffi.structural_equal(loop, lower(graph, "llvm", True, ScheduleChoices(dwconv_phases="unrolled")).tir)
    assert tvm_ffi.structural_equal(loop, lower(graph, "llvm", True, ScheduleChoices(dwconv_channels=8)).tir)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("channels", [16, 12])
def test_cortex_m4_depthwise_tiles_are_bit_exact_on_qemu(channels: int, tmp_path) -> None:
    spec, graph, vectors = _dw_graph(channels, seed=channels)
    result = build_and_run(graph, spec, load_target("cortex-m4"), tmp_path, vectors, "llvm",
                           compiled=compile_graph(graph), check_layers=True)
    assert result.mismatches == 0
