"""The accelerator's one program generator: a layer's tiling -> its instruction stream.

Pure Python over plain integers: :func:`emit_layer` takes byte addresses and returns the instructions, so the code
generator (:mod:`tinycompile.fpga.codegen`, real addresses), the cost model (:mod:`tinycompile.fpga.schedule`, any
addresses) and the RTL tests' programs all run exactly this stream.

Every pass is a double-buffered pipeline of steps (:class:`tinycompile.fpga.tiling.Pass`): the loads of step s
fill INP half s % 2 while step s-1 computes, and the post-processing and store of block b drain ACC half b % 2 while
block b+1 computes. Dependency tokens (rtl_sim/ISA.md section 3) order the three units; a barrier ends every pass.
The barrier is split (cross-layer prefetch): a pass that follows another in the same run loads its first weights
as soon as the previous pass's computes are done, while its last post-processing and stores still drain, and only
its parameters and inputs (which may read what those stores write) wait for the barrier's token.
What a step loads and computes is its scheme's (:mod:`tinycompile.fpga.schemes`).
"""

from __future__ import annotations

from dataclasses import replace

from tinycompile.accel.assembler import Instr
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.isa import (
    ADD_PARAM_SETS,
    ADDRESS_SPACE,
    MAX_COUNT,
    PARAM_WORDS_PER_SET,
    QUEUE_COMPUTE,
    QUEUE_LOAD,
    SP_INP,
    SP_PARAM,
    SP_WGT,
)
from tinycompile.accel.layout import contiguous
from tinycompile.fpga.geometry import Geom
from tinycompile.fpga.schemes import EmitContext, Fields, LayerAddrs, LayerQuant, Step, scheme_for
from tinycompile.fpga.tiling import HALVES, Pass, Tiling, tiling_passes

DRAIN_OVERHEAD = 16  # store-unit cycles per post-processed and stored tile beyond its rows (POSTPROC and STORE)


def barrier(blocks: int, steps: int) -> list[Instr]:
    """Wait for a pass's last stores and drain its leftover tokens, so the next pass or layer starts clean.

    The last ``min(blocks, 2)`` stores pushed store->compute tokens no COMPUTE popped; the compute queue takes them
    (so every store has landed), the last SYNC then pushing one compute->load token, the barrier token. The load
    queue takes the leftover compute->load tokens of the last ``min(steps, 2)`` steps but one; the next pass in the
    run takes that one with its first load (so every compute is done: WGT and INP are free for it) and the barrier
    token with its first load that must wait for the stores (:meth:`LayerEmitter.loads`). At the end of a run
    they stay unused, which is harmless (START clears the counters). Every SYNC costs an instruction fetch, which
    is what small layers wait for, so none is spent on a flag another instruction can carry.
    """
    k = min(blocks, HALVES)
    drain = [Instr("SYNC", {"queue": QUEUE_COMPUTE, "pop_next": 1, "push_prev": int(i == k - 1)}) for i in range(k)]
    collect = [Instr("SYNC", {"queue": QUEUE_LOAD, "pop_next": 1}) for _ in range(min(steps, HALVES) - 1)]
    return drain + collect


def _padded(f: Fields) -> bool:
    """Whether a LOAD's pattern reaches out of its bounds (coordinate steps are unsigned: the extremes are the
    first and the last element)."""
    n0, n1 = f.get("n0", 1), f.get("n1", 1)
    y1 = f.get("y0", 0) + (n1 - 1) * f.get("sy1", 0) + (n0 - 1) * f.get("sy0", 0)
    x1 = f.get("x0", 0) + (n1 - 1) * f.get("sx1", 0) + (n0 - 1) * f.get("sx0", 0)
    return min(f.get("y0", 0), f.get("x0", 0)) < 0 or y1 >= f.get("h", MAX_COUNT) or x1 >= f.get("w", MAX_COUNT)


class LayerEmitter:
    """Emits one layer: per pass the pipelined steps (loads, compute, post-processing and store), then a barrier."""

    def __init__(self, g: Geom, t: Tiling, cfg: AccelConfig, a: LayerAddrs, q: LayerQuant,
                 follows: list[Instr] | None = None) -> None:
        """Choose the layer's scheme; nothing is emitted yet. ``follows``: the code this layer comes after in the
        same run (its barrier token is pending), or None when the layer starts a run."""
        self.ctx = EmitContext(g, t, cfg, a, q)
        self.scheme = scheme_for(self.ctx)
        self.prog: list[Instr] = []
        self.follows = follows
        self.early = 0  # weight pieces of the pass's first step loaded before its barrier token (0 or 1)
        self.pbase = 0  # the pass's first PARAM set
        self.param_early = False  # its parameters load before its barrier token

    def emit(self) -> list[Instr]:
        """The layer's instructions."""
        for ps in tiling_passes(self.ctx.t):
            self.emit_pass(ps)
            self.follows = self.prog  # the next pass follows this one
        return self.prog

    def emit_pass(self, ps: Pass) -> None:
        """One pass in program order per step s: COMPUTE(s), the post-processing and store of the block that finished
        at s-1, the loads of s+1. Units fetch in program order from queues 8 deep, so a compute placed before the
        next step's (possibly many) loads is dispatched in time to overlap them."""
        last_chunk = ps.chunks - 1
        self.place_params(ps)
        self.loads(ps, 0)
        drain = self.drains_per_tile(ps)
        for s in range(len(ps.steps)):
            self.compute(ps, s, drain and s == len(ps.steps) - 1)
            if s >= 1 and ps.steps[s - 1][1] == last_chunk:
                self.store(ps, ps.steps[s - 1][0])
            if s + 1 < len(ps.steps):
                self.loads(ps, s + 1)
        self.store(ps, ps.steps[-1][0], drain)
        self.prog += barrier(len(ps.blocks), len(ps.steps))

    def drains_per_tile(self, ps: Pass) -> bool:
        """The pass's last block computes, post-processes and stores one output tile at a time, so only its last
        tile's post-processing and store follow the array: where the block has tiles to split, and the store unit,
        busy with the block before until about when the array finishes, would otherwise not start them early
        (its post-processing and store rows against the last block's array rows). Never a split first step: its
        parameters may load after its first tiles are computed."""
        last = ps.blocks[-1]
        if last.gn < 2 or len(ps.steps) == 1 and self.split_fill(ps, 0):
            return False
        if len(ps.blocks) == 1:
            return True
        prev, scheme = ps.blocks[-2], self.scheme
        drain = prev.gn * (2 * scheme.acc_rows(prev) + DRAIN_OVERHEAD)
        passes = 2 if self.ctx.g.kind == "add" else self.ctx.t.kt  # array passes over each tile's rows
        return drain < passes * last.gn * scheme.acc_rows(last)

    def step(self, ps: Pass, s: int) -> Step:
        """Step ``s`` of a pass: its block, reduction range and INP half."""
        bi, c = ps.steps[s]
        kc, kt = self.ctx.t.kc, self.ctx.t.kt
        return Step(s, bi, c, ps.blocks[bi], c * kc, min(kt, (c + 1) * kc), (s % HALVES) * self.ctx.half_inp)

    def wgt_half(self, ps: Pass, s: int) -> int:
        """First WGT tile of step ``s``'s weights: halves alternate per chunk, or per group when a group's weights
        fit at once; identity tiles (pools, adds) are loaded once per pass and never overwritten."""
        ctx = self.ctx
        if ctx.pool or ctx.g.kind == "add":
            return 0
        if ps.chunks > 1:
            return (s % HALVES) * ctx.half_wgt
        return (ps.groups[ps.steps[s][0]] % HALVES) * ctx.half_wgt

    def split_fill(self, ps: Pass, s: int) -> bool:
        """The pipeline's first convolution step: weights loaded and computed per output tile, so the array starts
        after one tile's weights instead of the whole group's (each piece pushes its own token)."""
        return s == 0 and self.scheme.fills_per_tile and ps.chunks == 1 and ps.blocks[0].gn > 1

    def param_sets(self, ps: Pass) -> int:
        """PARAM sets the pass uses (one per output tile, three for an add)."""
        return ps.tn * (ADD_PARAM_SETS if self.ctx.g.kind == "add" else 1)

    def place_params(self, ps: Pass) -> None:
        """Put the pass's parameter sets where the previous pass's post-processing, which may still run, does not
        read (above its sets, or below them), so they can load early; set 0 and after the barrier if neither fits."""
        self.pbase, self.param_early = 0, False
        prev = [ins.fields for ins in self.follows or [] if ins.op == "LOAD" and ins.fields.get("sp") == SP_PARAM]
        if not prev:
            return
        lo = prev[-1]["sp_base"] // PARAM_WORDS_PER_SET
        hi = lo + prev[-1]["n0"] // PARAM_WORDS_PER_SET
        need = self.param_sets(ps)
        if hi + need <= self.ctx.cfg.param_sets:
            self.pbase, self.param_early = hi, True
        elif need <= lo:
            self.param_early = True

    def param_load(self, ps: Pass) -> Fields:
        """LOAD fields of the pass's parameter sets, to its first set."""
        n, sets = self.ctx.n, self.param_sets(ps)
        words = PARAM_WORDS_PER_SET * (sets // ps.tn)
        return dict(sp=SP_PARAM, sp_base=self.pbase * PARAM_WORDS_PER_SET, base=self.ctx.a.prm + ps.t0 * words * n,
                    **contiguous(PARAM_WORDS_PER_SET * sets, n))

    def loads(self, ps: Pass, s: int) -> None:
        """The loads of step ``s``: the first waits until the compute two steps back freed its INP half, the last
        tells the compute unit the step is ready. A first step after another pass loads its weights first, before
        the barrier token (they read constants only, into a WGT no compute uses any more)."""
        if self.split_fill(ps, s):
            self.split_loads(ps, s)
            return
        lds = [self.param_load(ps)] if s == 0 else []
        lds += self.keep_padding(ps, s, self.scheme.step_loads(ps, self.step(ps, s), self.wgt_half(ps, s)))
        after = s == 0 and self.follows is not None
        early = [ld for ld in lds if ld["sp"] == SP_WGT or ld["sp"] == SP_PARAM and self.param_early] if after else []
        lds = early + [ld for ld in lds if not any(ld is e for e in early)]
        if after and not early:  # nothing to load early: a SYNC takes the previous pass's last compute token
            self.prog.append(Instr("SYNC", {"queue": QUEUE_LOAD, "pop_next": 1}))
        for i, ld in enumerate(lds):
            # pops: the compute two steps back (its INP half); after another pass, that pass's last compute
            # (first load) and its barrier token (first load after the early ones)
            pop = i == 0 and (s >= HALVES or after and bool(early)) or after and i == len(early)
            self.prog.append(Instr("LOAD", {"pop_next": int(pop), "push_next": int(i == len(lds) - 1), **ld}))

    def keep_padding(self, ps: Pass, s: int, lds: list[Fields]) -> list[Fields]:
        """Mark the step's padded input loads ``keep`` where step s - 2 filled the same INP half with loads that
        differ from them in their memory address only: the padding those wrote is still there (no other
        instruction writes that half in between), so these loads pass it over."""
        if s < HALVES:
            return lds
        before = iter(self.scheme.input_loads(self.step(ps, s - HALVES)))
        out = []
        for ld in lds:
            if ld["sp"] == SP_INP:
                prev = next(before, None)
                same = prev is not None and {**prev, "base": 0} == {**ld, "base": 0}
                ld = {**ld, "keep": 1} if same and _padded(ld) else ld
            out.append(ld)
        return out

    def split_loads(self, ps: Pass, s: int) -> None:
        """The first step's loads with its weights in one piece per output tile: the input, then the pieces, each
        pushing a token; the parameters go before the last piece (only post-processing needs them)."""
        st = self.step(ps, s)
        wb, blk, k = self.wgt_half(ps, s), st.blk, st.k1 - st.k0
        pieces = [self.scheme.weight_tiles(replace(blk, g0=blk.g0 + j, gn=1), st.k0, st.k1, wb + j * k)
                  for j in range(blk.gn)]
        # After another pass the first piece loads before the barrier token (the first compute needs it anyway;
        # more early pieces would share the port with the previous pass's last stores and hold the inputs back).
        # It pushes nothing: the last input load's token covers its compute (a unit's loads finish in order).
        self.early = int(self.follows is not None)
        inputs, param = self.scheme.input_loads(st), [(self.param_load(ps), 0)]
        order = [(ld, 0) for ld in pieces[:self.early]]
        after = len(order)  # the first load that waits for the barrier token: the inputs'
        order += [(ld, int(self.early > 0 and i == len(inputs) - 1)) for i, ld in enumerate(inputs)]
        rest = pieces[self.early:]
        order += [(ld, 1) for ld in rest[:-1]] + param + [(ld, 1) for ld in rest[-1:]]
        for i, (ld, push) in enumerate(order):
            pop = int(self.follows is not None and i in (0, after))  # the last compute token, the barrier token
            self.prog.append(Instr("LOAD", {"pop_next": pop, "push_next": push, **ld}))

    def compute(self, ps: Pass, s: int, per_tile: bool = False) -> None:
        """The COMPUTEs of step ``s``: the first takes the loads' token (and, starting a block two or more into the
        pass, the token of the block that used its ACC half: see :meth:`store`); the last hands INP back and, at a
        block's last chunk, its accumulators on to post-processing: one token for all its output tiles (a split
        first step loads the parameters before its last weight piece only, so its first tiles' post-processing must
        not start early), or with ``per_tile`` one per tile, each tile's parts in turn."""
        ctx, st = self.ctx, self.step(ps, s)
        blk = st.blk
        m, ab, wb = self.scheme.acc_rows(blk), (st.bi % HALVES) * ctx.half_acc, self.wgt_half(ps, s)
        first_wait, last = int(st.c == 0 and st.bi >= HALVES), int(st.c == ps.chunks - 1)
        parts, nt = self.scheme.parts(st, wb, ab, m), blk.gn
        split = self.split_fill(ps, s)  # one part per output tile, each waiting for its weight piece
        per = len(parts)
        ends = {per - 1}
        if split or per_tile:  # tile j of every part: the bases moved as the COMPUTE's own n loop moves them
            parts = [{**f, "inp_base": f["inp_base"] + j * f.get("inp_nt_stride", 0),
                      "wgt_base": f["wgt_base"] + j * (1 if f.get("wfix") else f.get("kt", 1)),
                      "acc_base": f["acc_base"] + j * m} for j in range(nt) for f in parts]
            ends = {j * per + per - 1 for j in range(nt)} if per_tile else {len(parts) - 1}
            nt = 1
        for i, f in enumerate(parts):
            self.prog.append(Instr("COMPUTE", {
                "pop_prev": int(i == 0 or split and i >= self.early), "pop_next": first_wait if i == 0 else 0,
                "push_prev": int(i == len(parts) - 1), "push_next": last if i in ends else 0,
                "max": int(ctx.g.kind == "maxpool"), "m": m, "nt": nt, **f}))

    def store(self, ps: Pass, bi: int, per_tile: bool = False) -> None:
        """Post-process every output tile of block ``bi`` (the first waits for its accumulators), then store it.
        The last post-processing frees the ACC half for the block two later (OUT is double-buffered too, and the
        store unit keeps a POSTPROC off OUT words a STORE has still to read); the pass's last two blocks free it
        with their stores instead, which the barrier waits for. ``per_tile``: each tile waits for its own
        accumulators and is stored on its own."""
        blk = ps.blocks[bi]
        m, ab, ob = self.scheme.acc_rows(blk), (bi % HALVES) * self.ctx.half_acc, (bi % HALVES) * self.ctx.half_out
        st = self.scheme.store(blk)
        st["sp_base"] += ob
        freed = bi < len(ps.blocks) - HALVES  # by the post-processing, not the store
        for j in range(blk.gn):
            f = self.scheme.postproc(blk, j, ab, m, ps.t0)
            self.prog.append(Instr("POSTPROC", {"pop_prev": int(j == 0 or per_tile), **f,
                                                "push_prev": int(freed and j == blk.gn - 1),
                                                "pset": f["pset"] + self.pbase, "out_base": f["out_base"] + ob}))
            if per_tile:  # tile j's words follow tile j - 1's in OUT; in memory it is the next channel tile
                self.prog.append(Instr("STORE", {**st, "push_prev": int(j == blk.gn - 1), "n2": 1,
                                                 "base": (st["base"] + j * st["d2"]) % ADDRESS_SPACE,
                                                 "sp_base": st["sp_base"] + j * st["n1"] * st["n0"]}))
        if not per_tile:
            self.prog.append(Instr("STORE", {"push_prev": int(not freed), **st}))


def emit_layer(g: Geom, t: Tiling, cfg: AccelConfig, a: LayerAddrs, q: LayerQuant,
               follows: list[Instr] | None = None) -> list[Instr]:
    """The instruction stream of one layer (every pass ends with a barrier, so layers can be cut between).

    ``follows``: the code of the layer before it in the same run (its barrier token pending: this layer prefetches
    its first weights), or None for a layer a run starts at."""
    return LayerEmitter(g, t, cfg, a, q, follows).emit()
