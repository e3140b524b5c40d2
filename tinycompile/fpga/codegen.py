"""Accelerator code generation: a QuantGraph's ops -> weight/parameter layouts, one instruction stream, a memory image.

Memory image layout (byte addresses, every block aligned to 64): weight tiles and parameter sets of every layer,
then every activation tensor (NHWC, channels padded to N; ``flatten`` is a view of its source), then the program.
Each op keeps its own output buffer, so every layer's output can be compared with the integer reference after a run.
Every layer's last barrier SYNC carries the stamp flag (rtl_sim/ISA.md, SYNC): the accelerator writes its cycle
counter into the layer's word of a cycle log once the layer's last stores have landed, so one run that covers
several layers still gives each layer's cycles (:func:`layer_marks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinycompile.accel.assembler import Instr, MemoryImage, assemble
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.isa import ADD_PARAM_SETS, INSTR_BYTES, QUEUE_COMPUTE
from tinycompile.accel.layout import TensorLoc, cpad, write_tensor
from tinycompile.errors import UserError
from tinycompile.fpga.constants import IDENTITY_MULT, LayerValues, layer_constants
from tinycompile.fpga.emit import emit_layer
from tinycompile.fpga.geometry import Geom, accel_geom, geom_from_hwc
from tinycompile.fpga.schemes import LayerAddrs, LayerQuant
from tinycompile.fpga.tiling import Tiling, plan_layer
from tinycompile.quant.graph import QOp, QuantGraph

IMAGE_ALIGN = 4096  # the image handed to the simulator is cut to a multiple of this


@dataclass
class LayerCode:
    """What the code generator made of one op."""

    index: int
    op: str
    geom: Geom | None  # None: a view (no instructions)
    tiling: Tiling | None
    first: int  # index of its first instruction in the program
    count: int  # number of instructions
    out: TensorLoc


@dataclass(frozen=True)
class InputPack:
    """How the host writes a packed network input (see ``geometry.pack_input``): ``rows`` x ``p`` pixels per word."""

    p: int
    left: int  # zero-point columns added on the left and right (the first layer's x padding)
    right: int
    zero_point: int
    rows: int = 1
    top: int = 0  # zero-point rows added above and below (the y padding, when rows are packed too)
    bottom: int = 0

    def shape(self, h: int, w: int, c: int) -> tuple[int, int, int]:
        """(h, w, c) of the packed tensor for an (h, w, c) input."""
        return h + self.top + self.bottom, w + self.left + self.right, self.rows * self.p * c


def pack_tensor(x: np.ndarray, pack: InputPack) -> np.ndarray:
    """(H, W, C) int8 -> packed: word (y, q) holds rows y .. y + rows - 1, columns q .. q + p - 1 of the padded input."""
    hp, wp, _ = pack.shape(*x.shape)
    h, w, _ = x.shape
    xp = np.full((hp + pack.rows, wp + pack.p, x.shape[2]), pack.zero_point, np.int8)
    xp[pack.top : pack.top + h, pack.left : pack.left + w] = x
    return np.concatenate([xp[ty : ty + hp, tx : tx + wp] for ty in range(pack.rows) for tx in range(pack.p)], axis=2)


@dataclass
class AccelProgram:
    """A compiled network: image (input not yet written), program address, per-layer code, tensor locations."""

    params: AccelConfig
    image: MemoryImage
    prog_addr: int
    instrs: list[Instr]
    layers: list[LayerCode]
    input: TensorLoc | None  # the network input, if this program reads it
    ops: list[int] = field(default_factory=list)  # op indices run on the accelerator
    pack: InputPack | None = None  # the input is written packed for the first layer
    inputs: dict[int, TensorLoc] = field(default_factory=dict)  # every tensor the host writes (-1: network input)

    def with_input(self, x: np.ndarray) -> MemoryImage:
        """A copy of the image with one int8 ``(H, W, C)`` network input written in place."""
        return self.with_inputs({-1: x})

    def with_inputs(self, values: dict[int, np.ndarray]) -> MemoryImage:
        """A copy of the image with the given tensors (network input -1, or outputs of ops run elsewhere) written."""
        img = MemoryImage(self.image.n, self.image.data.size)
        img.data[:] = self.image.data
        img.top = self.image.top
        for key, loc in (self.inputs or {-1: self.input}).items():
            x = np.asarray(values[key], np.int8)
            write_tensor(img, loc, pack_tensor(x, self.pack) if key == -1 and self.pack is not None else x)
        return img

    def code_of(self, layer: int) -> LayerCode:
        """Op ``layer``'s place in the program."""
        return next(c for c in self.layers if c.index == layer)

    def instrs_of(self, layer: int) -> list[Instr]:
        """Op ``layer``'s instructions."""
        code = self.code_of(layer)
        return self.instrs[code.first : code.first + code.count]

    def start_at(self, layer: int) -> int:
        """Byte address of op ``layer``'s first instruction (where a run of that op starts)."""
        return self.prog_addr + self.code_of(layer).first * INSTR_BYTES

    def stamp_at(self, layer: int) -> int | None:
        """Byte address of op ``layer``'s cycle-log word (None for a view, which has no instructions)."""
        for ins in reversed(self.instrs_of(layer)):
            if ins.op == "SYNC" and ins.get("stamp"):
                return ins.get("base")
        return None

    def done_at(self, layer: int) -> int:
        """Byte address of the first instruction after op ``layer`` (where a DONE cuts the program after it)."""
        code = self.code_of(layer)
        return self.prog_addr + (code.first + code.count) * INSTR_BYTES


def storage_shape(graph: QuantGraph, index: int) -> tuple[int, int, int]:
    """(h, w, c) of the buffer holding tensor ``index`` (a flatten is a view: follow it to its source)."""
    while index >= 0 and graph.ops[index].op == "flatten":
        index = graph.ops[index].inputs[0]
    return tuple(graph.input_shape) if index < 0 else tuple(graph.ops[index].out_shape)  # type: ignore[return-value]


def op_geom(graph: QuantGraph, i: int, n: int) -> Geom | None:
    """Accelerator geometry of op ``i`` (dense layers see the real storage of a flattened input)."""
    op = graph.ops[i]
    ins = [storage_shape(graph, j) for j in op.inputs]
    return geom_from_hwc(op.op, ins, tuple(op.out_shape), tuple(op.kernel), tuple(op.stride),  # type: ignore[arg-type]
                         tuple(op.padding), n)  # type: ignore[arg-type]


def layer_values(op: QOp, g: Geom) -> LayerValues:
    """The numbers of op ``op`` (run as ``g``) that its constants are laid out from."""
    t, zp_in = op.tensors, op.in_q[0].zero_point
    if g.kind == "conv":  # a dense layer is a window over its input's storage (a flatten is a view)
        w = t["weight"]
        window = (g.kh, g.kw, g.c) if op.op == "dense" else (*op.kernel, g.c // (g.dx * g.dy))
        hwio = w.reshape(len(w), *window).transpose(1, 2, 3, 0)
        return LayerValues(hwio, t["bias"], ((t["multiplier"], t["shift"]),), zp_in)
    if g.kind == "dw":
        return LayerValues(t["weight"].reshape(*op.kernel, g.c), t["bias"], ((t["multiplier"], t["shift"]),), zp_in)
    if g.kind == "maxpool":  # max(x) - zp_in + zp_out is exact: a max pool keeps its input's quantization
        return LayerValues(None, 0, ((IDENTITY_MULT, 0),), zp_in)
    if g.kind == "avgpool":
        return LayerValues(None, 0, ((t["multiplier"][0], t["shift"][0]),), zp_in)
    scales = tuple((t["multiplier"][k], t["shift"][k]) for k in range(ADD_PARAM_SETS))  # inputs a and b, the sum
    return LayerValues(None, 0, scales, zp_in, op.in_q[1].zero_point)


def single_rounding(op: QOp) -> bool:
    """Whether an op requantizes with single rounding (``params["single_rounding"]`` on a conv, depthwise or dense,
    the ops whose integer semantics honour it): its POSTPROCs set ``single``."""
    return bool(op.params.get("single_rounding")) and op.op in ("conv", "dwconv", "dense")


def _place(what: str, mem_bytes: int, fn: object, *args: object) -> int:
    """Run an image allocation; a full image becomes a one-line UserError saying what did not fit."""
    try:
        return fn(*args)  # type: ignore[operator]
    except ValueError:
        raise UserError(f"{what}: the accelerator's {mem_bytes // 1024} KB external memory is full (constants, every "
                        "layer's output and the program stay resident); use a smaller model") from None


def storage_index(graph: QuantGraph, index: int) -> int:
    """The tensor whose buffer holds ``index`` (a flatten is a view of its source)."""
    while index >= 0 and graph.ops[index].op == "flatten":
        index = graph.ops[index].inputs[0]
    return index


def compile_graph(graph: QuantGraph, p: AccelConfig, mem_bytes: int, ops: set[int] | None = None,
                  stops: frozenset[int] = frozenset()) -> AccelProgram:
    """Lay out constants and tensors, emit every op's instructions, and assemble the program into one image.

    ``ops``: compile only these ops (one accelerator segment of a network whose other ops run on the host); the
    tensors they read from outside become inputs the host writes (``AccelProgram.inputs``). ``stops``: ops after
    which the program ends with DONE; a run started at the next op's first instruction goes on from there (every
    layer ends with a barrier, so nothing is in flight at a stop).
    """
    n = p.n
    img = MemoryImage(n, mem_bytes)
    chosen = set(range(len(graph.ops))) if ops is None else set(ops)
    plans: list[tuple[Geom | None, Tiling | None, int, int]] = []
    readers = [i for i, op in enumerate(graph.ops) if -1 in op.inputs]
    pack: InputPack | None = None
    for i, op in enumerate(graph.ops):
        if i not in chosen:
            plans.append((None, None, 0, 0))
            continue
        g = op_geom(graph, i, n)
        if g is None:
            plans.append((None, None, 0, 0))
            continue
        g = accel_geom(g, readers == [i] and op.op == "conv", n)
        if g.dx > 1:  # packed: the host writes the input p columns (and dy rows) per word, padding in y as well
            rows = g.dy > 1
            pack = InputPack(g.dx, op.padding[2], op.padding[3], graph.input_q.zero_point, g.dy,
                             op.padding[0] if rows else 0, op.padding[1] if rows else 0)
        tiling = plan_layer(g, p)
        tiles, blob = layer_constants(g, tiling, n, layer_values(op, g))
        where = f"layer {i} ({op.op}) weights"
        plans.append((g, tiling, _place(where, mem_bytes, img.put, tiles), _place(where, mem_bytes, img.put, blob)))
    external = sorted({storage_index(graph, j) for i in chosen for j in graph.ops[i].inputs
                       if storage_index(graph, j) not in chosen})
    locs: dict[int, TensorLoc] = {}
    for key in external:
        h, w, c = storage_shape(graph, key)
        if key == -1 and pack is not None:  # the first layer reads the input packed
            h, w, c = pack.shape(h, w, c)
        what = "the network input" if key == -1 else f"layer {key} output"
        locs[key] = TensorLoc(_place(what, mem_bytes, img.alloc, h * w * cpad(c, n)), h, w, c)
    inputs = dict(locs)
    n_log = sum(1 for i in chosen if plans[i][0] is not None)
    log = _place("the cycle log", mem_bytes, img.alloc, max(1, n_log) * n)
    instrs: list[Instr] = []
    layers: list[LayerCode] = []
    follows: list[Instr] | None = None  # the code a layer comes after in the same run (None after a DONE)
    for i, op in enumerate(graph.ops):
        if i not in chosen:
            continue
        g, tiling, wgt, prm = plans[i]
        src = locs[op.inputs[0]] if op.inputs[0] in locs else locs[storage_index(graph, op.inputs[0])]
        if g is None or tiling is None:  # a view: same bytes, new shape
            oh, ow, oc = op.out_shape
            locs[i] = TensorLoc(src.addr, oh, ow, oc)
            layers.append(LayerCode(i, op.op, None, None, len(instrs), 0, locs[i]))
            continue
        oh, ow, oc = op.out_shape
        out = TensorLoc(_place(f"layer {i} ({op.op}) output", mem_bytes, img.alloc, oh * ow * cpad(oc, n)), oh, ow, oc)
        locs[i] = out
        b = locs[storage_index(graph, op.inputs[1])].addr if op.op == "add" else 0
        quant = LayerQuant(op.in_q[0].zero_point, op.out_q.zero_point, op.lo, op.hi,
                           int(op.params.get("left_shift", 0)), single_rounding(op))
        code = emit_layer(g, tiling, p, LayerAddrs(src.addr, out.addr, wgt, prm, b), quant, follows)
        stamp_layer(code, log + n * sum(1 for c in layers if c.count))
        layers.append(LayerCode(i, op.op, g, tiling, len(instrs), len(code), out))
        instrs.extend(code)
        follows = code
        if i in stops:
            instrs.append(Instr("DONE"))
            follows = None
    if not instrs or instrs[-1].op != "DONE":
        instrs.append(Instr("DONE"))
    prog_addr = _place(f"the program ({len(instrs)} instructions)", mem_bytes, img.put, np.frombuffer(assemble(instrs), np.uint8))
    size = -(-img.top // IMAGE_ALIGN) * IMAGE_ALIGN
    trimmed = MemoryImage(n, size)
    trimmed.data[:] = img.data[:size]
    trimmed.top = img.top
    return AccelProgram(p, trimmed, prog_addr, instrs, layers, inputs.get(-1), [i for i, (g, *_) in enumerate(plans) if g],
                        pack, inputs)


def stamp_layer(code: list[Instr], addr: int) -> None:
    """Set the stamp flag on the layer's last compute-queue SYNC (its last barrier: every store of the layer has
    landed when it retires), writing the log word at ``addr``."""
    k = max(j for j, ins in enumerate(code) if ins.op == "SYNC" and ins.get("queue") == QUEUE_COMPUTE)
    code[k] = Instr("SYNC", {**code[k].fields, "stamp": 1, "base": addr})


def mac_rows(prog: AccelProgram, layer: int) -> int:
    """Input rows op ``layer``'s COMPUTEs issue to the array: what the accelerator's MAC-active counter adds for it."""
    return sum(ins.get("m") * ins.get("kt") * ins.get("nt") for ins in prog.instrs_of(layer) if ins.op == "COMPUTE")


def layer_marks(prog: AccelProgram, image: MemoryImage) -> dict[int, int]:
    """Per op run on the accelerator: the cycle counter its stamp wrote into ``image`` (memory after a run)."""
    out = {}
    for code in prog.layers:
        addr = prog.stamp_at(code.index) if code.count else None
        if addr is not None:
            out[code.index] = int(image.data[addr : addr + 4].view("<u4")[0])
    return out
