"""Helpers shared by the MCU tests (importable: pytest puts this folder on sys.path)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinycompile.arch import ArchSpec
from tinycompile.mcu.naming import Naming
from tinycompile.model import SpecNet
from tinycompile.quant.graph import QuantGraph
from tinycompile.quant.quantize import quantize


def random_model(spec: ArchSpec, seed: int) -> SpecNet:
    """An untrained model with random weights and non-trivial batch-norm statistics (for per-op tests)."""
    torch.manual_seed(seed)
    model = SpecNet(spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    model.eval()
    return model


def random_graph(spec: ArchSpec, seed: int, inputs: int) -> tuple[QuantGraph, np.ndarray]:
    """``random_model`` quantized on 32 random calibration inputs, and ``inputs`` random int8 vectors for it."""
    rng = np.random.default_rng(seed)
    calib = rng.normal(0, 0.5, (32, *spec.input_shape)).astype(np.float32)
    graph = quantize(spec, random_model(spec, seed), calib)
    return graph, rng.integers(-128, 128, (inputs, *graph.input_shape)).astype(np.int8)


@dataclass(frozen=True)
class LibraryRun:
    """One generated library in a multi-library test program: its folder, its names and the inputs to run."""

    folder: Path
    naming: Naming
    vectors: np.ndarray  # (N, H, W, C) int8


HOST_CC = "gcc"
# A host build as a user's unit tests would make it, with every check the sanitizers offer and no warning allowed.
HOST_FLAGS = ("-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
              "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")  # fmt: skip


def write_multi_harness(path: Path, runs: Sequence[LibraryRun]) -> None:
    """A ``main.c`` that runs every library on each of its vectors in turn (vector 0 of each, then vector 1, ...: the
    libraries' static state interleaves), printing ``Y <library> <vector> <hex outputs>`` lines, then ``DONE``."""
    assert len({len(r.vectors) for r in runs}) == 1, "every library runs the same number of vectors"
    lines = ["#include <stdint.h>", "#include <stdio.h>", "#include <stdlib.h>"]
    lines += [f'#include "{(r.folder / "model.h").resolve()}"' for r in runs]
    calls = []
    for i, r in enumerate(runs):
        rows = ",\n".join("  {" + ",".join(str(int(v)) for v in row) + "}" for row in r.vectors.reshape(len(r.vectors), -1))
        size_in, size_out = r.naming.macro("INPUT_SIZE"), r.naming.macro("OUTPUT_SIZE")
        lines += [f"static const int8_t in{i}[{len(r.vectors)}][{size_in}] = {{\n{rows}\n}};",
                  f"static int8_t out{i}[{size_out}];"]  # fmt: skip
        calls.append(f"    if ({r.naming.api('run')}(in{i}[v], out{i}) != 0) {{ printf(\"E {i} %d\\n\", v); exit(1); }}\n"
                     f"    show({i}, v, out{i}, {size_out});")  # fmt: skip
    lines += [
        "static void show(int lib, int v, const int8_t* y, int n) {",
        '  printf("Y %d %d ", lib, v);',
        '  for (int i = 0; i < n; ++i) printf("%02x", (unsigned)(uint8_t)y[i]);',
        '  printf("\\n");',
        "}",
        "int main(void) {",
        f"  for (int v = 0; v < {len(runs[0].vectors)}; ++v) {{",
        *calls,
        "  }",
        '  printf("DONE\\n");',
        "  exit(0);  /* semihosting exit on QEMU */",
        "}",
    ]
    path.write_text("\n".join(lines) + "\n")


def parse_multi_outputs(text: str, runs: Sequence[LibraryRun]) -> list[np.ndarray]:
    """Each library's outputs ``(N, output size)`` from the ``Y`` lines of ``write_multi_harness``'s program."""
    found: dict[tuple[int, int], np.ndarray] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "Y":
            found[(int(parts[1]), int(parts[2]))] = np.frombuffer(bytes.fromhex(parts[3]), np.int8)
    assert "DONE" in text, text[-2000:]
    return [np.stack([found[(i, v)] for v in range(len(r.vectors))]) for i, r in enumerate(runs)]


def run_on_host(runs: Sequence[LibraryRun], work: Path, flags: Sequence[str] = HOST_FLAGS) -> list[np.ndarray]:
    """Build the libraries (C kernels) and ``write_multi_harness``'s program with the host's compiler, run it, and
    return each library's outputs; fails on a warning, a sanitizer report or a non-zero exit."""
    work.mkdir(parents=True, exist_ok=True)
    write_multi_harness(work / "main.c", runs)
    sources = [str(work / "main.c")]
    for r in runs:
        sources += [str(r.folder / "model.c"), str(r.folder / "kernels.c")]
    exe = work / "host_test"
    build = subprocess.run([HOST_CC, *flags, "-o", str(exe), *sources], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and not run.stderr, f"exit {run.returncode}:\n{run.stderr[-4000:]}"
    return parse_multi_outputs(run.stdout, runs)
