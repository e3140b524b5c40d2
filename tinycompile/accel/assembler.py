"""Assemble accelerator instructions into binary, disassemble them, and lay out memory images."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinycompile.accel.isa import DEFAULTS, FIELDS, INSTR_BYTES, OPCODES, OPNAMES


@dataclass
class Instr:
    """One instruction: an opcode name and its fields (omitted fields take :data:`isa.DEFAULTS`)."""

    op: str
    fields: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> int:
        """Return a field's value, falling back to the default, then 0."""
        return self.fields.get(name, DEFAULTS.get(self.op, {}).get(name, 0))


def encode(ins: Instr) -> int:
    """Encode one instruction as a 256-bit integer."""
    if ins.op not in FIELDS:
        raise ValueError(f"opcode must be one of {sorted(FIELDS)}, but got op={ins.op!r}")
    table = FIELDS[ins.op]
    unknown = set(ins.fields) - set(table)
    if unknown:
        raise ValueError(f"fields must belong to {ins.op}, but got unknown={sorted(unknown)}")
    word = OPCODES[ins.op]
    for name, (lsb, width, signed) in table.items():
        if name == "op":
            continue
        value = ins.get(name)
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        if not lo <= value <= hi:
            raise ValueError(f"{ins.op}.{name} must lie in [{lo}, {hi}], but got {value}")
        word |= (value & ((1 << width) - 1)) << lsb
    return word


def decode(word: int) -> Instr:
    """Decode a 256-bit integer into an :class:`Instr` (raises on an unknown opcode)."""
    opcode = word & 0xF
    if opcode not in OPNAMES:
        raise ValueError(f"opcode must be one of {sorted(OPNAMES)}, but got opcode={opcode}")
    op = OPNAMES[opcode]
    out: dict[str, int] = {}
    for name, (lsb, width, signed) in FIELDS[op].items():
        if name == "op":
            continue
        value = (word >> lsb) & ((1 << width) - 1)
        if signed and value >> (width - 1):
            value -= 1 << width
        out[name] = value
    return Instr(op, out)


def assemble(program: list[Instr]) -> bytes:
    """Encode a program (it should end with DONE) into little-endian bytes."""
    return b"".join(encode(ins).to_bytes(INSTR_BYTES, "little") for ins in program)


def disassemble(blob: bytes) -> list[Instr]:
    """Decode a binary program back into instructions (stops after DONE)."""
    program = []
    for off in range(0, len(blob) - INSTR_BYTES + 1, INSTR_BYTES):
        ins = decode(int.from_bytes(blob[off : off + INSTR_BYTES], "little"))
        program.append(ins)
        if ins.op == "DONE":
            break
    return program


def format_instr(ins: Instr) -> str:
    """One line of assembly text, non-zero fields only."""
    args = ", ".join(f"{k}={v}" for k, v in ins.fields.items() if v)
    return f"{ins.op:<8} {args}"


class MemoryImage:
    """A flat external-memory image with a bump allocator whose blocks are aligned to the bus width."""

    def __init__(self, n: int, size: int = 1 << 20) -> None:
        """Create an image of ``size`` bytes for an accelerator with an ``n`` x ``n`` array."""
        self.n = n
        self.data = np.zeros(size, dtype=np.uint8)
        self.top = 0

    def alloc(self, nbytes: int, align: int = 64) -> int:
        """Reserve ``nbytes`` and return the byte address."""
        align = max(align, self.n)
        addr = -(-self.top // align) * align
        if addr + nbytes > self.data.size:
            raise ValueError(f"image must hold {addr + nbytes} bytes, but has size={self.data.size}")
        self.top = addr + nbytes
        return addr

    def put(self, arr: np.ndarray, align: int = 64) -> int:
        """Copy an array (raw bytes, C order) into fresh space and return its byte address."""
        raw = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
        addr = self.alloc(raw.size, align)
        self.data[addr : addr + raw.size] = raw
        return addr

    def write(self, addr: int, arr: np.ndarray) -> None:
        """Copy an array's raw bytes to ``addr``."""
        raw = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
        self.data[addr : addr + raw.size] = raw

    def read(self, addr: int, nbytes: int) -> np.ndarray:
        """Return a copy of ``nbytes`` raw bytes at ``addr``."""
        return self.data[addr : addr + nbytes].copy()

    def to_hex(self, path: str, nbytes: int | None = None) -> None:
        """Write ``$readmemh`` text: one N-byte little-endian word per line."""
        used = self.data[: nbytes if nbytes is not None else self.data.size]
        words = used.reshape(-1, self.n)[:, ::-1]  # most significant byte first in the text
        text = words.tobytes().hex()
        width = 2 * self.n
        with open(path, "w") as f:
            f.write("\n".join(text[i : i + width] for i in range(0, len(text), width)))
            f.write("\n")

    def from_hex(self, path: str) -> None:
        """Read a ``$writememh`` dump back into the image."""
        lines = [ln.strip() for ln in open(path) if ln.strip() and not ln.startswith("//")]
        raw = bytes.fromhex("".join(lines))
        words = np.frombuffer(raw, dtype=np.uint8).reshape(-1, self.n)[:, ::-1].reshape(-1)
        k = min(words.size, self.data.size)
        self.data[:k] = words[:k]
