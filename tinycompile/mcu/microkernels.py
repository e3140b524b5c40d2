"""Hand-scheduled register tiles for Arm cores with the DSP extension, as TVM tensor intrinsics.

A pointwise convolution's tile of 2 pixels x 4 output channels over its whole reduction keeps 8 accumulators, the
two pixels' input words and two weight words in registers: 14 registers, every one the core has free. For an
unrolled TIR body LLVM's register allocator does not find that assignment (it keeps weights and accumulators on the
stack), so the instruction order is written out here (:func:`pointwise_tile_asm`) and reaches the compiler as inline
assembly: for TVM's LLVM codegen an LLVM IR function imported with ``pragma_import_llvm`` (TVM inlines what it
imports), for its C codegen a C function imported with ``pragma_import_c`` (GCC's inline assembly on a core with the
DSP extension, portable C elsewhere: a host build of the library).

The tile reads the pixels' inputs as pairs of sign-extended halfwords (``xe``: SXTB16 of each input word, bytes
(0, 2) then (1, 3)) and the weights in ``packing.pointwise_weight``'s layout, and each SMLAD does two
multiply-accumulates. Two instruction orders (``ScheduleChoices.pointwise_loads``): ``pairs`` loads two words per
LDRD (the fewest instructions; a Cortex-M4 spends 3 cycles on one, as on two single loads back to back);
``interleaved`` loads the weights one word at a time, each after a multiply-accumulate it can issue beside on a
dual-issue core (Cortex-M7), where an LDRD issues alone.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

PIXELS, CHANNELS = 2, 4  # the register tile: output pixels x output channels
LOAD_ORDERS = ("pairs", "interleaved")
MAX_OFFSET = 4095  # the largest immediate offset of a Thumb-2 word load


def _acc(p: int, c: int) -> str:
    return f"{{A{p * CHANNELS + c}}}"


def pointwise_tile_asm(groups: int, order: str) -> list[str]:
    """The tile's instructions over ``groups`` groups of four input channels, with operand fields ``{A0}``..``{A7}``
    (accumulator of pixel p, channel c: ``A{4p + c}``), ``{X0} {X1} {W0} {W1}`` (scratch) and the pointers ``{XE}``
    (the pixels' expanded inputs, ``(groups, 2, 2)`` words: group, half, pixel) and ``{WP}`` (the tile's weights,
    ``(groups, 2, 4)`` words: group, half, channel). Raises ValueError when an offset exceeds a load's immediate."""
    if order not in LOAD_ORDERS:
        raise ValueError(f"unknown load order {order!r}; known: {', '.join(LOAD_ORDERS)}")
    if groups * 2 * CHANNELS * 4 - 4 > MAX_OFFSET:
        raise ValueError(f"{groups} groups of four channels exceed the loads' immediate offsets")

    def w(c: int, g: int, a: int) -> int:
        return ((g * 2 + a) * CHANNELS + c) * 4

    def mac(c: int, reg: int) -> list[str]:
        return [f"smlad {_acc(p, c)}, {{X{p}}}, {{W{reg}}}, {_acc(p, c)}" for p in range(PIXELS)]

    lines: list[str] = []
    for g in range(groups):
        for a in range(2):
            xs = f"ldrd {{X0}}, {{X1}}, [{{XE}}, #{(g * 2 + a) * PIXELS * 4}]"
            if order == "pairs":  # both pixels' words, then two channels' weights, in one LDRD each
                lines += [xs, f"ldrd {{W0}}, {{W1}}, [{{WP}}, #{w(0, g, a)}]", *mac(0, 0), *mac(1, 1),
                          f"ldrd {{W0}}, {{W1}}, [{{WP}}, #{w(2, g, a)}]", *mac(2, 0), *mac(3, 1)]
            else:  # a weight load after each channel's second MAC (it issues beside it), read two MACs later
                lines += [xs, f"ldr {{W0}}, [{{WP}}, #{w(0, g, a)}]", f"ldr {{W1}}, [{{WP}}, #{w(1, g, a)}]",
                          *mac(0, 0), f"ldr {{W0}}, [{{WP}}, #{w(2, g, a)}]", *mac(1, 1),
                          f"ldr {{W1}}, [{{WP}}, #{w(3, g, a)}]", *mac(2, 0), *mac(3, 1)]
    return lines


_NAMES = [f"A{i}" for i in range(PIXELS * CHANNELS)] + ["X0", "X1", "W0", "W1"]


def llvm_ir(name: str, lines: list[str]) -> str:
    """An LLVM IR function ``void name(i32* acc, i32* xe, i16* w)`` running ``lines`` on the eight accumulators."""
    n = len(_NAMES)
    fields = {k: f"${i}" for i, k in enumerate(_NAMES)} | {"XE": f"${n + 8}", "WP": f"${n + 9}"}
    text = "\\0A\\09".join(line.format(**fields) for line in lines)
    # accumulators read and written in place (tied to inputs 0-7), scratch early-clobbered (apart from the inputs)
    cons = ",".join(["=r"] * 8 + ["=&r"] * (n - 8) + [str(i) for i in range(8)] + ["r", "r", "~{memory}"])
    ret = "{ " + ", ".join(["i32"] * n) + " }"
    body = [f"define void @{name}(ptr %acc, ptr %xe, ptr %w) #0 {{", "entry:"]
    for i in range(8):
        body += [f"  %p{i} = getelementptr inbounds i32, ptr %acc, i32 {i}", f"  %v{i} = load i32, ptr %p{i}, align 4"]
    args = ", ".join([f"i32 %v{i}" for i in range(8)] + ["ptr %xe", "ptr %w"])
    body.append(f'  %r = call {ret} asm sideeffect "{text}", "{cons}"({args})')
    for i in range(8):
        body += [f"  %o{i} = extractvalue {ret} %r, {i}", f"  store i32 %o{i}, ptr %p{i}, align 4"]
    body += ["  ret void", "}", "attributes #0 = { alwaysinline nounwind }"]
    return "\n".join(body) + "\n"


def c_source(name: str, lines: list[str], groups: int) -> str:
    """The same function in C: GCC's inline assembly where the DSP extension is, else portable C with its results."""
    fields = {k: f"%[{k}]" for k in _NAMES} | {"XE": "%[XE]", "WP": "%[WP]"}
    text = "\\n\\t".join(line.format(**fields) for line in lines)
    outs = ", ".join([f'[A{i}] "+r" (c{i})' for i in range(8)] + [f'[{k}] "=&r" (t{k})' for k in _NAMES[8:]])
    guard = f"TC_{name.upper()}"
    return f"""#ifndef {guard}
#define {guard}
static inline __attribute__((always_inline)) void {name}(int32_t* acc, const int32_t* xe, const int16_t* w) {{
#if defined(__ARM_FEATURE_DSP) && defined(__thumb2__)
  int32_t {", ".join(f"c{i} = acc[{i}]" for i in range(8))};
  int32_t {", ".join(f"t{k}" for k in _NAMES[8:])};
  __asm__ volatile("{text}" : {outs} : [XE] "r" (xe), [WP] "r" (w) : "memory");
  {" ".join(f"acc[{i}] = c{i};" for i in range(8))}
#else
  for (int p = 0; p < {PIXELS}; ++p)
    for (int c = 0; c < {CHANNELS}; ++c)
      for (int g = 0; g < {groups}; ++g)
        for (int a = 0; a < 2; ++a) {{
          int32_t v = xe[(g * 2 + a) * {PIXELS} + p];
          const int16_t* k = w + ((g * 2 + a) * {CHANNELS} + c) * 2;
          acc[p * {CHANNELS} + c] += (int32_t)(int16_t)(v & 0xFFFF) * k[0] + (v >> 16) * k[1];
        }}
#endif
}}
#endif
"""


def pointwise_tile(groups: int, flavour: str, order: str) -> str:
    """The name of a registered tensor intrinsic for the tile over ``groups`` groups of four input channels;
    ``flavour``: "llvm" or "c" (the codegen), ``order``: the load order (``LOAD_ORDERS``)."""
    name = f"tc_pw{PIXELS}x{CHANNELS}_g{groups}_{order}"
    lines = pointwise_tile_asm(groups, order)
    key, code = ("pragma_import_llvm", llvm_ir(name, lines)) if flavour == "llvm" else (
        "pragma_import_c", c_source(name, lines, groups))

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
