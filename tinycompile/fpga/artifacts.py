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
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.layout import TensorLoc
from tinycompile.fpga.codegen import AccelProgram, InputPack, LayerCode
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
    """Read a build folder written by :func:`save`."""
    from tinycompile.accel.assembler import disassemble

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise UserError(f"{folder} is not an FPGA build folder (no {MANIFEST}); run `tinycompile build --target fpga` first")
    doc = json.loads((folder / MANIFEST).read_text())
    if doc.get("hybrid"):
        raise UserError(f"{folder} holds a build with layers on the host; use load_hybrid")
    params = AccelConfig(**doc["params"])
    raw = np.frombuffer((folder / "image.bin").read_bytes(), np.uint8)
    image = MemoryImage(params.n, raw.size)
    image.data[:] = raw
    image.top = int(doc["image_top"])
    instrs = disassemble(raw[doc["prog_addr"]:].tobytes())
    layers = []
    for d in doc["layers"]:
        geom = None if d["geom"] is None else Geom(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["geom"].items()})
        tiling = None if geom is None else plan_layer(geom, params)
        layers.append(LayerCode(d["index"], d["op"], geom, tiling, d["first"], d["count"], TensorLoc(**d["out"])))
    prog = AccelProgram(params, image, int(doc["prog_addr"]), instrs, layers, TensorLoc(**doc["input"]),
                        [c.index for c in layers if c.geom is not None],
                        None if doc.get("input_pack") is None else InputPack(**doc["input_pack"]))
    placement = {int(k): v for k, v in doc["placement"].items()}
    return prog, placement, np.load(folder / "inputs.npy"), QuantGraph.load(folder / "quant"), doc


def manifest(folder: Path) -> dict[str, Any]:
    """The build folder's build.json (UserError if it is not a build folder)."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise UserError(f"{folder} is not an FPGA build folder (no {MANIFEST}); run `tinycompile build --target fpga` first")
    return json.loads((folder / MANIFEST).read_text())


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object keeps numpy from appending its own suffix
        np.save(f, arr)
