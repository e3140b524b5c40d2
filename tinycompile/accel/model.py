"""Cycle-free numpy model of the ISA: runs a memory image in program order, bit-exact with the RTL.

Dependency tokens only order the hardware units; a correctly synchronised program gives the same
memory contents when executed sequentially, which is what this model does. It raises
:class:`AccelError` with the RTL's error code where the hardware would stop.
"""

from __future__ import annotations

import numpy as np

from tinycompile.accel.assembler import Instr, MemoryImage, decode, encode
from tinycompile.accel.isa import (
    ADD_PARAM_SETS,
    ADDRESS_SPACE,
    INSTR_BYTES,
    OPNAMES,
    PARAM_ROWS_PER_SET,
    QUEUE_STORE,
    SP_PARAM,
)
from tinycompile.accel.config import AccelConfig
from tinycompile.quant.intmath import requantize, requantize_to_int8


class AccelError(RuntimeError):
    """The accelerator would stop with error ``code`` (see ``isa.ERRORS``)."""

    def __init__(self, code: int, msg: str) -> None:
        """Record the error code and message."""
        super().__init__(f"error {code}: {msg}")
        self.code = code


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, dtype=np.int64) + 2**31) % 2**32) - 2**31


def pattern_reads(ins: Instr) -> list[int]:
    """Byte addresses a LOAD reads from memory (its in-bounds elements), in order."""
    f = decode(encode(ins)).fields
    return [addr for addr, inb in _pattern(f) if inb]


def _pattern(f: dict[str, int]):
    """Yield (byte address, in bounds) for a LOAD/STORE pattern, in sequence order."""
    for addr, inb, _ in _elements(f):
        yield addr, inb


def _elements(f: dict[str, int]):
    """Yield (byte address, in bounds, passed over) per element; passed over: not the first of an empty run, a
    loop-0 run whose coordinate that loop 0 does not step is out of bounds (a ``keep`` LOAD visits only its
    first element)."""
    for i2 in range(f["n2"]):
        for i1 in range(f["n1"]):
            y1, x1 = f["y0"] + i1 * f["sy1"], f["x0"] + i1 * f["sx1"]
            empty = f["sy0"] == 0 and not 0 <= y1 < f["h"] or f["sx0"] == 0 and not 0 <= x1 < f["w"]
            for i0 in range(f["n0"]):
                addr = (f["base"] + i2 * f["d2"] + i1 * f["d1"] + i0 * f["d0"]) % ADDRESS_SPACE
                y, x = y1 + i0 * f["sy0"], x1 + i0 * f["sx0"]
                yield addr, (0 <= y < f["h"] and 0 <= x < f["w"]), empty and i0 > 0


def _window(inp: np.ndarray, w: np.ndarray, ia: int, m: int, wg: int, stride: int, cfg: AccelConfig) -> np.ndarray:
    """Window mode's products for rows ``ia .. ia + m - 1``: array row ``r = g * wg + d`` sees read port g's word
    ``d`` rows back, ``INP[ia + g * stride + i - d]`` (zero before the pass start; no port g past the last: zero)."""
    n = cfg.n
    wg = n if wg == 0 or wg > n else wg
    p = np.zeros((m, n), np.int64)
    for r in range(n):
        g, d = divmod(r, wg)
        if g >= cfg.inp_ports:
            break
        a = ia + g * stride
        if g and a + m > cfg.inp_depth:
            raise AccelError(2, "compute scratchpad address out of range (window read port)")
        if d < m:
            p[d:] += inp[a : a + m - d].astype(np.int64) * w[r]
    return p


def run_model(image: MemoryImage, prog_addr: int, cfg: AccelConfig, max_instrs: int = 1_000_000) -> MemoryImage:
    """Execute the program at ``prog_addr``; return a new image holding memory after the run."""
    n = cfg.n
    mem = MemoryImage(n, image.data.size)
    mem.data[:] = image.data
    inp = np.zeros((cfg.inp_depth, n), np.int8)
    wgt = np.zeros((cfg.wgt_tiles * n, n), np.int8)
    prm = np.zeros((cfg.param_sets * PARAM_ROWS_PER_SET, n), np.int32)
    acc = np.zeros((cfg.acc_depth, n), np.int64)
    out = np.zeros((cfg.out_depth, n), np.int8)
    pc = prog_addr
    for _ in range(max_instrs):
        word = int.from_bytes(mem.data[pc : pc + INSTR_BYTES].tobytes(), "little")
        if word & 0xF not in OPNAMES:
            raise AccelError(1, f"illegal opcode {word & 0xF} at {pc:#x}")
        ins = decode(word)
        f, op = ins.fields, ins.op
        pc += INSTR_BYTES
        if op == "DONE":
            return mem
        if op == "SYNC":
            if f["queue"] > QUEUE_STORE:
                raise AccelError(4, f"SYNC queue {f['queue']}")
            continue  # a stamp writes a cycle count, which this model has none of: its log word is left as it was
        if op in ("LOAD", "STORE"):
            if any(v % n for v in (f["base"], f["d0"], f["d1"], f["d2"])):
                raise AccelError(3, f"misaligned pattern at {pc - INSTR_BYTES:#x}")
            if op == "LOAD":
                if f["sp"] > SP_PARAM:
                    raise AccelError(4, f"LOAD sp {f['sp']}")
                target = (inp, wgt, prm.view(np.int8).reshape(-1, n))[f["sp"]]
                for k, (addr, inb, passed) in enumerate(_elements(f)):
                    sp = f["sp_base"] + k
                    # keep: out-of-bounds words stay as they are, and only visited words are range-checked
                    if sp >= target.shape[0] and not (f["keep"] and passed):
                        raise AccelError(2, "load scratchpad address out of range")
                    if inb:
                        target[sp] = mem.data[addr : addr + n].view(np.int8)
                    elif not f["keep"]:
                        target[sp] = f["pad"]
            else:
                for k, (addr, inb) in enumerate(_pattern(f)):
                    sp = f["sp_base"] + k
                    if sp >= cfg.out_depth:
                        raise AccelError(2, "store scratchpad address out of range")
                    if inb:
                        mem.data[addr : addr + n] = out[sp].view(np.uint8)
        elif op == "COMPUTE":
            m, kt, nt = f["m"], f["kt"], f["nt"]
            for t in range(nt * kt):
                j, k = divmod(t, kt)
                ia = f["inp_base"] + j * f["inp_nt_stride"] + k * m
                wa = f["wgt_base"] + (j if f["wfix"] else t)
                aa = f["acc_base"] + j * m
                if ia + m > cfg.inp_depth or wa >= cfg.wgt_tiles or aa + m > cfg.acc_depth:
                    raise AccelError(2, "compute scratchpad address out of range")
                w = wgt[wa * n : wa * n + n].astype(np.int64)
                if f["win"]:
                    p = _window(inp, w, ia, m, f["wg"], f["wstride"], cfg)
                else:
                    p = inp[ia : ia + m].astype(np.int64) @ w
                if f["init"] and k == 0:
                    acc[aa : aa + m] = p
                elif f["max"]:
                    acc[aa : aa + m] = np.maximum(acc[aa : aa + m], p)
                else:
                    acc[aa : aa + m] = _wrap32(acc[aa : aa + m] + p)
        elif op == "POSTPROC":
            rows, ps = f["rows"], f["pset"]
            rows_of = PARAM_ROWS_PER_SET
            if rows_of * (ps + (ADD_PARAM_SETS if f["add"] else 1)) > prm.shape[0]:
                raise AccelError(2, "parameter set out of range")
            b, mu, sh = (prm[rows_of * ps + r].astype(np.int64) for r in range(rows_of))
            a_rows = acc[f["acc_a"] : f["acc_a"] + rows]
            if f["out_base"] + rows > cfg.out_depth or f["acc_a"] + rows > cfg.acc_depth:
                raise AccelError(2, "postproc scratchpad address out of range")
            ls = f["lshift"]
            if not f["add"]:
                t = _wrap32(_wrap32(a_rows + b) << ls)
                res = requantize_to_int8(t, mu, sh & 31, f["zp"], f["lo"], f["hi"], single=bool(f["single"]))
            else:  # add mode ignores ``single``: all three requantizations round twice
                if f["acc_b"] + rows > cfg.acc_depth:
                    raise AccelError(2, "postproc scratchpad address out of range")
                b2, mu2, sh2 = (prm[rows_of * (ps + 1) + r].astype(np.int64) for r in range(rows_of))
                b3, mu3, sh3 = (prm[rows_of * (ps + 2) + r].astype(np.int64) for r in range(rows_of))
                ra = requantize(_wrap32(_wrap32(a_rows + b) << ls), mu, sh & 31)
                rb_rows = acc[f["acc_b"] : f["acc_b"] + rows]
                rb = requantize(_wrap32(_wrap32(rb_rows + b2) << ls), mu2, sh2 & 31)
                res = requantize_to_int8(_wrap32(_wrap32(ra + rb) + b3), mu3, sh3 & 31, f["zp"], f["lo"], f["hi"])
            out[f["out_base"] : f["out_base"] + rows] = res
    raise AccelError(0, "instruction limit reached without DONE")
