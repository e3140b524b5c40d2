"""The accelerator's cost model: replay the instruction stream the code generator emits through a timing model.

For a layer, :func:`tinycompile.fpga.tiling.plan_layer` gives the real tiling and
:func:`tinycompile.fpga.emit.emit_layer` the real instructions (addresses do not change timing). A fluid event model
then runs them: the fetch unit reads ``32 / N`` bus words per instruction and dispatches in order into three queues
(depth 8) whose units run concurrently, ordered by the dependency tokens in the instructions; the fetch, load and
store units share the one memory port (max-min fair shares: the round-robin arbiter), the compute unit issues one
accumulator row per cycle (no bubbles between passes; COMPUTEs back to back, their tokens as their last row lands),
post-processing one row per cycle (3 in residual-add mode), stores one word per cycle (a STORE beside the next
POSTPROC). Per-instruction overheads are read off the units' state machines (rtl_sim/rtl); the cost of a padding
word was fitted to RTL runs (99 layers of four networks at N = 4, 8, 16: every layer within 5.3%, mean 0.9%).

Per-layer figures inside a network (:func:`network_timing`) are attributed the way the RTL measures them: one run
of the whole program, each layer's share the time between its cycle stamp (its last barrier SYNC, rtl_sim/ISA.md)
and the previous one's; the last layer's runs to the end.

Pure Python over the ArchSpec and the Target (no numpy, torch or TVM imports here), cached per layer shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tinycompile.accel.config import AccelConfig
from tinycompile.accel.isa import (
    ADD_PARAM_SETS,
    DEFAULTS,
    INSTR_BYTES,
    PARAM_ROWS_PER_SET,
    QUEUE_COMPUTE,
    QUEUE_DEPTH,
    QUEUE_LOAD,
    QUEUE_STORE,
)
from tinycompile.arch import Layer, Shape
from tinycompile.fpga.emit import emit_layer
from tinycompile.fpga.geometry import Geom, accel_geom, geom_from_hwc
from tinycompile.fpga.schemes import LayerAddrs, LayerQuant
from tinycompile.fpga.tiling import plan_layer
from tinycompile.targets import Target

FETCH_EXTRA = 2  # cycles per instruction beyond its bus beats (last response, dispatch)
# Fixed cycles per instruction beside its data movement / array rows: state-machine entry, drain and exit.
OVERHEAD = {"LOAD": 6, "COMPUTE": 1, "POSTPROC": 9, "POSTPROC_ADD": 14, "STORE": 5, "SYNC": 2}
# A COMPUTE frees its unit as it issues its last row (the next one issues behind it); its tokens follow this many
# cycles later, when that row's accumulator write has landed.
COMPUTE_LATENCY = 5
PARAM_ROW_CYCLES = 1  # the post-processing unit reads its parameter rows first
ADD_ROW_CYCLES = 3  # residual-add mode streams one row per 3 cycles
STORE_CYCLES_PER_WORD = 1
PAD_CYCLES = 1.0  # per padding word (out-of-bounds element): fitted to RTL runs of padded layers


@dataclass(frozen=True)
class LayerTiming:
    """Predicted timing of an instruction stream (one layer, or a program) on the accelerator."""

    cycles: int
    mac_cycles: int  # rows issued to the array (the RTL's MAC-active counter)
    load_words: int  # bus words read for data (in-bounds elements)
    store_words: int
    fetch_words: int
    marks: tuple[int, ...] = ()

    def bytes_moved(self, n: int) -> int:
        """Bytes over the memory port: data loads, stores and instruction fetch."""
        return (self.load_words + self.store_words + self.fetch_words) * n


def _span_in(start: int, count: int, step: int, bound: int) -> tuple[int, int]:
    """The ``i < count`` with ``start + i * step`` in ``[0, bound)``: an interval ``[lo, hi)`` (steps are unsigned)."""
    if step == 0:
        return (0, count) if 0 <= start < bound else (0, 0)
    return max(0, -(start // step)), min(count, -(-(bound - start) // step))


def _in_bounds(f: dict[str, int], n0: int, n1: int, h: int, w: int) -> int:
    """Elements of one loop-2 iteration of an address pattern inside the ``h x w`` bounds (rtl_sim/ISA.md:
    ``y = y0 + i1*sy1 + i0*sy0``, ``x = x0 + i1*sx1 + i0*sx0``)."""
    y0, x0 = f.get("y0", 0), f.get("x0", 0)
    sy0, sx0, sy1, sx1 = (f.get(k, 0) for k in ("sy0", "sx0", "sy1", "sx1"))
    inb = 0
    for i1 in range(n1):
        ylo, yhi = _span_in(y0 + i1 * sy1, n0, sy0, h)
        xlo, xhi = _span_in(x0 + i1 * sx1, n0, sx0, w)
        inb += max(0, min(yhi, xhi) - max(ylo, xlo))
    return inb


def _empty_runs(f: dict[str, int], n1: int, h: int, w: int) -> list[bool]:
    """Per loop-1 iteration, whether its loop-0 run lies wholly out of bounds: the coordinate loop 0 does not step
    is outside its bound (a ``keep`` LOAD passes each such run over in one cycle)."""
    y0, x0 = f.get("y0", 0), f.get("x0", 0)
    sy0, sx0, sy1, sx1 = (f.get(k, 0) for k in ("sy0", "sx0", "sy1", "sx1"))
    return [sy0 == 0 and not 0 <= y0 + i1 * sy1 < h or sx0 == 0 and not 0 <= x0 + i1 * sx1 < w for i1 in range(n1)]


def _counts(ins_op: str, f: dict[str, int]) -> tuple[int, int, int]:
    """Loop counts (n0, n1, n2) of a LOAD's or STORE's address pattern, the assembler's defaults filled in."""
    dflt = DEFAULTS[ins_op]
    return f.get("n0", dflt["n0"]), f.get("n1", dflt["n1"]), f.get("n2", dflt["n2"])


def _work(ins_op: str, f: dict[str, int], n: int) -> tuple[str, float, float, float]:
    """(unit, fixed cycles, port words, cycles per port word) of one instruction."""
    if ins_op in ("LOAD", "STORE"):
        dflt = DEFAULTS[ins_op]
        n0, n1, n2 = _counts(ins_op, f)
        h, w = f.get("h", dflt["h"]), f.get("w", dflt["w"])
        inb = n2 * _in_bounds(f, n0, n1, h, w)
        total = n0 * n1 * n2
        if ins_op == "LOAD":  # padding words: no bus beat
            if f.get("keep"):  # an empty run passes in one cycle; ending on one, no read response to wait for
                empty = _empty_runs(f, n1, h, w)
                skipped = n2 * sum(empty) * (n0 - 1) + int(bool(empty) and empty[-1] and inb > 0)
                return "L", OVERHEAD["LOAD"] + PAD_CYCLES * (total - inb) - skipped, inb, 1.0
            return "L", OVERHEAD["LOAD"] + PAD_CYCLES * (total - inb), inb, 1.0
        return "S", OVERHEAD["STORE"] + STORE_CYCLES_PER_WORD * (total - inb), inb, STORE_CYCLES_PER_WORD
    if ins_op == "COMPUTE":
        passes = f.get("kt", 1) * f.get("nt", 1)
        return "C", OVERHEAD["COMPUTE"] + passes * f.get("m", 1), 0, 1.0
    if ins_op == "POSTPROC":
        add = f.get("add", 0)
        rows = f.get("rows", 1) * (ADD_ROW_CYCLES if add else 1)
        prm = (ADD_PARAM_SETS if add else 1) * PARAM_ROWS_PER_SET * PARAM_ROW_CYCLES
        return "S", OVERHEAD["POSTPROC_ADD" if add else "POSTPROC"] + prm + rows, 0, 1.0
    queue = {QUEUE_LOAD: "L", QUEUE_COMPUTE: "C", QUEUE_STORE: "S"}[f.get("queue", QUEUE_LOAD)]
    # A stamp takes its value as the SYNC retires, then a register cycle and one word through the port.
    stamp = f.get("stamp", 0) if queue == "C" else 0
    return queue, OVERHEAD["SYNC"] + stamp, stamp, 1.0


def _store_unit_may_start(op: str, f: dict[str, int], streaming: list[float] | None, work: list) -> bool:
    """Whether the store queue's head may start beside the STORE still streaming (``streaming``, or None): a
    POSTPROC whose OUT words that STORE does not read, nothing else (the RTL checks the words it has still to read;
    the model, all of them)."""
    if streaming is None:
        return True
    if op != "POSTPROC":
        return False
    sf = work[int(streaming[0])][5]
    n0, n1, n2 = _counts("STORE", sf)
    lo = sf.get("sp_base", 0)
    hi = lo + n0 * n1 * n2
    return f.get("out_base", 0) + f.get("rows", 1) <= lo or f.get("out_base", 0) >= hi


def _push(tokens: dict[str, int], names: tuple, f: dict[str, int]) -> None:
    """Push the tokens an instruction's flags name (``names``: its unit's pop/push counter names)."""
    for k, flag in ((names[2], "push_prev"), (names[3], "push_next")):
        if k and f.get(flag):
            tokens[k] += 1


def _shares(demands: dict[str, float]) -> dict[str, float]:
    """Max-min fair split of one word per cycle among port users with rate caps."""
    left, out = 1.0, {}
    users = sorted(demands, key=lambda u: demands[u])
    for i, u in enumerate(users):
        fair = left / (len(users) - i)
        out[u] = min(demands[u], fair)
        left -= out[u]
    return out


def simulate(instrs: list, n: int, marks: list[int] | None = None, done: bool = False) -> LayerTiming:
    """Run an instruction list (``Instr`` objects, without DONE) through the timing model.

    ``marks``: instruction indices whose completion times are wanted (appended to ``LayerTiming.marks``).
    ``done``: the program ends with DONE, so the run lasts at least until DONE has been fetched too.
    """
    beats = max(1, INSTR_BYTES // n)
    work = [(ins.op, *_work(ins.op, ins.fields, n), ins.fields) for ins in instrs]
    queues: dict[str, list[int]] = {"L": [], "C": [], "S": []}
    tokens = {"L2C": 0, "C2L": 0, "C2S": 0, "S2C": 0}
    # token names per unit: (pop_prev, pop_next, push_prev, push_next)
    names = {"L": (None, "C2L", None, "L2C"), "C": ("L2C", "S2C", "C2L", "C2S"), "S": ("C2S", None, "S2C", None)}
    # [instr, fixed left, words left, cap]; "W" is the store unit's STORE engine, which leaves the queue head to the
    # next POSTPROC while it streams (rtl_sim/ISA.md, LOAD and STORE: timing)
    running: dict[str, list[float] | None] = {"L": None, "C": None, "S": None, "W": None}
    fetch_pc, fetch_left, fetch_wait = 0, float(beats), float(FETCH_EXTRA)
    t = 0.0
    mac = 0
    load_words = store_words = 0
    for op, unit, fixed, words, cap, f in work:
        if op == "COMPUTE":
            mac += f.get("kt", 1) * f.get("nt", 1) * f.get("m", 1)
        elif op == "LOAD":
            load_words += int(words)
        elif op == "STORE":
            store_words += int(words)
    total = len(work)
    completed = 0
    finished = [0.0] * total
    stamped: dict[int, float] = {}  # a stamp's value is the cycle its SYNC retires, before its word is written
    last_dispatch = 0.0
    landing: list[tuple[float, int]] = []  # (time, instr): COMPUTEs whose last row is still in the pipeline
    while completed < total:
        for when, i in [x for x in landing if x[0] <= t + 1e-9]:  # their tokens are pushed as the row lands
            landing.remove((when, i))
            _push(tokens, names["C"], work[i][5])
            finished[i] = when
            completed += 1
        # Start whatever can start: queue head present, unit free, tokens available. A STORE hands the store queue's
        # head on as it starts, so the instruction behind it may start at once.
        for u in ("L", "C", "S", "S"):
            if running[u] is None and queues[u]:
                i = queues[u][0]
                op, f = work[i][0], work[i][5]
                if u == "S" and not _store_unit_may_start(op, f, running["W"], work):
                    continue
                if u == "C" and op != "COMPUTE" and landing:  # a SYNC waits for the pipeline to empty
                    continue
                pp, pn = names[u][0], names[u][1]
                need = [k for k, flag in ((pp, "pop_prev"), (pn, "pop_next")) if k and f.get(flag)]
                if all(tokens[k] > 0 for k in need):
                    for k in need:
                        tokens[k] -= 1
                    _, _, fixed, words, cap, _ = work[i]
                    if op == "STORE":
                        running["W"] = [i, fixed, words, cap]
                        queues[u].pop(0)
                    else:
                        running[u] = [i, fixed, words, cap]
        # Dispatch a fetched instruction if its queue has room.
        if fetch_pc < total and fetch_left <= 0 and fetch_wait <= 0:
            u = work[fetch_pc][1]
            if len(queues[u]) < QUEUE_DEPTH:
                queues[u].append(fetch_pc)
                fetch_pc += 1
                fetch_left, fetch_wait = float(beats), float(FETCH_EXTRA)
                last_dispatch = t
                continue
        # Rates: port users share one word per cycle.
        demands = {}
        if fetch_pc < total and fetch_left > 0:
            demands["F"] = 1.0
        for u in ("L", "C", "S", "W"):
            r = running[u]
            if r is not None and r[1] <= 0 and r[2] > 0:
                demands[u] = 1.0 / r[3]
        share = _shares(demands) if demands else {}
        # Time to the next event.
        dt = float("inf")
        if "F" in share:
            dt = min(dt, fetch_left / share["F"])
        elif fetch_pc < total and fetch_left <= 0 and fetch_wait > 0:
            dt = min(dt, fetch_wait)
        for u in ("L", "C", "S", "W"):
            r = running[u]
            if r is None:
                continue
            if r[1] > 0:
                dt = min(dt, r[1])
            elif r[2] > 0:
                dt = min(dt, r[2] / share[u])
            else:
                dt = 0.0
        if landing:
            dt = min(dt, min(when for when, _ in landing) - t)
        if dt == float("inf"):
            raise RuntimeError("timing model deadlock: the instruction stream's tokens never arrive")
        t += dt
        if "F" in share:
            fetch_left -= dt * share["F"]
            if fetch_left < 1e-9:
                fetch_left = 0.0
        elif fetch_pc < total and fetch_left <= 0 and fetch_wait > 0:
            fetch_wait -= dt
        for u in ("L", "C", "S", "W"):
            r = running[u]
            if r is None:
                continue
            if r[1] > 0:
                r[1] -= dt
                if r[1] < 1e-9:
                    r[1] = 0.0
                    if work[int(r[0])][0] == "SYNC" and work[int(r[0])][3]:  # a stamp: its value, a cycle back
                        stamped[int(r[0])] = t - 1
            elif r[2] > 0:
                r[2] -= dt * share[u]
                if r[2] < 1e-9:
                    r[2] = 0.0
            if r[1] <= 0 and r[2] <= 0:  # finished: leave the queue, push tokens
                i = int(r[0])
                if u != "W":
                    queues[u].pop(0)
                running[u] = None
                if work[i][0] == "COMPUTE":
                    landing.append((t + COMPUTE_LATENCY, i))
                    continue
                _push(tokens, names["S" if u == "W" else u], work[i][5])
                finished[i] = t
                completed += 1
    if done:  # DONE is fetched after the last instruction is dispatched (its beats then compete with nobody)
        t = max(t, last_dispatch + beats + FETCH_EXTRA)
    # A unit's instructions finish in order, but units finish out of order: a mark is done when all before it are.
    upto, latest = [], 0.0
    for i, f_t in enumerate(finished):
        latest = max(latest, stamped.get(i, f_t))
        upto.append(latest)
        latest = max(latest, f_t)
    return LayerTiming(max(1, round(t)), mac, load_words, store_words, total * beats,
                       tuple(round(upto[k]) for k in (marks or [])))


def network_timing(layers: list[list], n: int) -> list[int]:
    """Cycles attributed to each layer of a program made of these layers' instruction lists, back to back.

    Measured like the RTL figures: the whole program runs through the model once, and a layer's share is the time
    from the previous layer's stamp (its last stamped SYNC; without one, its last instruction) to its own; the last
    layer's runs to the end of the run. The fetch unit runs ahead into the next layer, and the next layer's first
    weights load while this one's last stores drain: both overlap this layer's share.
    """
    program: list = []
    marks: list[int | None] = []
    for code in layers:
        program.extend(code)
        stamped = [k for k, ins in enumerate(code) if ins.op == "SYNC" and ins.fields.get("stamp")]
        marks.append(None if not code else len(program) - len(code) + (stamped[-1] if stamped else len(code) - 1))
    if not program:
        return [0] * len(layers)
    timing = simulate(program, n, marks=[m for m in marks if m is not None], done=True)
    ends = list(timing.marks[:-1]) + [timing.cycles]
    out, prev, k = [], 0, 0
    for m in marks:
        if m is None:
            out.append(0)
            continue
        out.append(ends[k] - prev)
        prev = ends[k]
        k += 1
    return out


def _predecessor(n: int) -> Geom:
    """A typical previous layer (a 1x1 convolution over 64 pixels, 2 channel tiles) for layers costed alone."""
    return Geom("conv", 1, 64, 2 * n, 1, 64, 2 * n)


def _instrs(g: Geom, p: AccelConfig, follows: list | None = None) -> list:
    """The layer's instructions at arbitrary addresses and zero points (neither changes timing); ``follows``: the
    code before it in the run (it prefetches its first weights), or None."""
    return emit_layer(g, plan_layer(g, p), p, LayerAddrs(0, 1 << 20, 1 << 21, 1 << 22, 1 << 23), LayerQuant(),
                      follows)


@lru_cache(maxsize=4096)
def layer_timing(g: Geom, p: AccelConfig) -> LayerTiming:
    """Predicted timing of one layer without its network (cached: the search meets the same shapes again and again).

    Its cycles are its share behind a typical predecessor (the fetch unit runs ahead into a layer while the one
    before drains), measured like the RTL figures: program cut after the predecessor vs after this layer.
    """
    own = simulate(_instrs(g, p), p.n)
    pre = _instrs(_predecessor(p.n), p)
    base = simulate(pre, p.n, done=True).cycles
    share = simulate(pre + _instrs(g, p, pre), p.n, done=True).cycles - base
    return LayerTiming(max(1, share), own.mac_cycles, own.load_words, own.store_words, own.fetch_words)


def target_params(target: Target, array: int | None = None) -> AccelConfig:
    """Accelerator sizes of a target (``array`` overrides its ``accelerator.array``)."""
    acc = target.accelerator
    return AccelConfig.for_array(int(array or acc["array"]), acc)


ACCEL_LAYER_OPS = ("conv", "dwconv", "dense", "maxpool", "avgpool", "gap", "add", "flatten")


def fpga_layer_cycles(layer: Layer, in_shape: Shape, out_shape: Shape, macs: int, target: Target) -> float:
    """Cycles of one ArchSpec layer on the accelerator, following the code generator's schedule (0 for the ops of
    imported models that run on the host, which the fpga target does not cost)."""
    p = target_params(target)
    g = layer_geom(layer, in_shape, out_shape, p.n)
    return 0.0 if g is None else float(layer_timing(g, p).cycles)


def layer_geom(layer: Layer, in_shape: Shape, out_shape: Shape, n: int) -> Geom | None:
    """The geometry the code generator emits for one ArchSpec layer on an ``n`` x ``n`` array (packed or trimmed),
    or None for an op the accelerator has no mapping for."""
    if layer.op not in ACCEL_LAYER_OPS:
        return None
    c, h, w = in_shape
    oc, oh, ow = out_shape
    ins = [(h, w, c)] * (2 if layer.op == "add" else 1)
    kernel = (h, w) if layer.op == "gap" else tuple(layer.kernel)
    g = geom_from_hwc(layer.op, ins, (oh, ow, oc), kernel, tuple(layer.stride), tuple(layer.padding), n)  # type: ignore[arg-type]
    return None if g is None else accel_geom(g, layer.inputs == (-1,), n)
