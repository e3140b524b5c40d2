"""The accelerator's instruction set as one table (see ``rtl_sim/ISA.md`` for the semantics).

Every instruction is 256 bits, stored little-endian as 32 bytes. Bits [3:0] are the opcode and
bits [7:4] the dependency flags (pop_prev, pop_next, push_prev, push_next); the remaining fields
depend on the opcode and are listed in :data:`FIELDS` as ``name: (lsb, width, signed)``.

This table is the one source of the encodings: the RTL reads them from ``rtl_sim/rtl/tc_pkg.sv``,
which :mod:`tinycompile.accel.svpkg` generates from it (``python -m tinycompile.accel.svpkg``).
"""

from __future__ import annotations

INSTR_BITS = 256
INSTR_BYTES = INSTR_BITS // 8

OPCODES: dict[str, int] = {
    "LOAD": 1,
    "COMPUTE": 2,
    "POSTPROC": 3,
    "STORE": 4,
    "SYNC": 5,
    "DONE": 6,
}
OPNAMES: dict[int, str] = {v: k for k, v in OPCODES.items()}

# Queues: which unit executes an opcode (SYNC names its queue in the ``queue`` field).
QUEUE_LOAD, QUEUE_COMPUTE, QUEUE_STORE = 0, 1, 2
QUEUE_OF = {"LOAD": QUEUE_LOAD, "COMPUTE": QUEUE_COMPUTE, "POSTPROC": QUEUE_STORE, "STORE": QUEUE_STORE}
QUEUE_DEPTH = 8  # instructions per unit queue (tc_accel ``QueueDepth``): the fetch unit blocks on a full one

# LOAD targets.
SP_INP, SP_WGT, SP_PARAM = 0, 1, 2

ACC_LANE_BYTES = 4  # an accumulator lane is int32

ADDRESS_SPACE = 1 << 32  # byte addresses (``base``) wrap modulo 2^32

# Error codes in the status register, bits [7:4]: by name (the RTL's ``Err*`` constants) and their meaning.
ERROR_CODE_BITS = 4
ERROR_NAMES: dict[str, int] = {"NONE": 0, "OPCODE": 1, "SP_RANGE": 2, "ALIGN": 3, "FIELD": 4, "TOKEN": 5}
ERRORS: dict[int, str] = {
    0: "none",
    1: "illegal opcode",
    2: "scratchpad address out of range",
    3: "misaligned memory address or stride",
    4: "illegal field value",
    5: "dependency token counter overflow",
}

# Dependency flags, bits 4..7 of every instruction in this order (section 3 of rtl_sim/ISA.md); the fields every
# opcode has.
TOKEN_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")
COMMON_FIELDS: dict[str, tuple[int, int, bool]] = {
    "op": (0, 4, False), **{flag: (4 + i, 1, False) for i, flag in enumerate(TOKEN_FLAGS)}}

# The address pattern shared by LOAD and STORE.
PATTERN_FIELDS: dict[str, tuple[int, int, bool]] = {
    "sp": (8, 2, False),
    "sp_base": (16, 16, False),
    "base": (32, 32, False),
    "n0": (64, 12, False),
    "n1": (76, 12, False),
    "n2": (88, 12, False),
    "d0": (100, 20, True),
    "d1": (120, 20, True),
    "d2": (140, 20, True),
    "y0": (160, 12, True),
    "x0": (172, 12, True),
    "sy0": (184, 4, False),
    "sx0": (188, 4, False),
    "sy1": (192, 4, False),
    "sx1": (196, 4, False),
    "h": (200, 12, False),
    "w": (212, 12, False),
    "pad": (224, 8, True),
}

FIELDS: dict[str, dict[str, tuple[int, int, bool]]] = {
    # keep: out-of-bounds elements are not written (INP keeps the padding an earlier LOAD wrote), and a loop-0 run
    # whose fixed coordinate is out of bounds is passed over in one cycle (rtl_sim/ISA.md, LOAD and STORE)
    "LOAD": {**COMMON_FIELDS, **PATTERN_FIELDS, "keep": (10, 1, False)},
    "STORE": {**COMMON_FIELDS, **PATTERN_FIELDS},
    "COMPUTE": {
        **COMMON_FIELDS,
        "init": (8, 1, False),
        "max": (9, 1, False),
        "win": (10, 1, False),
        "wfix": (11, 1, False),
        "inp_base": (16, 16, False),
        "wgt_base": (32, 16, False),
        "acc_base": (48, 16, False),
        "m": (64, 16, False),
        "kt": (80, 12, False),
        "nt": (92, 12, False),
        "inp_nt_stride": (104, 16, False),
        # window mode's kernel rows side by side: array row r = g * wg + d reads INP read port g (at the pass's
        # address + g * wstride), d words back; wg = 0 means N (one group: port 0 alone, row r r words back)
        "wg": (120, 5, False),
        "wstride": (128, 16, False),
    },
    "POSTPROC": {
        **COMMON_FIELDS,
        "add": (8, 1, False),
        "single": (9, 1, False),  # single rounding (TFLite's fully connected); normal mode only
        "acc_a": (16, 16, False),
        "acc_b": (32, 16, False),
        "out_base": (48, 16, False),
        "rows": (64, 16, False),
        "pset": (80, 12, False),
        "zp": (92, 8, True),
        "lo": (100, 8, True),
        "hi": (108, 8, True),
        "lshift": (116, 5, False),
    },
    # stamp (compute queue): once its tokens are taken, write the cycle counter to the word at ``base`` (the
    # per-layer cycle log); the low log2(N) bits of ``base`` are ignored.
    "SYNC": {**COMMON_FIELDS, "queue": (8, 2, False), "stamp": (10, 1, False), "base": (32, 32, False)},
    "DONE": dict(COMMON_FIELDS),
}


def field_max(op: str, name: str) -> int:
    """The largest value field ``name`` of ``op`` can hold (what a compiler must keep counts and strides below)."""
    _, width, signed = FIELDS[op][name]
    return (1 << (width - 1)) - 1 if signed else (1 << width) - 1


MAX_COUNT = field_max("LOAD", "n0")  # 12-bit loop counts and pixel bounds of the address generator
MAX_STRIDE = field_max("LOAD", "d0")  # 20-bit signed byte strides
MAX_PIXEL_STEP = field_max("LOAD", "sy0")  # 4-bit coordinate steps
MAX_M = field_max("COMPUTE", "m")  # 16-bit rows per COMPUTE pass
MAX_NT_STRIDE = field_max("COMPUTE", "inp_nt_stride")  # 16-bit INP words between the n tiles of a COMPUTE

# Defaults applied by the assembler when a field is omitted (bounds at their largest: every element in bounds).
DEFAULTS: dict[str, dict[str, int]] = {
    "LOAD": {"n0": 1, "n1": 1, "n2": 1, "h": MAX_COUNT, "w": MAX_COUNT},
    "STORE": {"n0": 1, "n1": 1, "n2": 1, "h": MAX_COUNT, "w": MAX_COUNT},
    "COMPUTE": {"m": 1, "kt": 1, "nt": 1, "init": 1},
    "POSTPROC": {"rows": 1, "lo": -128, "hi": 127},
}

# Post-processing parameter set: three rows of N int32 (bias, multiplier, shift); a row is 4 N-byte PARAM words.
PARAM_ROWS_PER_SET = 3
PARAM_WORDS_PER_ROW = 4
PARAM_WORDS_PER_SET = PARAM_ROWS_PER_SET * PARAM_WORDS_PER_ROW
ADD_PARAM_SETS = 3  # POSTPROC add mode reads sets P (input a), P + 1 (input b), P + 2 (the sum)
