"""The arena planner: live tensors never overlap, and the arena is never larger than all tensors together."""

from __future__ import annotations

import random

import pytest

from tinycompile.cost.arena import Buffer, activation_buffers, plan, plan_activations
from tinycompile.search.space import load_space


def assert_no_live_overlap(buffers: list[Buffer], offsets: dict[str, int], size: int) -> None:
    for a in buffers:
        assert 0 <= offsets[a.name] and offsets[a.name] + a.size <= size
        for b in buffers:
            if a.name < b.name and a.first <= b.last and b.first <= a.last:
                a0, b0 = offsets[a.name], offsets[b.name]
                assert a0 + a.size <= b0 or b0 + b.size <= a0, f"{a} and {b} overlap while both are live"


def test_random_lifetimes_never_overlap_and_stay_within_bounds() -> None:
    rng = random.Random(1)
    for _ in range(200):
        buffers = []
        for i in range(rng.randint(1, 12)):
            first = rng.randint(0, 10)
            buffers.append(Buffer(f"b{i}", rng.randint(1, 500), first, first + rng.randint(0, 4)))
        result = plan(buffers)
        assert_no_live_overlap(buffers, result.offsets, result.size)
        peak_live = max(sum(b.size for b in buffers if b.first <= t <= b.last) for t in range(16))
        assert peak_live <= result.size <= sum(-(-b.size // 4) * 4 for b in buffers)


@pytest.mark.parametrize("space,shape", [("cnn1d", (1, 1, 40)), ("cnn2d", (1, 8, 8)), ("mlp", (1, 1, 40))])
def test_network_plans_reuse_memory(space: str, shape) -> None:
    s = load_space(space)
    rng = random.Random(0)
    for _ in range(50):
        spec = s.build(s.random_choices(rng), shape, 10)
        buffers = activation_buffers(spec)
        arena = plan_activations(spec)
        assert_no_live_overlap(buffers, arena.offsets, arena.size)
        # every layer's inputs and output are live together while it runs
        for i, layer in enumerate(spec.layers):
            live = [b for b in buffers if b.first <= i <= b.last]
            assert arena.size >= sum(b.size for b in live)
        assert arena.size <= sum(-(-b.size // 4) * 4 for b in buffers)


def test_a_chain_needs_only_two_neighbouring_tensors() -> None:
    # input 100 -> 50 -> 80 -> 10: ping-pong between two regions, never all four at once
    buffers = [Buffer("input", 100, 0, 0), Buffer("t0", 50, 0, 1), Buffer("t1", 80, 1, 2), Buffer("t2", 10, 2, 2)]
    assert plan(buffers).size == 152  # max(100+52, 52+80, 80+10) with 4-byte alignment
