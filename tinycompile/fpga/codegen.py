"""Accelerator code generation: a QuantGraph's ops -> weight/parameter layouts, one instruction stream, a memory image.

Memory image layout (byte addresses, every block aligned to 64): weight tiles and parameter sets of every layer,
then every activation tensor (NHWC, channels padded to N; ``flatten`` is a view of its source), then the program.
Each op keeps its own output buffer, so every layer's output can be compared with the integer reference after a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinycompile.accel.assembler import Instr, MemoryImage, assemble
from tinycompile.accel.isa import INSTR_BYTES
from tinycompile.errors import UserError
from tinycompile.fpga.plan import (
    IDENTITY_MULT,
    AccelParams,
    Geom,
    LayerAddrs,
    Tiling,
    accel_geom,
    cpad,
    emit_layer,
    geom_from_hwc,
    plan_layer,
    sweep_geom,
    tap_major,
    window_chunks,
)
from tinycompile.quant.graph import QOp, QuantGraph

IMAGE_ALIGN = 4096  # the image handed to the simulator is cut to a multiple of this


@dataclass(frozen=True)
class TensorLoc:
    """An activation in external memory: NHWC with ``cpad(c)`` bytes per pixel."""

    addr: int
    h: int
    w: int
    c: int


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
    """How the host writes a packed network input (see ``plan.pack_input``): ``rows`` x ``p`` pixels per word."""

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

    params: AccelParams
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

    def done_at(self, layer: int) -> int:
        """Byte address of the first instruction after op ``layer`` (where a DONE cuts the program after it)."""
        code = next(c for c in self.layers if c.index == layer)
        return self.prog_addr + (code.first + code.count) * INSTR_BYTES


def write_tensor(img: MemoryImage, t: TensorLoc, x: np.ndarray) -> None:
    """Write an int8 ``(h, w, c)`` array with its channels padded to N (padding bytes are zero)."""
    xp = np.zeros((t.h, t.w, cpad(t.c, img.n)), np.int8)
    xp[:, :, : t.c] = np.asarray(x, dtype=np.int8).reshape(t.h, t.w, t.c)
    img.write(t.addr, xp)


def read_tensor(img: MemoryImage, t: TensorLoc) -> np.ndarray:
    """Read an int8 ``(h, w, c)`` array back (padding channels dropped)."""
    raw = img.read(t.addr, t.h * t.w * cpad(t.c, img.n)).view(np.int8)
    return raw.reshape(t.h, t.w, -1)[:, :, : t.c].copy()


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


def _param_blob(n: int, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(tiles, 3, N) int32: bias, multiplier, shift rows per output tile (padding channels zero)."""
    c = len(bias)
    cp = cpad(c, n)
    blob = np.zeros((cp // n, 3, n), np.int64)
    for row, arr in enumerate((bias, mult, shift)):
        full = np.zeros(cp, np.int64)
        full[:c] = np.broadcast_to(np.asarray(arr, np.int64), (c,))
        blob[:, row, :] = full.reshape(-1, n)
    if blob.min() < -(2**31) or blob.max() >= 2**31:
        raise OverflowError("a folded bias does not fit int32")
    return blob.astype(np.int32)


def _diag_tiles(n: int, taps: int, vals: np.ndarray) -> np.ndarray:
    """(tiles, taps, N, N) diagonal tiles from per-tap per-channel values ``(taps, C)``."""
    c = vals.shape[1]
    nt = cpad(c, n) // n
    tiles = np.zeros((nt, taps, n, n), np.int8)
    full = np.zeros((taps, nt * n), np.int64)
    full[:, :c] = vals
    r = np.arange(n)
    for j in range(nt):
        tiles[j, :, r, r] = full[:, j * n : (j + 1) * n].T
    return tiles


def _window_tiles(n: int, g: Geom, vals: np.ndarray) -> np.ndarray:
    """(tiles, KH * chunks, N, N) window-mode tiles from per-tap values ``(KH * KW, C)``: row r holds tap hi - 1 - r."""
    c, qn = vals.shape[1], window_chunks(g, n)
    nt = cpad(c, n) // n
    full = np.zeros((g.kh, g.kw, nt * n), np.int64)
    full[:, :, :c] = vals.reshape(g.kh, g.kw, c)
    tiles = np.zeros((nt, g.kh * qn, n, n), np.int8)
    for ky in range(g.kh):
        for q in range(qn):
            hi = min(g.kw, (q + 1) * n)
            for kx in range(q * n, hi):
                tiles[:, ky * qn + q, hi - 1 - kx, :] = full[ky, kx].reshape(nt, n)
    return tiles


def _tap_tiles(n: int, g: Geom, t: Tiling, vals: np.ndarray) -> np.ndarray:
    """Depthwise / pooling tiles from per-tap per-channel values ``(taps, C)`` in the tiling's scheme."""
    if not t.window:
        return _diag_tiles(n, g.taps, vals)
    if t.transposed:  # taps in (kx, ky) order for the swapped geometry
        vals = vals.reshape(g.kh, g.kw, -1).transpose(1, 0, 2).reshape(g.taps, -1)
    return _window_tiles(n, sweep_geom(g, t), vals)


def _conv_weight(op: QOp, g: Geom) -> np.ndarray:
    """(KH, KW, I, O) weights of a conv or dense in ``g``'s shape (packed: ``dy x dx`` taps share one input word)."""
    w = op.tensors["weight"]
    if (g.dx, g.dy) == (1, 1):
        if op.op == "dense":  # a window over the whole (flattened) input
            return w.reshape(len(w), g.kh, g.kw, g.c).transpose(1, 2, 3, 0)
        return _kept_taps(w.reshape(len(w), *op.kernel, g.c).transpose(1, 2, 3, 0), g)
    (kh0, kw0), c0 = op.kernel, op.in_shapes[0][2]
    w4 = w.reshape(len(w), kh0, kw0, c0).transpose(1, 2, 3, 0)
    out = np.zeros((g.kh, g.kw, g.c, g.co), np.int8)
    for ky in range(kh0):
        for kx in range(kw0):
            (qy, ty), (qx, tx) = divmod(ky, g.dy), divmod(kx, g.dx)
            slot = (ty * g.dx + tx) * c0
            out[qy, qx, slot : slot + c0] = w4[ky, kx]
    return out


def _kept_taps(w: np.ndarray, g: Geom) -> np.ndarray:
    """The kernel rows and columns ``g`` keeps of a ``(KH, KW, ...)`` weight (see ``plan.trim_dead_taps``)."""
    return w[g.ky0 : g.ky0 + g.kh, g.kx0 : g.kx0 + g.kw]


def _constants(op: QOp, g: Geom, t: Tiling, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Weight tiles and parameter blob of one op, in the layouts the accelerator reads (see ``plan.tap_major``)."""
    tiles, blob = _constants_tile_major(op, g, t, n)
    if tap_major(g):
        tiles = np.ascontiguousarray(tiles.transpose(1, 0, 2, 3))  # (taps, tiles, N, N)
    return tiles, blob


def _constants_tile_major(op: QOp, g: Geom, tiling: Tiling, n: int) -> tuple[np.ndarray, np.ndarray]:
    zp_in = op.in_q[0].zero_point
    t = op.tensors
    if g.kind == "conv":
        w4 = _conv_weight(op, g)  # (KH, KW, I, O)
        cb, nt = cpad(g.c, n) // n, cpad(g.co, n) // n
        wp = np.zeros((g.kh, g.kw, cb * n, nt * n), np.int8)
        wp[:, :, : g.c, : g.co] = w4
        tiles = wp.reshape(g.taps * cb, n, nt, n).transpose(2, 0, 1, 3)
        bias = t["bias"].astype(np.int64) - zp_in * w4.astype(np.int64).reshape(-1, g.co).sum(axis=0)
        return np.ascontiguousarray(tiles), _param_blob(n, bias, t["multiplier"], t["shift"])
    if g.kind == "dw":
        w = _kept_taps(t["weight"].astype(np.int64).reshape(*op.kernel, g.c), g).reshape(g.taps, g.c)
        bias = t["bias"].astype(np.int64) - zp_in * w.sum(axis=0)
        return _tap_tiles(n, g, tiling, w), _param_blob(n, bias, t["multiplier"], t["shift"])
    ones = np.ones((g.taps, g.c), np.int64)
    if g.kind == "maxpool":
        # The array passes max(x) through identity tiles; subtracting zp_in then adding zp_out (= zp_in) is exact.
        return _diag_tiles(n, 1, ones[:1]), _param_blob(n, np.full(g.c, -zp_in), IDENTITY_MULT, 0)
    if g.kind == "avgpool":
        tiles = _tap_tiles(n, g, tiling, ones) if tiling.window else _diag_tiles(n, 1, ones[:1])
        return tiles, _param_blob(n, np.full(g.c, -zp_in * g.taps), t["multiplier"][0], t["shift"][0])
    # add: identity tiles; parameter sets (a, b, out) per tile, see rtl_sim/ISA.md section 5
    eye = _diag_tiles(n, 1, np.ones((1, g.c), np.int64))[:, 0]
    zp_b = op.in_q[1].zero_point
    sets = [_param_blob(n, np.full(g.c, bias), t["multiplier"][k], t["shift"][k])
            for k, bias in enumerate((-zp_in, -zp_b, 0))]
    return eye, np.stack(sets, axis=1)  # (tiles, 3 sets, 3 rows, N)


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


def compile_graph(graph: QuantGraph, p: AccelParams, mem_bytes: int, ops: set[int] | None = None) -> AccelProgram:
    """Lay out constants and tensors, emit every op's instructions, and assemble the program into one image.

    ``ops``: compile only these ops (one accelerator segment of a network whose other ops run on the host); the
    tensors they read from outside become inputs the host writes (``AccelProgram.inputs``).
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
        tiles, blob = _constants(op, g, tiling, n)
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
    instrs: list[Instr] = []
    layers: list[LayerCode] = []
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
        code = emit_layer(g, tiling, p, LayerAddrs(src.addr, out.addr, wgt, prm, b), op.in_q[0].zero_point,
                          op.out_q.zero_point, op.lo, op.hi, lshift=int(op.params.get("left_shift", 0)),
                          single=single_rounding(op))
        layers.append(LayerCode(i, op.op, g, tiling, len(instrs), len(code), out))
        instrs.extend(code)
    instrs.append(Instr("DONE"))
    prog_addr = _place(f"the program ({len(instrs)} instructions)", mem_bytes, img.put, np.frombuffer(assemble(instrs), np.uint8))
    size = -(-img.top // IMAGE_ALIGN) * IMAGE_ALIGN
    trimmed = MemoryImage(n, size)
    trimmed.data[:] = img.data[:size]
    trimmed.top = img.top
    return AccelProgram(p, trimmed, prog_addr, instrs, layers, inputs.get(-1), [i for i, (g, *_) in enumerate(plans) if g],
                        pack, inputs)


def cut_after(prog: AccelProgram, layer: int, img: MemoryImage) -> None:
    """Write DONE after ``layer`` in ``img`` so a run stops there (layers end with a barrier, so this is safe)."""
    blob = np.frombuffer(assemble([Instr("DONE")]), np.uint8)
    img.write(prog.done_at(layer), blob)
