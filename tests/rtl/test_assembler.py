"""Assembler / disassembler round trips and field range checks (pure Python)."""

from __future__ import annotations

import pytest

from tinycompile.accel.assembler import Instr, assemble, decode, disassemble, encode, format_instr
from tinycompile.accel.isa import FIELDS, INSTR_BITS


def test_round_trip_every_field_extreme() -> None:
    """Each field at its minimum and maximum survives encode/decode, and fields never overlap."""
    for op, table in FIELDS.items():
        used = 0
        for name, (lsb, width, signed) in table.items():
            mask = ((1 << width) - 1) << lsb
            assert used & mask == 0, (op, name)
            assert lsb + width <= INSTR_BITS
            used |= mask
            if name == "op":
                continue
            for v in ((-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)):
                assert decode(encode(Instr(op, {name: v}))).fields[name] == v


def test_program_disassembles_back() -> None:
    """A program's binary disassembles to the same instructions, stopping at DONE."""
    prog = [Instr("LOAD", {"sp": 1, "base": 4096, "n0": 7, "d0": -8, "y0": -2, "pad": -5}),
            Instr("COMPUTE", {"m": 64, "kt": 36, "nt": 4, "max": 1}),
            Instr("POSTPROC", {"add": 1, "rows": 3, "zp": -128, "lshift": 20}),
            Instr("SYNC", {"queue": 2, "pop_prev": 1}), Instr("DONE")]
    back = disassemble(assemble(prog) + bytes(32))
    assert [(i.op, {k: v for k, v in i.fields.items() if v}) for i in back] == \
        [(i.op, {k: i.get(k) for k in FIELDS[i.op] if k != "op" and i.get(k)}) for i in prog]


def test_out_of_range_field_is_rejected() -> None:
    """The assembler refuses values that do not fit their field."""
    with pytest.raises(ValueError, match="COMPUTE.kt"):
        encode(Instr("COMPUTE", {"kt": 4096}))


def test_postproc_single_is_bit_9() -> None:
    """POSTPROC ``single`` (single rounding) is instruction bit 9, as rtl_sim/ISA.md and tc_postproc decode it."""
    assert encode(Instr("POSTPROC", {"single": 1})) == encode(Instr("POSTPROC")) | 1 << 9
    back = disassemble(assemble([Instr("POSTPROC", {"single": 1, "rows": 4}), Instr("DONE")]))
    assert back[0].fields["single"] == 1 and back[0].fields["add"] == 0
    assert "single=1" in format_instr(back[0])
