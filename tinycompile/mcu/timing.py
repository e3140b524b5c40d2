"""Estimated cycles of an executed instruction stream (:mod:`tinycompile.mcu.trace`) with a per-core timing table.

QEMU counts instructions, not cycles. This model prices each executed instruction by its class with the ``timing:``
section of the target's YAML (from Arm's Technical Reference Manuals where Arm publishes instruction timings, the
Cortex-M4's table 3-1 and its load/store pipelining rules; an approximation elsewhere: the file says which), then
adds what the order of instructions costs:

* ``pipelined_loads``: a load or store right after a single load is that much cheaper (the Cortex-M4 overlaps the
  first's data phase with the second's address phase), unless its address uses the loaded register;
* ``address_stall``: a load or store whose address register the instruction before it (data processing) wrote;
* ``load_use_stall``: an instruction that reads the register the load before it wrote;
* ``dual_issue``: the fraction of the second instruction's cycles saved when two neighbours can issue together
  (first an ALU, load, store or multiply, second an ALU, load, store or branch; not two memory accesses, not two
  multiplies, no register dependence) -- the Cortex-M7's two issue slots, approximately;
* ``mve_overlap``: a Helium (MVE) memory instruction next to an MVE computation overlaps by that much (beat-wise
  execution on the dual-beat Cortex-M55);
* ``taken_branch``: every control transfer (the next executed block does not start where this one ends: a taken
  branch, a return, a load of the pc) refills the pipeline; ``loop_end_taken`` for Armv8.1-M's LE instead;
* ``memory``: instruction fetch from flash with wait states, through a small LRU instruction cache (``cache_lines``
  lines of ``line_bytes``, ``ways`` of them per set: fully associative unless it says); a missed line costs
  ``wait_states`` cycles, ``sequential_miss`` when it is the line after the previous one (the prefetcher fetched it
  while the previous ran). Data loads are taken to hit, unless:
* ``data_cache``: a direct-mapped data cache (:mod:`tinycompile.mcu.dcache`), priced from the run's recorded data
  addresses (:mod:`tinycompile.mcu.memtrace`): ``miss`` cycles per load whose line is not in it.

For in-order RISC-V pipelines with bypasses (VexRiscv):

* ``result_latency``: per class, the cycles from an instruction's issue to the first issue that can use its result
  (a load's 3 on a 5-stage pipeline that returns load data in write-back: a stall of 2 right after it, 1 one
  instruction later); a register scoreboard over the piece;
* ``store_after_store``: a store right after a store waits that much for the memory port (write-through);
* ``store_load_stall``: a load of a word that a store at most ``store_load_window`` instructions before it wrote
  (same base register, not rewritten since, and the same word offset) is replayed at that cost;
* ``mispredicted`` (static prediction: backward conditional branches and JAL predicted taken in decode, JALR never):
  a wrongly predicted transfer costs that much, ``predicted_taken`` a rightly predicted taken one, and
  ``halfword_target`` more when execution goes on at an address that is 2 mod 4 (its first instruction straddles or
  ends a fetch word); ``taken_branch`` is then unused.

Everything is per executed piece of a block: the per-instruction rules never look across a block boundary.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinycompile.errors import UserError
from tinycompile.mcu.dcache import DataCache, kernel_misses
from tinycompile.mcu.trace import Insn, Trace

THUMB_CLASSES = ("alu", "mul", "mac", "div", "load", "store", "load_pair", "store_pair", "load_multiple",
                 "store_multiple", "branch", "table_branch", "loop_start", "loop_end", "it", "barrier", "fp", "fp_div",
                 "mve", "mve_memory")  # fmt: skip
RISCV_CLASSES = ("alu", "shift", "mul", "div", "load", "store", "branch")
CLASSES = {"thumb": THUMB_CLASSES, "riscv": RISCV_CLASSES}
RULES = ("per_register", "taken_branch", "loop_end_taken", "pipelined_loads", "address_stall", "load_use_stall",
         "dual_issue", "mve_overlap", "store_after_store", "store_load_stall", "store_load_window", "predicted_taken",
         "mispredicted", "halfword_target")  # fmt: skip
MEMORY_KEYS = ("wait_states", "line_bytes", "cache_lines", "sequential_miss")
MEMORY_OPTIONAL = ("ways",)
_SINGLE_MEM = frozenset({"load", "store"})
_MEM = frozenset({"load", "store", "load_pair", "store_pair", "load_multiple", "store_multiple"})
_LOADS = frozenset({"load", "load_pair", "load_multiple"})
_DATA = frozenset({"alu", "mul", "mac", "div"})
_MULS = frozenset({"mul", "mac", "div"})
_DUAL_FIRST = frozenset({"alu", "load", "store", "mul", "mac"})
_DUAL_SECOND = frozenset({"alu", "load", "store", "branch"})
_MVE = frozenset({"mve", "mve_memory"})
_CONDS = frozenset("eq ne cs hs cc lo mi pl vs vc hi ls ge lt gt le al".split())
_REG = re.compile(r"\b(r1[0-5]|r[0-9]|sb|sl|fp|ip|sp|lr|pc)\b")
_ALIAS = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "sp": "r13", "lr": "r14", "pc": "r15"}
_RV_LOADS = frozenset("lb lh lw lbu lhu flw c.lw c.lwsp".split())
_RV_STORES = frozenset("sb sh sw fsw c.sw c.swsp".split())
_RV_MUL = frozenset("mul mulh mulhsu mulhu".split())
_RV_DIV = frozenset("div divu rem remu".split())
_RV_COND = frozenset("beq bne blt bge bltu bgeu beqz bnez blez bgez bltz bgtz bgt ble bgtu bleu c.beqz c.bnez".split())
_RV_JAL = frozenset("j jal call tail c.j c.jal".split())
_RV_JALR = frozenset("jr jalr ret c.jr c.jalr".split())
_RV_BRANCH = _RV_COND | _RV_JAL | _RV_JALR
_RV_SHIFT = frozenset("sll srl sra slli srli srai c.slli c.srli c.srai".split())
_RV_REG = re.compile(r"\b(zero|ra|sp|gp|tp|fp|t[0-6]|s[0-9]|s1[01]|a[0-7])\b")
_RV_MEM = re.compile(r"(-?\d+)\((\w+)\)")
_RV_NUMBER = re.compile(r"(-?(?:0x[0-9a-f]+|\d+))\s*$")


@dataclass(frozen=True)
class Memory:
    """Instruction fetch from flash: wait states per missed line of a small LRU instruction cache."""

    wait_states: float
    line_bytes: int
    cache_lines: int
    sequential_miss: float
    ways: int = 0  # lines per set; 0: one set (fully associative)


@dataclass(frozen=True)
class TimingModel:
    """One core's timing table (a target YAML's ``timing:``)."""

    isa: str
    cycles: dict[str, float]
    per_register: float = 1.0
    taken_branch: float = 2.0
    loop_end_taken: float = 0.0
    pipelined_loads: float = 0.0
    address_stall: float = 0.0
    load_use_stall: float = 0.0
    dual_issue: float = 0.0
    mve_overlap: float = 0.0
    store_after_store: float = 0.0
    store_load_stall: float = 0.0
    store_load_window: float = 0.0
    predicted_taken: float = 0.0
    mispredicted: float | None = None  # None: no static prediction (every transfer costs taken_branch)
    halfword_target: float = 0.0
    result_latency: dict[str, float] = field(default_factory=dict)
    memory: Memory | None = None
    data_cache: DataCache | None = None  # priced only with the run's data addresses (estimate's ``accesses``)

    @classmethod
    def from_section(cls, section: Any, path: Path | str) -> TimingModel:
        """The model of a ``timing:`` section; UserError naming ``path`` and the key for a bad one."""
        if not isinstance(section, dict):
            raise UserError(f"{path}: key 'timing' must be a mapping")
        known = {"isa", "cycles", "memory", "data_cache", "source", "result_latency", *RULES}
        unknown = sorted(set(section) - known)
        if unknown:
            raise UserError(f"{path}: unknown key(s) timing.{', timing.'.join(unknown)} (known: {', '.join(sorted(known))})")
        isa = section.get("isa")
        if isa not in CLASSES:
            raise UserError(f"{path}: key 'timing.isa' must be one of {', '.join(CLASSES)}, but got {isa!r}")
        table = section.get("cycles")
        if not isinstance(table, dict):
            raise UserError(f"{path}: key 'timing.cycles' must be a mapping of instruction class -> cycles")
        extra = sorted(set(table) - set(CLASSES[isa]))
        if extra:
            raise UserError(f"{path}: unknown instruction class(es) timing.cycles.{', timing.cycles.'.join(extra)} "
                            f"(the {isa} classes: {', '.join(CLASSES[isa])})")
        cycles = {k: _number(table, k, path, "timing.cycles.") for k in CLASSES[isa]}
        rules = {k: _number(section, k, path, "timing.") for k in RULES if k in section}
        latency = section.get("result_latency") or {}
        if not isinstance(latency, dict) or set(latency) - set(CLASSES[isa]):
            raise UserError(f"{path}: key 'timing.result_latency' must map {isa} instruction classes "
                            f"({', '.join(CLASSES[isa])}) to cycles")
        latency = {k: _number(latency, k, path, "timing.result_latency.") for k in latency}
        if rules.get("dual_issue", 0.0) > 1:
            raise UserError(f"{path}: key 'timing.dual_issue' is a fraction of the paired instruction's cycles: 0 to 1")
        memory = None
        if section.get("memory") is not None:
            m = section["memory"]
            if not isinstance(m, dict):
                raise UserError(f"{path}: key 'timing.memory' must be a mapping")
            bad = sorted(set(m) - set(MEMORY_KEYS) - set(MEMORY_OPTIONAL))
            if bad:
                raise UserError(f"{path}: unknown key(s) timing.memory.{', timing.memory.'.join(bad)}")
            values = {k: _number(m, k, path, "timing.memory.") for k in MEMORY_KEYS}
            if values["line_bytes"] < 2 or values["line_bytes"] != int(values["line_bytes"]) or values["cache_lines"] != int(values["cache_lines"]):
                raise UserError(f"{path}: timing.memory.line_bytes (>= 2) and cache_lines must be whole numbers")
            ways = int(_number(m, "ways", path, "timing.memory.")) if "ways" in m else 0
            if ways and (ways != m["ways"] or values["cache_lines"] % ways):
                raise UserError(f"{path}: timing.memory.ways must be a whole divisor of timing.memory.cache_lines")
            memory = Memory(values["wait_states"], int(values["line_bytes"]), int(values["cache_lines"]),
                            values["sequential_miss"], ways)
        return cls(isa, cycles, memory=memory, result_latency=latency, data_cache=_data_cache(section, path), **rules)


def _data_cache(section: dict[str, Any], path: Path | str) -> DataCache | None:
    """The ``timing.data_cache`` section (a direct-mapped cache), or None."""
    m = section.get("data_cache")
    if m is None:
        return None
    if not isinstance(m, dict):
        raise UserError(f"{path}: key 'timing.data_cache' must be a mapping")
    keys = ("miss", "line_bytes", "cache_lines", "ways")
    bad = sorted(set(m) - set(keys))
    if bad:
        raise UserError(f"{path}: unknown key(s) timing.data_cache.{', timing.data_cache.'.join(bad)} "
                        f"(known: {', '.join(keys)})")
    v = {k: _number(m, k, path, "timing.data_cache.") for k in keys}
    if v["ways"] != 1:
        raise UserError(f"{path}: timing.data_cache.ways must be 1: the model is of a direct-mapped data cache")
    if v["line_bytes"] < 4 or v["line_bytes"] != int(v["line_bytes"]) or v["cache_lines"] < 1 or v["cache_lines"] != int(v["cache_lines"]):
        raise UserError(f"{path}: timing.data_cache.line_bytes (>= 4) and cache_lines (>= 1) must be whole numbers")
    return DataCache(v["miss"], int(v["line_bytes"]), int(v["cache_lines"]))


def _number(where: dict[str, Any], key: str, path: Path | str, prefix: str) -> float:
    if key not in where:
        raise UserError(f"{path}: missing key '{prefix}{key}'")
    value = where[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise UserError(f"{path}: key '{prefix}{key}' must be a number >= 0, but got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Decoded:
    """An instruction's class and the registers the model's dependence rules look at."""

    cls: str
    nregs: int = 0  # registers a load/store multiple moves
    writes: frozenset[str] = frozenset()
    reads: frozenset[str] = frozenset()
    address: frozenset[str] = frozenset()  # registers of a load's or store's address
    offset: int = 0  # a RISC-V load's or store's address offset; a conditional branch's target offset
    control: str = ""  # RISC-V control transfers: "cond", "jal" or "jalr"


def decode(isa: str, insn: Insn) -> Decoded:
    """Class and registers of one instruction."""
    if isa == "riscv":
        return _riscv_decode(insn)
    cls = _thumb_class(insn)
    ops = insn.operands
    head = _regs(re.split(r"[\[{]", ops, maxsplit=1)[0])
    inside = re.search(r"\[([^\]]*)\]", ops)
    address = frozenset(_regs(inside.group(1))) if inside else frozenset()
    braces = re.search(r"\{([^}]*)\}", ops)
    listed = _regs(braces.group(1)) if braces else []
    nregs = len(re.findall(r"[^,\s][^,]*", braces.group(1))) if braces else 0
    root = insn.mnemonic.split(".")[0]
    if cls in ("load", "load_pair"):
        return Decoded(cls, 0, frozenset(head), address, address)
    if cls in ("store", "store_pair"):
        return Decoded(cls, 0, frozenset(), frozenset(head) | address, address)
    if cls == "load_multiple":
        return Decoded(cls, nregs, frozenset(listed), frozenset(head), frozenset(head))
    if cls == "store_multiple":
        return Decoded(cls, nregs, frozenset(), frozenset(head) | frozenset(listed), frozenset(head))
    regs = _regs(ops)
    if cls in ("branch", "table_branch", "it", "barrier") or root.startswith(("cmp", "cmn", "tst", "teq")):
        return Decoded(cls, 0, frozenset(), frozenset(regs))
    if not regs:
        return Decoded(cls)
    if root.startswith(("smull", "umull", "smlal", "umlal", "umaal", "smlsl")):  # two destination registers
        return Decoded(cls, 0, frozenset(regs[:2]), frozenset(regs))
    reads = regs[1:]
    two_operand = (len(regs) == 2 and "#" not in ops) or (len(regs) == 1 and "#" in ops)
    if two_operand and not root.startswith(("mov", "mvn", "sxt", "uxt", "rev", "clz", "rbit", "neg", "adr")):
        reads = regs  # Thumb's two-operand forms (ADDS r3, #32; ASRS r1, r4): the destination is also a source
    return Decoded(cls, 0, frozenset(regs[:1]), frozenset(reads))


def _regs(text: str) -> list[str]:
    return [_ALIAS.get(r, r) for r in _REG.findall(text)]


def _is_branch(root: str) -> bool:
    if root in ("b", "bl", "blx", "bx", "cbz", "cbnz"):
        return True
    return (root[:1] == "b" and root[1:] in _CONDS) or (root[:2] in ("bl", "bx") and root[2:] in _CONDS) or (
        root[:3] == "blx" and root[3:] in _CONDS)


def _thumb_class(insn: Insn) -> str:
    """The timing class of a Thumb instruction, by QEMU's disassembly (by its encoding where that has no name)."""
    root = insn.mnemonic.split(".")[0]
    if not root:
        return _thumb_encoding_class(insn.code)
    if root.startswith("it") and len(root) <= 5 and set(root[2:]) <= {"t", "e"}:
        return "it"
    if root in ("tbb", "tbh"):
        return "table_branch"
    if _is_branch(root):
        return "branch"
    if root.startswith(("ldm", "pop", "vpop", "vldm")):
        return "load_multiple"
    if root.startswith(("stm", "push", "vpush", "vstm")):
        return "store_multiple"
    if root.startswith("v"):
        q = re.search(r"\bq\d", insn.operands) is not None
        if root.startswith(("vldr", "vld")):
            return "mve_memory" if q else "load"
        if root.startswith(("vstr", "vst")):
            return "mve_memory" if q else "store"
        if q:
            return "mve"
        return "fp_div" if root.startswith(("vdiv", "vsqrt")) else "fp"
    if root.startswith(("ldrd", "ldaexd", "ldrexd")):
        return "load_pair"
    if root.startswith(("strd", "stlexd", "strexd")):
        return "store_pair"
    if root.startswith(("ldr", "lda")):
        return "load"
    if root.startswith(("str", "stl")):
        return "store"
    if root.startswith(("ldc", "stc")):  # coprocessor 14/15 space: Helium's VLDR/VSTR on Armv8.1-M
        return "mve_memory"
    if root.startswith(("cdp", "mcr", "mrc")):
        return "mve"
    if root.startswith(("sdiv", "udiv")):
        return "div"
    if root.startswith(("mul", "mla", "mls", "smull", "umull", "umaal")) or root in ("smlal", "umlal", "smlals", "umlals"):
        return "mul"
    if root.startswith(("sm", "um")) and not root.startswith("smc"):
        return "mac"  # the DSP multiplies: SMLAD, SMLABB, SMUAD, SMMLA, SMULBB, SMLALD, ...
    if root in ("dsb", "dmb", "isb"):
        return "barrier"
    return "alu"


def _thumb_encoding_class(code: tuple[int, ...]) -> str:
    """Classes of the 32-bit encodings QEMU's disassembler leaves unnamed: Armv8.1-M's low-overhead loops (LE, LETP;
    DLS, WLS, DLSTP, WLSTP) and Helium's vector instructions."""
    if len(code) == 2:
        h1, h2 = code
        if h1 & 0xFF80 == 0xF000 and h2 & 0xD001 == 0xC001:
            return "loop_end" if h1 & 0xF == 0xF else "loop_start"
        if h1 >> 8 in (0xEC, 0xED, 0xFC, 0xFD):
            return "mve_memory"
        if h1 >> 8 in (0xEE, 0xEF, 0xFE, 0xFF):
            return "mve"
    return "alu"


def _riscv_decode(insn: Insn) -> Decoded:
    """Class, registers, offset and kind of transfer of a RISC-V instruction as QEMU prints it (``rd,rs1,rs2``,
    ``rd,off(rs1)``, ``rs2,off(rs1)``, ``rs1,rs2,off``)."""
    root, ops = insn.mnemonic, insn.operands
    cls = _riscv_class(root)
    regs = [r for r in _RV_REG.findall(ops)]
    mem = _RV_MEM.search(ops)
    nonzero = [r for r in regs if r != "zero"]
    if cls in ("load", "store") and mem:
        base, offset = mem.group(2), int(mem.group(1))
        data = [r for r in _RV_REG.findall(ops[: mem.start()]) if r != "zero"]
        if cls == "load":
            return Decoded(cls, 0, frozenset(data), frozenset({base}), frozenset({base}), offset)
        return Decoded(cls, 0, frozenset(), frozenset(data) | {base}, frozenset({base}), offset)
    if root in _RV_COND:
        number = _RV_NUMBER.search(ops)
        return Decoded(cls, 0, frozenset(), frozenset(nonzero), offset=int(number.group(1), 0) if number else 0,
                       control="cond")
    if root in _RV_JAL:
        link = (regs[0] if regs else "ra") if root in ("jal", "call", "c.jal") else ""
        return Decoded(cls, 0, frozenset({link} - {"", "zero"}), control="jal")
    if root in _RV_JALR:
        if root == "ret":
            return Decoded(cls, 0, frozenset(), frozenset({"ra"}), control="jalr")
        link = regs[0] if root == "jalr" and len(regs) > 1 and regs[0] != "zero" else ""
        return Decoded(cls, 0, frozenset({link} if link else ()), frozenset(nonzero[-1:]), control="jalr")
    if not nonzero or not regs:
        return Decoded(cls)
    return Decoded(cls, 0, frozenset(regs[:1]) - {"zero"}, frozenset(r for r in regs[1:] if r != "zero"))


def _riscv_class(mnemonic: str) -> str:
    if mnemonic in _RV_SHIFT:
        return "shift"
    if mnemonic in _RV_LOADS:
        return "load"
    if mnemonic in _RV_STORES:
        return "store"
    if mnemonic in _RV_MUL:
        return "mul"
    if mnemonic in _RV_DIV:
        return "div"
    if mnemonic in _RV_BRANCH:
        return "branch"
    return "alu"


@dataclass
class PieceCost:
    """The issue cycles of a run of a block's instructions and its instruction classes."""

    cycles: float
    mix: dict[str, int]
    last: str  # the class of its last instruction


def piece_cost(model: TimingModel, decoded: list[Decoded]) -> PieceCost:
    """Issue cycles of straight-line instructions (the table plus the neighbour rules; no branch or fetch cost)."""
    c = model.cycles
    total = 0.0
    mix: dict[str, int] = {}
    prev: Decoded | None = None
    paired = False  # prev issued as the second of a pair
    latency = model.result_latency
    ready: dict[str, float] = {}  # register -> the earliest issue that can read it (the scoreboard, when latencies)
    stores: list[tuple[int, str, int]] = []  # recent stores: (index, base register, word offset)
    for i, d in enumerate(decoded):
        mix[d.cls] = mix.get(d.cls, 0) + 1
        cost = c[d.cls] + (model.per_register * d.nregs if d.cls in ("load_multiple", "store_multiple") else 0.0)
        pair = False
        if prev is not None:
            if d.cls in _SINGLE_MEM and prev.cls == "load" and not (d.address & prev.writes):
                cost -= model.pipelined_loads
            elif d.cls in _MEM and prev.cls in _DATA and d.address & prev.writes:
                cost += model.address_stall
            if prev.cls in _LOADS and d.reads & prev.writes:
                cost += model.load_use_stall
            if prev.cls in _MVE and d.cls in _MVE and prev.cls != d.cls:
                cost -= model.mve_overlap
            if model.dual_issue and not paired and _pairs(prev, d):
                cost -= model.dual_issue * cost
                pair = True
            if d.cls == "store" and prev.cls == "store":
                cost += model.store_after_store
        if model.store_load_stall and d.cls == "load" and d.address:
            base = next(iter(d.address))
            if any(i - j <= model.store_load_window and b == base and w == d.offset >> 2 for j, b, w in stores):
                cost += model.store_load_stall
        if latency:
            stall = max((ready.get(r, 0.0) for r in d.reads), default=0.0) - total
            if stall > 0:
                cost += stall
            issued = total + max(stall, 0.0)
            for r in d.writes:
                ready[r] = issued + latency.get(d.cls, 1.0)
        if model.store_load_stall:
            stores = [s for s in stores if not (d.writes & {s[1]}) and i - s[0] < model.store_load_window]
            if d.cls == "store" and d.address:
                stores.append((i, next(iter(d.address)), d.offset >> 2))
        total += max(cost, 0.0)
        prev, paired = d, pair
    return PieceCost(total, mix, decoded[-1].cls if decoded else "alu")


def _pairs(first: Decoded, second: Decoded) -> bool:
    """Whether two neighbours may issue in one cycle (the dual-issue rule of :func:`piece_cost`)."""
    if first.cls not in _DUAL_FIRST or second.cls not in _DUAL_SECOND:
        return False
    if first.cls in _MEM and second.cls in _MEM:
        return False
    if first.cls in _MULS and second.cls in _MULS:
        return False
    return not (second.reads & first.writes) and not (second.writes & first.writes)


class Fetch:
    """Instruction fetch through a cache of flash lines (:class:`Memory`; LRU within a set): cycles lost per executed
    piece."""

    def __init__(self, memory: Memory) -> None:
        self.m = memory
        ways = memory.ways or memory.cache_lines
        self.ways = ways
        self.sets: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(max(memory.cache_lines // ways, 1))]
        self.last = -2

    def run(self, start: int, end: int) -> float:
        """Stall cycles of fetching the code ``[start, end)``."""
        m = self.m
        stall = 0.0
        for line in range(start // m.line_bytes, (end - 1) // m.line_bytes + 1):
            lines = self.sets[line % len(self.sets)]
            if line in lines:
                lines.move_to_end(line)
            else:
                stall += m.sequential_miss if line == self.last + 1 else m.wait_states
                lines[line] = None
                if len(lines) > self.ways:
                    lines.popitem(last=False)
            self.last = line
        return stall


def transfer_cost(model: TimingModel, last: Decoded, taken: bool, next_pc: int) -> float:
    """Cycles a block's last instruction adds by where execution goes next (``taken``: not the fall-through): the
    pipeline refill of a taken transfer, or with static prediction (``mispredicted`` set) the cost of a right or
    wrong guess and of a target at a halfword address."""
    if model.mispredicted is None:
        if not taken:
            return 0.0
        return model.loop_end_taken if last.cls == "loop_end" else model.taken_branch
    if last.control == "cond":
        backward = last.offset < 0  # predicted taken
        cost = (model.predicted_taken if backward else model.mispredicted) if taken else (
            model.mispredicted if backward else 0.0)
    elif last.control == "jal":
        cost = model.predicted_taken
    elif last.control == "jalr" or taken:
        cost = model.mispredicted  # an indirect jump, or a redirect with no branch (a trap)
    else:
        return 0.0
    if (taken or cost) and next_pc % 4 == 2:
        cost += model.halfword_target
    return cost


@dataclass
class KernelCycles:
    """One kernel's estimate: instructions, cycles, and where the cycles come from."""

    instructions: int = 0
    cycles: float = 0.0
    issue: float = 0.0  # the table and the neighbour rules
    branches: float = 0.0  # pipeline refills after control transfers
    fetch: float = 0.0  # instruction fetch stalls (flash wait states)
    data: float = 0.0  # data cache refills (loads that missed)
    mix: dict[str, int] = field(default_factory=dict)  # executed instructions per class


def estimate(trace: Trace, model: TimingModel, accesses: tuple[Any, Any] | None = None) -> list[KernelCycles]:
    """Each kernel's estimated cycles over the traced stream; ``accesses``: the run's recorded data accesses
    (:func:`tinycompile.mcu.memtrace.read_records`, at the trace's addresses) for the model's data cache."""
    if model.isa != trace.isa:
        raise ValueError(f"a {model.isa} timing model cannot price a {trace.isa} trace")
    decoded: dict[int, list[Decoded]] = {}
    costs: dict[tuple[int, int, int], PieceCost] = {}
    fetch = Fetch(model.memory) if model.memory is not None and (model.memory.wait_states or model.memory.sequential_miss) else None
    kernels = [KernelCycles() for _ in range(trace.kernels)]
    counts: list[dict[tuple[int, int, int], int]] = [{} for _ in range(trace.kernels)]
    blocks, seq, first, executed, segment = trace.blocks, trace.seq, trace.first, trace.executed, trace.segment
    n_pieces = len(seq)
    for i in range(n_pieces):
        b, f, n, seg = seq[i], first[i], executed[i], segment[i]
        block = blocks[b]
        key = (b, f, n)
        cost = costs.get(key)
        if cost is None:
            if b not in decoded:
                decoded[b] = [decode(trace.isa, insn) for insn in block.insns]
            cost = costs[key] = piece_cost(model, decoded[b][f : f + n])
        refill = 0.0
        if f + n == len(block.insns) and i + 1 < n_pieces:
            next_pc = blocks[seq[i + 1]].pc
            refill = transfer_cost(model, decoded[b][-1], next_pc != block.end, next_pc)
        stall = 0.0
        if fetch is not None:
            last = block.insns[f + n - 1]
            stall = fetch.run(block.insns[f].pc, last.pc + last.size)
        if seg >= 0:
            k = kernels[seg]
            k.issue += cost.cycles
            k.branches += refill
            k.fetch += stall
            counts[seg][key] = counts[seg].get(key, 0) + 1
    for k, seen in zip(kernels, counts):
        for (_, _, n), times in seen.items():
            k.instructions += n * times
        for key, times in seen.items():
            for cls, m in costs[key].mix.items():
                k.mix[cls] = k.mix.get(cls, 0) + m * times
    if model.data_cache is not None and accesses is not None:
        memory = {b: [j for j, d in enumerate(decoded[b]) if d.cls in ("load", "store")] for b in decoded}
        for k, misses in zip(kernels, kernel_misses(trace, memory, accesses[0], accesses[1], model.data_cache)):
            k.data = misses * model.data_cache.miss
    for k in kernels:
        k.cycles = k.issue + k.branches + k.fetch + k.data
    return kernels
