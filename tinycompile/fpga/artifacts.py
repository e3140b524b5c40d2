"""The build folder of an FPGA build: everything ``tinycompile simulate`` needs to re-run it on the RTL.

  quant/                the QuantGraph (quant_graph.json + quant_tensors.npz)
  image.bin             the memory image (constants, tensors, program), input area left zero
  program.s             the program as assembly text, one instruction a line
  inputs.npy            the int8 NHWC test inputs
  build.json            array size, scratchpad sizes, addresses, per-layer code (geometry, instruction range)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.accel.assembler import MemoryImage, format_instr
from tinycompile.errors import UserError
from tinycompile.fileio import write_json, write_text, write_with
from tinycompile.accel.config import ARRAYS, AccelConfig
from tinycompile.accel.isa import INSTR_BYTES
from tinycompile.accel.layout import TensorLoc, cpad
from tinycompile.fpga.codegen import IMAGE_ALIGN, AccelProgram, InputPack, LayerCode
from tinycompile.fpga.geometry import Geom
from tinycompile.fpga.tiling import plan_layer
from tinycompile.quant.graph import QuantGraph

MANIFEST = "build.json"


def save(out: Path, graph: QuantGraph, prog: AccelProgram, placement: dict[int, str], x: np.ndarray, target: Any) -> None:
    """Write the build folder (the manifest last: its presence marks a complete build)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graph.save(out / "quant")
    write_with(out / "image.bin", lambda tmp: Path(tmp).write_bytes(prog.image.data.tobytes()))
    write_with(out / "inputs.npy", lambda tmp: _save_npy(tmp, x))
    write_text(out / "program.s", "\n".join(f"{k:5d}  {format_instr(ins)}" for k, ins in enumerate(prog.instrs)) + "\n")
    doc = {
        "target": target.name,
        "target_file": str(target.path),
        "params": asdict(prog.params),
        "prog_addr": prog.prog_addr,
        "image_top": prog.image.top,
        "input": asdict(prog.input),
        "input_pack": None if prog.pack is None else asdict(prog.pack),
        "placement": {str(k): v for k, v in placement.items()},
        "layers": [
            {"index": c.index, "op": c.op, "geom": None if c.geom is None else asdict(c.geom), "first": c.first,
             "count": c.count, "out": asdict(c.out)}
            for c in prog.layers
        ],
    }
    write_json(out / MANIFEST, doc)


def save_hybrid(out: Path, graph: QuantGraph, placement: dict[int, str], x: np.ndarray, target: Any, n: int) -> None:
    """A build with layers on the host: the graph and inputs (``simulate`` recompiles it, deterministically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graph.save(out / "quant")
    write_with(out / "inputs.npy", lambda tmp: _save_npy(tmp, x))
    write_json(out / MANIFEST, {"target": target.name, "target_file": str(target.path), "hybrid": True, "array": n,
                                "placement": {str(k): v for k, v in placement.items()}})


def load(folder: Path) -> tuple[AccelProgram, dict[int, str], np.ndarray, QuantGraph, dict[str, Any]]:
    """Read a build folder written by :func:`save`; a one-line UserError if any of its files is missing, damaged or
    disagrees with the others (the image is checked against build.json, the inputs against the graph).

    The program is not judged here: an instruction that does not decode is left for the accelerator, which stops
    on it with its own error code and PC (``prog.instrs`` is then empty)."""
    folder = Path(folder)
    doc = manifest(folder)
    if doc.get("hybrid"):
        raise UserError(f"{folder} holds a build with layers on the host; use load_hybrid")
    graph = load_graph(folder)
    x = load_inputs(folder, graph)
    try:
        raw = np.frombuffer((folder / "image.bin").read_bytes(), np.uint8)
    except OSError as exc:
        raise damaged(folder, f"cannot read image.bin ({exc.strerror})") from None
    try:
        prog = _program(doc, raw, len(graph.ops))
        placement = {int(k): str(v) for k, v in doc["placement"].items()}
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as exc:
        raise damaged(folder, f"{MANIFEST} and image.bin disagree ({type(exc).__name__}: {exc})") from None
    return prog, placement, x, graph, doc


def _program(doc: dict[str, Any], raw: np.ndarray, n_ops: int) -> AccelProgram:
    """The AccelProgram that build.json describes over the image bytes ``raw`` (ValueError where they disagree)."""
    from tinycompile.accel.assembler import disassemble

    params = AccelConfig(**doc["params"])
    if params.n not in ARRAYS or any(not isinstance(v, int) or v < 1 for v in asdict(params).values()):
        raise ValueError(f"params must be positive integers with n in {ARRAYS}, but got {doc['params']}")
    top, prog_addr = int(doc["image_top"]), int(doc["prog_addr"])
    size = -(-top // IMAGE_ALIGN) * IMAGE_ALIGN
    if raw.size != size:
        raise ValueError(f"image.bin must hold {size} bytes (the image ends at byte {top}), but holds {raw.size}")
    if not 0 <= prog_addr < top or (top - prog_addr) % INSTR_BYTES:
        raise ValueError(f"prog_addr must start whole instructions before image_top={top}, but got {prog_addr}")
    length = (top - prog_addr) // INSTR_BYTES  # instructions, the final DONE included
    image = MemoryImage(params.n, raw.size)
    image.data[:] = raw
    image.top = top
    layers = []
    for d in doc["layers"]:
        geom = None if d["geom"] is None else Geom(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["geom"].items()})
        tiling = None if geom is None else plan_layer(geom, params)
        code = LayerCode(int(d["index"]), str(d["op"]), geom, tiling, int(d["first"]), int(d["count"]), _loc(d["out"], raw.size, params.n))
        if not 0 <= code.index < n_ops or code.first < 0 or code.count < 0 or code.first + code.count >= length:
            raise ValueError(f"layer {code.index} must be an op of the graph with instructions inside the program's "
                             f"{length}, but has instructions {code.first}..{code.first + code.count}")
        layers.append(code)
    try:
        instrs = disassemble(raw[prog_addr:top].tobytes())
    except ValueError:
        instrs = []  # an illegal instruction: the accelerator itself reports it when it runs (error 1 and its PC)
    return AccelProgram(params, image, prog_addr, instrs, layers, _loc(doc["input"], raw.size, params.n),
                        [c.index for c in layers if c.geom is not None],
                        None if doc.get("input_pack") is None else InputPack(**doc["input_pack"]))


def _loc(d: dict[str, Any], image_bytes: int, n: int) -> TensorLoc:
    """A tensor location of build.json, checked to lie inside the image (ValueError if not)."""
    loc = TensorLoc(**d)
    if min(loc.h, loc.w, loc.c) < 1 or loc.addr < 0 or loc.addr + loc.h * loc.w * cpad(loc.c, n) > image_bytes:
        raise ValueError(f"tensor {d} must lie inside the image's {image_bytes} bytes")
    return loc


def manifest(folder: Path) -> dict[str, Any]:
    """The build folder's build.json (UserError if it is not a build folder, or if build.json is not a JSON object)."""
    folder = Path(folder)
    if not is_build_folder(folder):
        raise UserError(f"{folder} is not an FPGA build folder (no {MANIFEST}); run `tinycompile build --target fpga` first")
    try:
        doc = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise damaged(folder, f"{MANIFEST} is not readable JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict):
        raise damaged(folder, f"{MANIFEST} must hold a JSON object, but holds {type(doc).__name__}")
    return doc


def is_build_folder(folder: Path) -> bool:
    """Whether ``folder`` holds an FPGA build (its manifest), intact or not."""
    return (Path(folder) / MANIFEST).is_file()


def load_graph(folder: Path) -> QuantGraph:
    """The build's QuantGraph (``quant/``), or a UserError saying the folder is damaged."""
    try:
        return QuantGraph.load(Path(folder) / "quant")
    except UserError as exc:
        raise damaged(folder, str(exc)) from None


def load_inputs(folder: Path, graph: QuantGraph) -> np.ndarray:
    """The build's test inputs (``inputs.npy``): int8 ``(N, H, W, C)`` of the graph's input shape, N >= 1."""
    path = Path(folder) / "inputs.npy"
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for a missing, truncated or foreign file
        raise damaged(folder, f"inputs.npy is not a readable .npy file ({type(exc).__name__}: {exc})") from None
    if not isinstance(x, np.ndarray):  # an .npz under the .npy's name
        raise damaged(folder, f"inputs.npy must hold one array, but holds {type(x).__name__}")
    want = (x.shape[0] if x.ndim else 0, *graph.input_shape)
    if x.dtype != np.int8 or x.shape != want or want[0] == 0:
        raise damaged(folder, f"inputs.npy must hold int8 inputs shaped (N >= 1, {', '.join(map(str, graph.input_shape))}), "
                              f"but holds {x.dtype} {list(x.shape)}")
    return x


def damaged(folder: Path, what: str) -> UserError:
    """The one-line error for a build folder whose files cannot be what a build wrote."""
    return UserError(f"{folder}: damaged build folder: {what}; rebuild it with `tinycompile build ... --target fpga -o {folder}`")


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object keeps numpy from appending its own suffix
        np.save(f, arr)
