"""Helium (MVE) on cortex-m55 (QEMU mps3-an547): the emulator executes MVE, the requantization of four lanes equals
the integer reference over random and extreme values, and every layer kind that the MVE schedules take (or hand back
to the DSP ones) is bit-exact, layer by layer, in both codegens; a bad ``build.simd`` is one clear error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from mcu_helpers import HOST_CC, HOST_FLAGS, random_model

from tinycompile.arch import ArchSpec, Layer
from tinycompile.errors import UserError
from tinycompile.mcu import codegen, firmware
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.quant import intmath
from tinycompile.quant.quantize import quantize
from tinycompile.targets import load_target

TARGET = "cortex-m55"


def _firmware(folder: Path, main: str) -> Path:
    """``main`` built with the cortex-m55 target's compiler and flags (picolibc, semihosting) into an ELF."""
    target = load_target(TARGET)
    b = firmware.build_config(target)
    (folder / "main.c").write_text(main)
    elf = folder / "fw.elf"
    cmd = [b["cc"], *b["cflags"], "-O2", "-std=gnu11", "--specs=picolibc.specs", "--oslib=semihost", f"-I{folder}",
           "-o", str(elf), str(folder / "main.c"), f"-Wl,--defsym=__flash={b['flash_origin']:#x}",
           f"-Wl,--defsym=__flash_size={b['flash_size']:#x}", f"-Wl,--defsym=__ram={b['ram_origin']:#x}",
           f"-Wl,--defsym=__ram_size={b['ram_size']:#x}"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return elf


def _run(elf: Path) -> str:
    log = elf.with_suffix(".out")
    proc = subprocess.run(firmware.qemu_command(elf, load_target(TARGET), log), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    text = log.read_text() if log.exists() else ""
    assert proc.returncode == 0 and "DONE" in text, text[-2000:] + proc.stderr[-2000:]
    return text


def _c_array(name: str, ctype: str, values: np.ndarray) -> str:
    return f"static {ctype} {name}[{values.size}] = {{{','.join(str(int(v)) for v in values.reshape(-1))}}};\n"


@pytest.mark.slow
def test_qemu_executes_mve(tmp_path: Path) -> None:
    """One VMLADAVA.S8 on inputs the compiler cannot see (volatile) against numpy's dot product."""
    rng = np.random.default_rng(12)
    a = rng.integers(-128, 128, 16)
    b = rng.integers(-128, 128, 16)
    a[0], b[0] = -128, -128  # the largest product
    main = "#include <arm_mve.h>\n#include <stdio.h>\n#include <stdlib.h>\n" + _c_array("a", "volatile int8_t", a) + \
        _c_array("b", "volatile int8_t", b) + """
int main(void) {
  int8_t x[16], y[16];
  for (int i = 0; i < 16; ++i) { x[i] = a[i]; y[i] = b[i]; }
  volatile int32_t start = 1000;
  printf("R %ld\\n", (long)vmladavaq_s8(start, vld1q_s8(x), vld1q_s8(y)));
  printf("DONE\\n");
  exit(0);
}
"""  # fmt: skip
    elf = _firmware(tmp_path, main)
    build = firmware.build_config(load_target(TARGET))
    asm = subprocess.run([build["cc"], *build["cflags"], "-O2", "-S", "-o", "-", str(tmp_path / "main.c")],
                         capture_output=True, text=True, timeout=120).stdout
    assert "vmladava.s8" in asm  # the instruction is in the program, not folded away
    got = int(next(line for line in _run(elf).splitlines() if line.startswith("R ")).split()[1])
    assert got == 1000 + int(np.dot(a, b))


def _requant_cases() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accumulators with |acc + bias| < 2**30 (the fast form's bound) and per-lane multipliers and shifts,
    random and at the extremes: the bound, zero, the smallest and largest multipliers and shifts, ties."""
    rng = np.random.default_rng(7)
    n = 4096
    t = rng.integers(-(2**30) + 1, 2**30, n)
    t[:64] = rng.integers(-300, 300, 64)  # small values: the rounding ties matter
    t[64:72] = [2**30 - 1, -(2**30) + 1, 0, 1, -1, 2**29, -(2**29), 3]
    bias = rng.integers(-(2**20), 2**20, n)
    bias = np.clip(bias, -(2**30) + 1 - np.minimum(t, 0), 2**30 - 1 - np.maximum(t, 0))
    acc = t - bias
    mult = rng.integers(2**30, 2**31, n)
    mult[::5] = 2**30
    mult[1::5] = 2**31 - 1
    shift = rng.integers(1, 32, n)
    shift[::7] = 1
    shift[1::7] = 31
    zp = rng.integers(-128, 128, n // 4).repeat(4)
    return np.stack([acc, bias, mult, shift, zp], axis=1).astype(np.int64), t, zp


def _requant_program(acc_rows: np.ndarray, native: bool) -> str:
    n = len(acc_rows)
    acc, bias, mult, shift, zp = acc_rows.T
    table = np.stack([2 * bias, mult, 1 << (shift - 1), shift], axis=1)
    include = f'#include "{codegen.MVE_HEADER}"\n'
    return "#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n" + include + \
        _c_array("acc", "const int32_t", acc) + _c_array("rq", "const int32_t", table) + \
        _c_array("zp", "const int32_t", zp[::4]) + f"""
int main(void) {{
  int8_t out[4];
  for (int g = 0; g < {n // 4}; ++g) {{
    tc_mve_requant4(acc + 4 * g, rq + 16 * g, out, zp[g], -128, 127);
    printf("Q");
    for (int i = 0; i < 4; ++i) printf(" %d", out[i]);
    printf("\\n");
  }}
  printf("DONE\\n");
  {"exit(0);" if native else "return 0;"}
}}
"""  # fmt: skip


def _expected_requant(rows: np.ndarray, t: np.ndarray) -> np.ndarray:
    _, _, mult, shift, zp = rows.T
    return np.clip(intmath.requantize(t, mult, shift) + zp, -128, 127)


def _parsed(text: str) -> np.ndarray:
    return np.array([int(v) for line in text.splitlines() if line.startswith("Q") for v in line.split()[1:]])


@pytest.mark.slow
def test_requant4_equals_reference_on_qemu(tmp_path: Path) -> None:
    """tc_mve.h's arm_mve.h requantization (VRMULH, VSHL, gathers) against ``intmath.requantize`` (TFLite)."""
    rows, t, _ = _requant_cases()
    (tmp_path / codegen.MVE_HEADER).write_text(codegen.MVE_HEADER_TEXT)
    elf = _firmware(tmp_path, _requant_program(rows, native=True))
    got = _parsed(_run(elf))
    want = _expected_requant(rows, t)
    assert len(got) == len(want) and np.array_equal(got, want)
    assert {-128, 127} <= set(got.tolist())  # the clamps were reached


def test_requant4_portable_equals_reference(tmp_path: Path) -> None:
    """tc_mve.h's portable C (a host build of a library) against ``intmath.requantize``."""
    rows, t, _ = _requant_cases()
    (tmp_path / codegen.MVE_HEADER).write_text(codegen.MVE_HEADER_TEXT)
    (tmp_path / "main.c").write_text(_requant_program(rows, native=False))
    exe = tmp_path / "host"
    build = subprocess.run([HOST_CC, *HOST_FLAGS, f"-I{tmp_path}", "-o", str(exe), str(tmp_path / "main.c")],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr, run.stderr[-2000:]
    assert np.array_equal(_parsed(run.stdout), _expected_requant(rows, t))


L = Layer
CASES = {
    # a first layer (one input channel, a 4 x 2 window: eight taps) with padding and stride, then depthwise on
    # 32 channels (two tiles of 16) with stride 2, pointwise 32 -> 16, a padded 3 x 3 conv on 16 channels, pools
    "first_dw_pw": ArchSpec((1, 11, 9), 5, (
        L("conv", (-1,), channels=32, kernel=(4, 2), stride=(2, 1), padding=(2, 1, 1, 0), relu=True),
        L("dwconv", (0,), kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1), relu=True),
        L("conv", (1,), channels=16, kernel=(1, 1), relu=True),
        L("conv", (2,), channels=12, kernel=(3, 3), padding=(1, 1, 1, 1)),
        L("maxpool", (3,), kernel=(2, 2), stride=(1, 1)),
        L("avgpool", (4,), kernel=(2, 2), stride=(2, 2)),
        L("flatten", (5,)), L("dense", (6,), channels=5))),
    # what the MVE schedules hand back to the DSP ones: 8 input channels, a depthwise layer on 12 channels, and a
    # one-channel window of 9 taps
    "dsp_fallbacks": ArchSpec((1, 9, 8), 4, (
        L("conv", (-1,), channels=8, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        L("conv", (0,), channels=12, kernel=(1, 1), relu=True),
        L("dwconv", (1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        L("gap", (2,)), L("dense", (3,), channels=4))),
}


@pytest.fixture(scope="module")
def mve_graphs():
    out = {}
    rng = np.random.default_rng(3)
    for i, (name, spec) in enumerate(CASES.items()):
        calib = rng.normal(0, 0.3, (64, *spec.input_shape)).astype(np.float32)  # narrow: real inputs saturate
        graph = quantize(spec, random_model(spec, 40 + i), calib)
        vectors = rng.integers(-128, 128, (8, *graph.input_shape)).astype(np.int8)
        vectors[0] = 127
        vectors[1] = -128
        out[name] = (spec, graph, vectors, compile_graph(graph))
    return out


# what each kind of MVE kernel leaves in the scheduled TIR (LLVM) or the C source: the 16- and 8-lane dot products,
# the four-channel requantization, the depthwise multiply-accumulate
MVE_CALLS = {"llvm": ("T.Ramp(0, 1, 16)", 'T.Cast("int16x8"', "llvm.arm.mve.vrmulh", "T.vectorized(4)"),
             "c": ("tc_mve_dot16", "tc_mve_dot8", "tc_mve_requant4", "tc_mve_mla4")}
DOT_CALLS = {"llvm": MVE_CALLS["llvm"][:2], "c": MVE_CALLS["c"][:2]}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("codegen_kind", ["llvm", "c"])
@pytest.mark.parametrize("case", list(CASES))
def test_mve_layers_are_bit_exact_on_qemu(mve_graphs, case, codegen_kind, tmp_path) -> None:
    spec, graph, vectors, compiled = mve_graphs[case]
    target = load_target(TARGET)
    result = build_and_run(graph, spec, target, tmp_path, vectors, codegen_kind, compiled=compiled, check_layers=True)
    assert result.mismatches == 0
    lowered, c_source, _ = compiled.lowered_for(codegen_kind, target.build["llvm_target"], "mve")
    text = c_source if codegen_kind == "c" else lowered.tir.script()
    used = {name for name in MVE_CALLS[codegen_kind] if name in text}
    if case == "first_dw_pw":
        assert used == set(MVE_CALLS[codegen_kind])  # every MVE kernel kind took part
    else:
        assert not used & set(DOT_CALLS[codegen_kind])  # the DSP schedules took these convs


@pytest.mark.parametrize(("simd", "mcpu", "message"), [
    ("sse", "cortex-m55", "build.simd must be one of dsp, mve, but got 'sse'"),
    ("mve", "cortex-m4", "build.simd mve needs a core with Helium (cortex-m55, cortex-m85), but build.llvm_target.mcpu is cortex-m4"),
])  # fmt: skip
def test_bad_simd_is_one_clear_error(tmp_path: Path, simd: str, mcpu: str, message: str) -> None:
    text = (Path(load_target(TARGET).path)).read_text()
    text = text.replace("simd: mve", f"simd: {simd}").replace("mcpu: cortex-m55", f"mcpu: {mcpu}")
    path = tmp_path / "m55.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:  # refused when the target is loaded, or at the latest by the build
        firmware.build_config(load_target(str(path)))
    assert str(err.value) == f"{path}: {message}"
