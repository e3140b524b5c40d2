"""Hand-scheduled register tiles for Arm cores with the DSP extension, as TVM tensor intrinsics.

A 1x1 convolution's tile of 2 output pixels x 4 output channels over its whole reduction keeps 8 accumulators, two
input words and two weight words in registers, with the two pointers: 14 registers, every one the core has free.
For an unrolled TIR body LLVM's register allocator does not find that assignment (it keeps weights and accumulators
on the stack), so the instruction order is written out here (:func:`pointwise_tile_asm`) and reaches the compiler as
inline assembly: for TVM's LLVM codegen an LLVM IR function imported with ``pragma_import_llvm`` (TVM inlines what
it imports), for its C codegen a C function imported with ``pragma_import_c`` (GCC's inline assembly on a core with
the DSP extension, portable C elsewhere: a host build of the library).

Each weight word serves both pixels and each input word four channels. The tile reads the pixels' inputs as pairs of
sign-extended halfwords (``xe``: SXTB16 of each input word, bytes (0, 2) then (1, 3)) and the weights in
``packing.pointwise_weight_array``'s layout; each SMLAD does two multiply-accumulates. Two instruction orders
(``ScheduleChoices.pointwise_loads``): ``pairs`` loads two words per LDRD (the fewest instructions; a Cortex-M4
spends 3 cycles on one, as on two single loads back to back); ``interleaved`` loads the weights one word at a time,
each after a multiply-accumulate it can issue beside on a dual-issue core (Cortex-M7), where an LDRD issues alone.
Offsets are immediates; where one outgrows its load's range the pointer register is advanced (ADD), so the pointers
are read-write operands.
"""

from __future__ import annotations

from functools import lru_cache

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

PIXELS, CHANNELS = 2, 4  # the register tile: output pixels x output channels
LOAD_ORDERS = ("pairs", "interleaved")
LDR_MAX, LDRD_MAX, ADD_MAX = 4095, 1020, 4095  # Thumb-2 immediates: LDR offset, LDRD offset, ADDW
_ACC = [f"A{i}" for i in range(PIXELS * CHANNELS)]
_SCRATCH = ["X0", "X1", "W0", "W1"]
_POINTERS = ["P0", "P1"]  # the expanded inputs and the weights


def _acc(p: int, c: int) -> str:
    return f"{{A{p * CHANNELS + c}}}"


class _Emitter:
    """Instructions with immediate offsets from the two pointers, each advanced where an offset outgrows its range."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.base = {ptr: 0 for ptr in _POINTERS}

    def load(self, regs: tuple[str, ...], ptr: str, offset: int) -> None:
        """``ldr`` (one register) or ``ldrd`` (two) from byte ``offset`` past the pointer's first value, which
        advances to it where the offset is out of the load's range (offsets only grow along a pointer)."""
        limit = LDRD_MAX if len(regs) == 2 else LDR_MAX
        step = offset - self.base[ptr]
        if step < 0:
            raise ValueError("the tile's offsets must not decrease along a pointer")
        while step > limit:
            d = min(step, ADD_MAX)
            self.lines.append(f"add {{{ptr}}}, {{{ptr}}}, #{d}")
            self.base[ptr] += d
            step -= d
        names = ", ".join(f"{{{r}}}" for r in regs)
        self.lines.append(f"{'ldrd' if len(regs) == 2 else 'ldr'} {names}, [{{{ptr}}}, #{step}]")

    def op(self, text: str) -> None:
        self.lines.append(text)


def pointwise_tile_asm(groups: int, order: str) -> list[str]:
    """The pointwise tile's instructions over ``groups`` groups of four input channels, with operand fields
    ``{A0}``..``{A7}`` (accumulator of pixel p, channel c: ``A{4p + c}``), ``{X0} {X1} {W0} {W1}`` (scratch) and the
    pointers ``{P0}`` (the pixels' expanded inputs, ``(groups, 2, 2)`` words: group, half, pixel) and ``{P1}`` (the
    tile's weights, ``(groups, 2, 4)`` words: group, half, channel)."""
    if order not in LOAD_ORDERS:
        raise ValueError(f"unknown load order {order!r}; known: {', '.join(LOAD_ORDERS)}")
    e = _Emitter()

    def w(c: int, g: int, a: int) -> int:
        return ((g * 2 + a) * CHANNELS + c) * 4

    def mac(c: int, reg: int) -> None:
        for p in range(PIXELS):
            e.op(f"smlad {_acc(p, c)}, {{X{p}}}, {{W{reg}}}, {_acc(p, c)}")

    for g in range(groups):
        for a in range(2):
            e.load(("X0", "X1"), "P0", (g * 2 + a) * PIXELS * 4)
            if order == "pairs":  # both pixels' words, then two channels' weights, in one LDRD each
                e.load(("W0", "W1"), "P1", w(0, g, a))
                mac(0, 0)
                mac(1, 1)
                e.load(("W0", "W1"), "P1", w(2, g, a))
                mac(2, 0)
                mac(3, 1)
            else:  # a weight load after each channel's second MAC (it issues beside it), read two MACs later
                e.load(("W0",), "P1", w(0, g, a))
                e.load(("W1",), "P1", w(1, g, a))
                mac(0, 0)
                e.load(("W0",), "P1", w(2, g, a))
                mac(1, 1)
                e.load(("W1",), "P1", w(3, g, a))
                mac(2, 0)
                mac(3, 1)
    return e.lines


def _moves_pointers(lines: list[str]) -> bool:
    """Whether the instructions advance a pointer (then a read-write operand, else an input)."""
    return any(line.startswith("add ") for line in lines)


def llvm_ir(name: str, lines: list[str]) -> str:
    """An LLVM IR function ``void name(i32* acc, ptr p0, ptr p1)`` running ``lines`` on the accumulators."""
    moved = _moves_pointers(lines)
    outs = _ACC + _SCRATCH + (_POINTERS if moved else [])
    n_acc, n_out = len(_ACC), len(outs)
    fields = {k: f"${i}" for i, k in enumerate(outs)}
    if not moved:  # inputs after the outputs and the accumulators' tied inputs
        fields |= {k: f"${n_out + n_acc + i}" for i, k in enumerate(_POINTERS)}
    text = "\\0A\\09".join(line.format(**fields) for line in lines)
    # accumulators (and moved pointers) read and written in place, tied to their inputs; the scratch early-clobbered
    cons = ",".join(["=r"] * n_acc + ["=&r"] * len(_SCRATCH) + ["=r"] * (n_out - n_acc - len(_SCRATCH))
                    + [str(i) for i in range(n_acc)] + ([str(n_out - 2), str(n_out - 1)] if moved else ["r", "r"])
                    + ["~{memory}"])
    ret = "{ " + ", ".join(["i32"] * (n_acc + len(_SCRATCH)) + ["ptr"] * (n_out - n_acc - len(_SCRATCH))) + " }"
    body = [f"define void @{name}(ptr %acc, ptr %p0, ptr %p1) #0 {{", "entry:"]
    for i in range(n_acc):
        body += [f"  %a{i} = getelementptr inbounds i32, ptr %acc, i32 {i}", f"  %v{i} = load i32, ptr %a{i}, align 4"]
    args = ", ".join([f"i32 %v{i}" for i in range(n_acc)] + ["ptr %p0", "ptr %p1"])
    body.append(f'  %r = call {ret} asm sideeffect "{text}", "{cons}"({args})')
    for i in range(n_acc):
        body += [f"  %o{i} = extractvalue {ret} %r, {i}", f"  store i32 %o{i}, ptr %a{i}, align 4"]
    body += ["  ret void", "}", "attributes #0 = { alwaysinline nounwind }"]
    return "\n".join(body) + "\n"


def c_source(name: str, lines: list[str], portable: str) -> str:
    """The same function in C: GCC's inline assembly where the DSP extension is, else ``portable`` (C statements on
    ``acc``, ``p0`` and ``p1`` with the same results)."""
    fields = {k: f"%[{k}]" for k in _ACC + _SCRATCH + _POINTERS}
    text = "\\n\\t".join(line.format(**fields) for line in lines)
    moved = _moves_pointers(lines)
    pointers = [f'[{k}] "{"+" if moved else ""}r" (q{k})' for k in _POINTERS]
    outs = [f'[A{i}] "+r" (c{i})' for i in range(len(_ACC))] + [f'[{k}] "=&r" (t{k})' for k in _SCRATCH]
    outs, ins = (outs + pointers, []) if moved else (outs, pointers)
    guard = f"TC_{name.upper()}"
    return f"""#ifndef {guard}
#define {guard}
static inline __attribute__((always_inline)) void {name}(int32_t* acc, const int32_t* p0, const int16_t* p1) {{
#if defined(__ARM_FEATURE_DSP) && defined(__thumb2__)
  int32_t {", ".join(f"c{i} = acc[{i}]" for i in range(len(_ACC)))};
  int32_t {", ".join(f"t{k}" for k in _SCRATCH)};
  const void* qP0 = p0;
  const void* qP1 = p1;
  __asm__ volatile("{text}" : {", ".join(outs)} : {", ".join(ins)} : "memory");
  {" ".join(f"acc[{i}] = c{i};" for i in range(len(_ACC)))}
#else
{portable}
#endif
}}
#endif
"""


@lru_cache(maxsize=None)
def pointwise_tile(groups: int, flavour: str, order: str) -> str:
    """The name of a registered tensor intrinsic for the pointwise tile over ``groups`` groups of four input
    channels; ``flavour``: "llvm" or "c" (the codegen), ``order``: the load order (``LOAD_ORDERS``). Registered once
    per process."""
    name = f"tc_pw{PIXELS}x{CHANNELS}_g{groups}_{order}"
    portable = f"""  const int32_t* xe = p0;
  for (int p = 0; p < {PIXELS}; ++p)
    for (int c = 0; c < {CHANNELS}; ++c)
      for (int g = 0; g < {groups}; ++g)
        for (int a = 0; a < 2; ++a) {{
          int32_t v = xe[(g * 2 + a) * {PIXELS} + p];
          const int16_t* k = p1 + ((g * 2 + a) * {CHANNELS} + c) * 2;
          acc[p * {CHANNELS} + c] += (int32_t)(int16_t)(v & 0xFFFF) * k[0] + (v >> 16) * k[1];
        }}"""
    lines = pointwise_tile_asm(groups, order)
    key, code = ("pragma_import_llvm", llvm_ir(name, lines)) if flavour == "llvm" else (
        "pragma_import_c", c_source(name, lines, portable))

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (1, groups, 2, PIXELS), "int32", offset_factor=1)
        B = T.match_buffer(b, (1, 1, 1, groups, 2, CHANNELS, 2), "int16", offset_factor=1)
        C = T.match_buffer(c, (PIXELS, CHANNELS), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:PIXELS, 0:CHANNELS], A[0, 0:groups, 0:2, 0:PIXELS], B[0, 0, 0, 0:groups, 0:2, 0:CHANNELS, 0:2])
            T.writes(C[0:PIXELS, 0:CHANNELS])
            for p, o, g, a_, b_ in T.grid(PIXELS, CHANNELS, groups, 2, 2):
                with T.sblock("update"):
                    vp, vo, vg, va, vb = T.axis.remap("SSRRR", [p, o, g, a_, b_])
                    C[vp, vo] = C[vp, vo] + T.Select(
                        vb == 0, T.shift_right(T.shift_left(A[0, vg, va, vp], 16), 16),
                        T.shift_right(A[0, vg, va, vp], 16)) * T.Cast("int32", B[0, 0, 0, vg, va, vo, vb])

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (1, groups, 2, PIXELS), "int32", offset_factor=1)
        B = T.match_buffer(b, (1, 1, 1, groups, 2, CHANNELS, 2), "int16", offset_factor=1)
        C = T.match_buffer(c, (PIXELS, CHANNELS), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:PIXELS, 0:CHANNELS], A[0, 0:groups, 0:2, 0:PIXELS], B[0, 0, 0, 0:groups, 0:2, 0:CHANNELS, 0:2])
            T.writes(C[0:PIXELS, 0:CHANNELS])
            with T.attr(0, key, code):
                T.evaluate(T.call_extern("int32", name, C.access_ptr("rw"), A.access_ptr("r"), B.access_ptr("r")))

    intrin = f"tinycompile_{name}_{flavour}"
    TensorIntrin.register(intrin, desc, impl, override=True)
    return intrin
