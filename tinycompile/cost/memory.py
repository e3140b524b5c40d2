"""The memory planner: the arena of a network with in-place layers and, where it lowers the peak, a patch stage.

One plan serves the cost model (its predicted peak) and the MCU back end (the arena it builds), so they agree.
* In place (``inplace``): a layer that ``inplace.overlap`` allows writes its output a proven distance before its
  input; the chained tensors form one buffer of the greedy arena plan, each at a fixed offset inside it.
* Patches (``patches``): the first stage runs per patch (``patches``); its inner tensors are replaced by patch
  buffers, its output stays whole, and the network input is read from the caller's buffer (which the caller holds
  in every case; the unpatched runner copies it into the arena).
``choose`` picks the stage and grid of the smallest arena whose recomputation costs at most ``MAX_MAC_OVERHEAD`` of
the network's MACs, or no patches when none lowers the arena.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from tinycompile.arch import ArchSpec, numel
from tinycompile.cost.arena import ArenaPlan, Buffer, activation_buffers, plan, storage_tensor
from tinycompile.cost.inplace import Overlap, overlaps
from tinycompile.cost.patches import MAX_GRID, PatchPlan, patch_buffer_sizes, plan_patches, stage_ends, stage_macs

MAX_MAC_OVERHEAD = 0.05  # recomputed MACs of a patch stage, as a share of the network's


@dataclass(frozen=True)
class MemoryPlan:
    """Where every tensor and patch buffer lies in one arena of ``size`` bytes."""

    size: int
    tensor_offsets: dict[int, int]  # storage tensors only; -1 (the input) absent when read from the caller
    patch: PatchPlan | None = None
    patch_offsets: tuple[int, ...] = ()  # layer l's input patch (l = 0..end), then the stage's output patch
    inplace: tuple[Overlap, ...] = ()
    arena: ArenaPlan | None = field(default=None, compare=False)

    @property
    def input_in_arena(self) -> bool:
        """Whether the runner copies the network input into the arena (else kernels read the caller's buffer)."""
        return -1 in self.tensor_offsets

    def offset_of_tensor(self, tensor: int, spec: ArchSpec) -> int:
        """Offset of layer ``tensor``'s output (``-1``: the network input), following views to their storage."""
        return self.tensor_offsets[storage_tensor(spec, tensor)]


def plan_memory(spec: ArchSpec, inplace: bool | tuple[Overlap, ...] = True, patch: PatchPlan | None = None) -> MemoryPlan:
    """The arena of ``spec`` with the patch stage ``patch`` (None: none) and in-place layers: ``inplace`` True picks
    them (``pick_inplace``), a tuple gives them, False: none."""
    if inplace is True:
        return pick_inplace(spec, patch)
    buffers = _buffers(spec, patch)
    used = [o for o in (inplace or ()) if patch is None or o.layer > patch.end]
    members, groups = _groups(buffers, used)
    arena = plan(groups)
    offsets = {t: arena.offsets[g] + rel for t, (g, rel) in members.items()}
    n_patch = 0 if patch is None else patch.end + 2
    return MemoryPlan(
        size=arena.size,
        tensor_offsets={_tensor(name): off for name, off in offsets.items() if name.startswith(("t", "input"))},
        patch=patch,
        patch_offsets=tuple(offsets[f"p{l}"] for l in range(n_patch)),
        inplace=tuple(used),
        arena=arena,
    )


def pick_inplace(spec: ArchSpec, patch: PatchPlan | None = None) -> MemoryPlan:
    """In-place layers chosen to shrink the arena. A chain of them shifts each output further down, so a long chain
    can need more room than separate buffers: two greedy passes, one adding layers in order to none, one dropping
    layers from all (each time the best drop), each step kept when it gives a smaller arena or the same arena in
    fewer bytes of buffers; the better result wins."""
    allowed = tuple(o for o in overlaps(spec) if patch is None or o.layer > patch.end)
    added = plan_memory(spec, (), patch)
    for o in allowed:
        trial = plan_memory(spec, (*added.inplace, o), patch)
        if _score(trial) < _score(added):
            added = trial
    dropped = plan_memory(spec, allowed, patch)
    while dropped.inplace:
        trials = [plan_memory(spec, tuple(x for x in dropped.inplace if x != o), patch) for o in dropped.inplace]
        trial = min(trials, key=_score)
        if _score(trial) >= _score(dropped):
            break
        dropped = trial
    return min(added, dropped, key=_score)


def _buffers(spec: ArchSpec, patch: PatchPlan | None) -> list[Buffer]:
    buffers = activation_buffers(spec)
    if patch is not None:
        dropped = {"input", *(f"t{i}" for i in range(patch.end))}
        buffers = [b for b in buffers if b.name not in dropped]
        buffers = [Buffer(b.name, b.size, 0, b.last) if b.name == f"t{patch.end}" else b for b in buffers]
        for l, size in enumerate(patch_buffer_sizes(spec, patch)):
            buffers.append(Buffer(f"p{l}", size, max(l - 1, 0), min(l, patch.end)))
    return buffers


def baseline(spec: ArchSpec) -> MemoryPlan:
    """The per-layer arena: every tensor in its own buffer for its lifetime (no in-place layers, no patches)."""
    return plan_memory(spec, inplace=False, patch=None)


@lru_cache(maxsize=4096)
def choose(spec: ArchSpec, inplace: bool = True, patches: bool = True, max_overhead: float = MAX_MAC_OVERHEAD) -> MemoryPlan:
    """The plan of the smallest arena: in place where allowed, and the patch stage (stage end, square grid) that
    lowers the arena most within ``max_overhead`` (recomputed MACs / the network's); ties go to less recomputation."""
    best = plan_memory(spec, inplace, None)
    if not patches:
        return best
    total = max(sum(spec.macs()), 1)
    best_cost = (best.size, 0.0)
    chosen = best.inplace  # the candidates reuse the layers picked without patches; the winner picks its own
    for end in stage_ends(spec):
        for g in range(2, MAX_GRID + 1):
            patch = plan_patches(spec, end, (g, g))
            if patch is None:
                continue
            whole, patched = stage_macs(spec, patch)
            overhead = (patched - whole) / total
            if overhead > max_overhead:
                continue
            candidate = plan_memory(spec, chosen if inplace else False, patch)
            if (candidate.size, overhead) < best_cost:
                best, best_cost = candidate, (candidate.size, overhead)
    if best.patch is not None and inplace:
        best = min(best, plan_memory(spec, True, best.patch), key=lambda p: p.size)
    return best


def _score(p: MemoryPlan) -> tuple[int, int]:
    """The arena, then the bytes of all its buffers: a layer that leaves the peak as it is but frees room elsewhere
    is kept, as it can let a later one lower the peak."""
    assert p.arena is not None
    return p.size, sum(b.size for b in p.arena.buffers)


def _tensor(name: str) -> int:
    return -1 if name == "input" else int(name[1:])


def _groups(buffers: list[Buffer], used: list[Overlap]) -> tuple[dict[str, tuple[str, int]], list[Buffer]]:
    """Chains of in-place tensors merged into one buffer each: member -> (buffer, offset inside it), and the
    buffers to plan. An output ``d`` bytes before its input sits at the input's offset minus ``d``."""
    by_name = {b.name: b for b in buffers}
    parent = {f"t{o.layer}": (_name(o.tensor), o.distance) for o in used
              if f"t{o.layer}" in by_name and _name(o.tensor) in by_name}
    rel: dict[str, tuple[str, int]] = {}
    for name in by_name:
        root, off = name, 0
        while root in parent:
            src, d = parent[root]
            off -= d  # the output lies d bytes before its input
            root = src
        rel[name] = (root, off)
    members: dict[str, tuple[str, int]] = {}
    planned: list[Buffer] = []
    for root in dict.fromkeys(r for r, _ in rel.values()):
        names = [n for n, (r, _) in rel.items() if r == root]
        low = min(rel[n][1] for n in names)
        for n in names:
            members[n] = (f"g:{root}", rel[n][1] - low)
        size = max(members[n][1] + by_name[n].size for n in names)
        planned.append(Buffer(f"g:{root}", size, min(by_name[n].first for n in names), max(by_name[n].last for n in names)))
    return members, planned


def _name(tensor: int) -> str:
    return "input" if tensor == -1 else f"t{tensor}"


def sum_of_tensors(spec: ArchSpec) -> int:
    """Bytes of every activation tensor at once (the input included, views not): the arena without any reuse."""
    return numel(spec.input_shape) + sum(numel(s) for s, layer in zip(spec.shapes(), spec.layers) if layer.op != "flatten")
