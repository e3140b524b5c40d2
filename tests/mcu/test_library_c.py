"""The generated library as C code: free of undefined behaviour, warning-free, buildable on a PC, linkable twice.

* A host build (gcc, ``-fsanitize=address,undefined``, ``-Wall -Wextra -Werror``) of kernels covering every
  requantization form (table and constant, right and left shifts, the fast SMMLAR form, the residual add's 2**20
  scaling, softmax, lookups, padding, concatenation) runs without a sanitizer report and equals the integer
  reference; the Arm DSP variant of the kernels too, through the portable fallback of the ACLE intrinsics.
* Each target's compiler with its YAML's flags compiles the library with ``-Wall -Wextra -Werror``.
* Libraries built with different ``--name``'s link into one host program and one firmware and each still equals
  its reference; every strong global symbol they define carries the name.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile
from mcu_helpers import HOST_CC, LibraryRun, parse_multi_outputs, random_model, run_on_host, write_multi_harness
from support import run_cli
from test_import_ops_qemu import GRAPHS, vectors_for
from test_ops_qemu import CASES

from tinycompile.arch import ArchSpec, Layer
from tinycompile.errors import UserError
from tinycompile.lowering import requant
from tinycompile.mcu import codegen, firmware
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.layout import uses_dsp
from tinycompile.mcu.library import Compiled, compile_graph, write_library
from tinycompile.mcu.naming import Naming
from tinycompile.quant import reference
from tinycompile.quant.graph import QuantGraph, spec_of
from tinycompile.quant.quantize import quantize
from tinycompile.targets import load_target

MCU_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55", "rv32imc")
DSP_TARGET = "cortex-m4"  # its C kernels call the ACLE intrinsics (the same source as cortex-m7's and -m55's)
VARIANTS = ("portable", "dsp")  # the C kernels of cores without / with the DSP extension


# A padded input of 22 x 22 x 4 bytes: too big for the stack, so the kernel takes it from the workspace shims.
SCRATCH = ArchSpec((4, 20, 20), 3, (Layer("conv", (-1,), channels=6, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
                                    Layer("gap", (0,)), Layer("dense", (1,), channels=3)))  # fmt: skip


def _quantized(spec: ArchSpec, seed: int, rng: np.random.Generator) -> QuantGraph:
    """``spec`` quantized from random weights and a narrow calibration (real inputs saturate)."""
    calib = rng.normal(0, 0.3, (64, *spec.input_shape)).astype(np.float32)
    return quantize(spec, random_model(spec, seed), calib)


@pytest.fixture(scope="module")
def graphs() -> dict[str, tuple[QuantGraph, np.ndarray, Compiled]]:
    """Graphs whose kernels hold every requantization form and op, their test inputs and their lowering."""
    rng = np.random.default_rng(7)
    made = {
        "pools_and_add": _quantized(CASES["pools_and_add"], 0, rng),  # negatives shifted by the add and fast form
        "dsp_paths": _quantized(CASES["dsp_paths"], 1, rng),  # every DSP intrinsic
        "scratch": _quantized(SCRATCH, 2, rng),  # kernel scratch from the workspace shims
        "left_shift": GRAPHS["left_shift"](rng),  # negative shifts in a table and in a constant
        "mixed": GRAPHS["mixed"](rng),
        "softmax": GRAPHS["softmax"](rng),
    }
    return {name: (g, vectors_for(g, rng), compile_graph(g)) for name, g in made.items()}


@pytest.fixture(scope="module")
def libraries(graphs, tmp_path_factory) -> dict[tuple[str, str], Path]:
    """(graph, variant) -> the folder of its C library (default names)."""
    root = tmp_path_factory.mktemp("libs")
    llvm = {"portable": None, "dsp": load_target(DSP_TARGET).build["llvm_target"]}
    out = {}
    for name, (g, _, compiled) in graphs.items():
        for variant in VARIANTS:
            lib = write_library(root / f"{name}-{variant}", g, spec_of(g), compiled, "c", llvm[variant])
            out[(name, variant)] = lib.folder
    return out


def test_dsp_variant_calls_the_acle_intrinsics_through_the_fallback_header(libraries) -> None:
    # Not vacuous: the DSP kernels call every intrinsic, and only their library ships and includes the header.
    source = (libraries[("dsp_paths", "dsp")] / "kernels.c").read_text()
    assert f'#include "{codegen.ACLE_HEADER}"' in source
    for intrinsic in ("tc_sxtb16", "tc_smlad", "tc_smlabb", "tc_smlabt", "tc_smlatb", "tc_smlatt"):
        assert f"{intrinsic}(" in source, intrinsic
    assert (libraries[("dsp_paths", "dsp")] / codegen.ACLE_HEADER).exists()
    assert not (libraries[("dsp_paths", "portable")] / codegen.ACLE_HEADER).exists()


@pytest.mark.parametrize("variant", VARIANTS)
def test_host_build_is_sanitizer_clean_and_equals_the_reference(graphs, libraries, variant: str, tmp_path) -> None:
    # Before: UBSan reported "left shift of negative value" in every model (the fast requantization's 2 acc, the add's
    # inputs times 2**20); the DSP variant did not build on a PC at all (no arm_acle.h). pools_and_add's dense folds a
    # negative zero point into its rounding column (then shifted left in 64 bits).
    assert any(requant.zero_point_folded(op) and op.out_q.zero_point < 0 for op in graphs["pools_and_add"][0].ops)
    for name, (g, vectors, _) in graphs.items():
        run = LibraryRun(libraries[(name, variant)], Naming(), vectors)
        (got,) = run_on_host([run], tmp_path / name)
        want = reference.run(g, vectors).reshape(len(vectors), -1)
        assert np.array_equal(got, want), name


def _warning_free(cmd: list[str], folder: Path, work: Path) -> str:
    """Compile the library in ``folder`` with ``cmd`` plus -c and -Wall -Wextra -Werror; the diagnostics, or ''."""
    out = []
    for src in ("model.c", "kernels.c"):
        obj = work / f"{folder.name}-{Path(src).stem}.o"
        proc = subprocess.run([*cmd, "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", f"-I{folder}", "-c",
                               "-o", str(obj), str(folder / src)], capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0 or proc.stderr:
            out.append(f"{folder.name}/{src}:\n{proc.stderr[-3000:]}")
    return "\n".join(out)


@pytest.mark.parametrize("target", [*MCU_TARGETS, "host"])
def test_library_compiles_without_warnings(libraries, target: str, tmp_path) -> None:
    if target == "host":
        cmd, variants = [HOST_CC], VARIANTS
    else:
        b = firmware.build_config(load_target(target))
        cmd = [firmware.require_tool(b["cc"]), *b["cflags"], "--specs=picolibc.specs"]
        variants = ("dsp",) if uses_dsp(b["llvm_target"]) else ("portable",)
    problems = [_warning_free(cmd, folder, tmp_path) for (_, variant), folder in libraries.items() if variant in variants]
    assert not any(problems), "\n".join(problems)


def _strong_globals(path: Path) -> set[str]:
    """The global symbols an ELF object defines, weak ones aside (those merge at link time)."""
    with open(path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {s.name for s in symtab.iter_symbols()
                if s["st_info"]["bind"] == "STB_GLOBAL" and s["st_shndx"] != "SHN_UNDEF"}  # fmt: skip


NAMED = (("scratch", "net_a"), ("left_shift", "net_b"))  # two different models (one with kernel scratch), two names


def test_named_libraries_link_into_one_host_program(graphs, tmp_path) -> None:
    # Before: a second library redefined tc_model_run, TVMBackendAllocWorkspace and __tvm_ffi__library_ctx.
    runs, expected = [], []
    for graph_name, lib_name in (*NAMED, ("softmax", "tc_model")):  # the default name beside two others
        g, vectors, compiled = graphs[graph_name]
        naming = Naming(lib_name)
        lib = write_library(tmp_path / lib_name, g, spec_of(g), compiled, "c", None, naming)
        assert lib.info.workspace_bytes > 0 or graph_name != "scratch"  # the renamed workspace shims are called
        runs.append(LibraryRun(lib.folder, naming, vectors[:8]))
        expected.append(reference.run(g, vectors[:8]).reshape(8, -1))
        if not naming.is_default:
            objs = [tmp_path / f"{lib_name}-{src}.o" for src in ("model", "kernels")]
            for obj, src in zip(objs, ("model.c", "kernels.c")):
                subprocess.run([HOST_CC, "-std=gnu11", "-O1", "-c", "-o", str(obj), str(lib.folder / src)], check=True)
            defined = set().union(*map(_strong_globals, objs))
            assert defined and all(s.startswith(lib_name + "_") for s in defined), defined
            assert f"{lib_name}_run" in defined
    for got, want in zip(run_on_host(runs, tmp_path / "host"), expected):
        assert np.array_equal(got, want)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("target", "codegen_kind"), [("cortex-m4", "llvm"), ("rv32imc", "c")])
def test_named_libraries_link_into_one_firmware(graphs, target: str, codegen_kind: str, tmp_path) -> None:
    # LLVM objects get their symbols renamed by the toolchain's objcopy; C sources are renamed as they are written.
    tgt = load_target(target)
    b = firmware.build_config(tgt)
    runs, expected = [], []
    for graph_name, lib_name in NAMED:
        g, vectors, compiled = graphs[graph_name]
        lib = write_library(tmp_path / lib_name, g, spec_of(g), compiled, codegen_kind, b["llvm_target"], Naming(lib_name), b["cc"])
        assert lib.info.workspace_bytes > 0 or graph_name != "scratch"  # the renamed workspace shims are called
        runs.append(LibraryRun(lib.folder, lib.naming, vectors))
        expected.append(reference.run(g, vectors).reshape(len(vectors), -1))
    fw = tmp_path / "firmware"
    fw.mkdir()
    write_multi_harness(fw / "main.c", runs)
    kernels = [runs[0].folder / f"kernels.{'o' if codegen_kind == 'llvm' else 'c'}"]
    kernels += [runs[1].folder / "model.c", runs[1].folder / kernels[0].name]
    elf = firmware.compile_firmware(fw, runs[0].folder, tgt, kernels, profile=None)
    result = firmware.run_qemu(elf, tgt, 0, 0, 0)
    for got, want in zip(parse_multi_outputs(result.stdout, runs), expected):
        assert np.array_equal(got, want)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_build_with_a_name_runs_its_own_harness(graphs, tmp_path) -> None:
    g, vectors, compiled = graphs["mixed"]
    result = build_and_run(g, spec_of(g), load_target("rv32imc"), tmp_path, vectors, "c", compiled, check_layers=True,
                           naming=Naming("kws"))  # fmt: skip
    assert result.ok and result.mismatches == 0
    header = (tmp_path / "lib" / "model.h").read_text()
    assert "int kws_run(" in header and "#define KWS_INPUT_SIZE" in header and "tc_" not in header.replace("tc_model", "")


@pytest.mark.parametrize("name", ["Kws", "9lives", "kws-1", "tc", "a" * 33])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(UserError, match="--name"):
        Naming(name)


def test_cli_refuses_a_bad_name_before_building(tmp_path) -> None:
    result = run_cli("build", str(tmp_path / "trial"), "--target", "cortex-m4", "-o", str(tmp_path / "out"), "--name", "my-net")
    assert result.returncode == 2 and "--name must be a lowercase C identifier" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    result = run_cli("build", str(tmp_path / "trial"), "--target", "fpga", "-o", str(tmp_path / "out"), "--name", "kws")
    assert result.returncode == 2 and "--name applies to mcu targets only" in result.stderr
