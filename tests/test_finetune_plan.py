"""Which supernet candidates are fine-tuned and for how long: non-dominated ranks (the Pareto front first, every later
rank dominated by the one before it), and epochs that end before a deadline at the measured speed."""

from __future__ import annotations

import math
import random

import optuna
import pytest

from tinycompile.search.finetune_plan import (MARGIN_SECONDS, MIN_EPOCHS, MIN_FIT, MIN_SPREAD, OVERHEAD_MACS, SAFETY,
                                              STRATA, accuracy_fit, area_gain, epoch_seconds, epochs_within,
                                              finetune_order, next_candidate, second_pass_seconds, staircase)
from tinycompile.search.pareto import pareto_front, ranked


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def trial(number: int, acc: float, ms: float, feasible: bool = True) -> optuna.trial.FrozenTrial:
    t = optuna.trial.create_trial(values=[acc, ms], params={}, distributions={}, user_attrs={"trained": True},
                                  system_attrs={"constraints": [0.0 if feasible else 1.0]})
    t.number = number
    return t


def dominates(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> bool:
    return a.values[0] >= b.values[0] and a.values[1] <= b.values[1] and a.values != b.values


def test_ranks_put_the_front_first_and_each_rank_behind_the_one_before() -> None:
    rng = random.Random(3)
    # rounded values: ties in accuracy, in latency and whole duplicates occur
    trials = [trial(i, round(rng.random(), 1), round(rng.uniform(0.1, 2.0), 1), feasible=i % 7 != 0)
              for i in range(120)]
    ranks = ranked(trials)
    assert {t.number for t in ranks[0]} == {t.number for t in pareto_front(trials)}
    flat = [t for rank in ranks for t in rank]
    assert sorted(t.number for t in flat) == [t.number for t in trials if t.number % 7 != 0]  # feasible, each once
    for r, rank in enumerate(ranks):
        assert [t.values[1] for t in rank] == sorted(t.values[1] for t in rank)  # cheapest first
        assert not any(dominates(a, b) for a in rank for b in rank)
        for t in rank if r else []:  # each member is beaten by one of the rank before
            assert any(dominates(a, t) for a in ranks[r - 1]), (r, t.values)
    assert len(ranks) > 3


def test_the_order_takes_one_candidate_from_each_latency_stratum_in_turn_front_members_first() -> None:
    rng = random.Random(5)
    # inherited scores hardly grow with size: the front and the first ranks are mostly small networks
    trials = [trial(i, 0.7 + 0.1 * rng.random() - 0.02 * ms, ms) for i, ms in
              enumerate(rng.uniform(0.1, 3.0) for _ in range(200))]
    ranks = ranked(trials)
    front = ranks[0]
    latencies = sorted(t.values[1] for t in trials)
    edges = [latencies[len(latencies) * i // STRATA] for i in range(1, STRATA)]

    def stratum(t: optuna.trial.FrozenTrial) -> int:
        return sum(t.values[1] >= e for e in edges)

    assert {t.number for t in finetune_order(trials, beyond_front=False)} == {t.number for t in front}
    order = finetune_order(trials, beyond_front=True)
    assert sorted(t.number for t in order) == sorted(t.number for t in trials)  # every candidate, once
    assert len({stratum(t) for t in order[:STRATA]}) == STRATA  # the first round: one candidate from each stratum
    assert max(stratum(t) for t in front) < STRATA - 1  # (which the front alone would not have reached)
    flat = [t.number for rank in ranks for t in rank]
    for k in range(STRATA):  # within a stratum, the order of the ranks: its front members first
        mine = [t.number for t in order if stratum(t) == k]
        assert mine == [n for n in flat if stratum(trials[n]) == k]


def test_epochs_end_before_the_deadline_at_the_slowest_recent_speed() -> None:
    macs = {1: 10_000, 2: 300_000, 3: 50_000}
    records = {1: {"train_seconds": 9.0, "seconds": 11.0, "epochs": 10, "finished_at": 5.0},  # 1e-5 s per epoch, unit
               2: {"train_seconds": 80.0, "finetune_epochs": 10, "finished_at": 9.0},  # older: no "epochs", "seconds"
               7: {"train_seconds": 1.0, "epochs": 1}}  # a trial not in ``macs``: not counted
    rates = epoch_seconds(records, macs)
    assert [round(r, 9) for _, r in rates] == [1e-5, 2e-5]
    slowest = SAFETY * 2e-5 * (50_000 + OVERHEAD_MACS)  # 3 s per epoch, and a margin for the load changing
    assert epochs_within(1000.0, 50_000, [], 25) == 25  # nothing measured yet: as asked
    assert epochs_within(1000.0, 50_000, rates, 25) == 25  # time for all of them
    fit = epochs_within(48.0, 50_000, rates, 25)
    assert fit == 13 and fit * slowest <= 48.0 - MARGIN_SECONDS < (fit + 1) * slowest
    assert epochs_within(MIN_EPOCHS * slowest, 50_000, rates, 25) == 0  # fewer than MIN_EPOCHS fit: not started
    assert epochs_within(1000.0, 50_000, rates, 2) == 2  # fewer asked for, and time for them


def test_the_second_pass_is_priced_at_the_slowest_recent_speed_shared_by_the_workers() -> None:
    rates = [(1.0, 1e-5), (2.0, 2e-5)]
    one = SAFETY * 2e-5 * (50_000 + OVERHEAD_MACS) * 10 + MARGIN_SECONDS  # 10 epochs of one 50 k-MAC candidate
    assert second_pass_seconds([50_000], rates, 10, 1) == pytest.approx(one)
    assert second_pass_seconds([50_000, 50_000], rates, 10, 2) == pytest.approx(one)  # two workers side by side
    assert second_pass_seconds([50_000], [], 10, 1) == 0.0  # nothing measured yet: no time kept
    assert second_pass_seconds([], rates, 10, 2) == 0.0  # nothing to tune again


def test_the_area_a_point_adds_is_the_area_under_it_and_above_the_staircase() -> None:
    rng = random.Random(11)
    for _ in range(50):
        points = [(rng.uniform(0.0, 2.0), rng.random()) for _ in range(rng.randint(0, 8))]
        steps = staircase(points)
        assert all(a < b for (_, a), (_, b) in zip(steps, steps[1:]))  # accuracy rises with cost
        point, ref = (rng.uniform(0.0, 2.0), rng.random()), 2.0
        # numerically: at each cost, how far the point's accuracy is above the best of the points that cost less
        grid = [(i + 0.5) * ref / 4000 for i in range(4000)]
        expected = sum(max(0.0, point[1] - max((a for c, a in points if c <= x), default=0.0))
                       for x in grid if x >= point[0]) * ref / 4000
        assert area_gain(steps, point, ref) == pytest.approx(expected, abs=2e-3)


def test_the_fit_recovers_how_accuracy_grows_with_cost() -> None:
    costs = [0.1 * 1.5 ** i for i in range(MIN_FIT + 1)]
    pairs = [(c, 1 / (1 + math.exp(-(3.0 + 1.2 * math.log(c))))) for c in costs]
    fit = accuracy_fit(pairs)
    assert (fit.a, fit.b, fit.d) == (pytest.approx(3.0, abs=1e-3), pytest.approx(1.2, abs=1e-3), 0.0)  # one line
    assert fit.spread == MIN_SPREAD  # an exact fit still keeps a margin
    assert accuracy_fit(pairs[:MIN_FIT - 1]) is None  # too few to fit
    assert accuracy_fit([(0.5, 0.7 + 0.03 * i) for i in range(MIN_FIT)]) is None  # one cost: no slope


def test_accuracy_that_levels_off_is_fitted_with_a_knee_and_not_extrapolated() -> None:
    # logit(accuracy) grows with log(cost) up to 0.5 ms and stays at 0.98 beyond it, with noise
    rng = random.Random(0)
    costs = [0.1 * 1.25 ** i for i in range(14)]  # 0.1 to 1.8 ms
    level = _logit(0.98)
    pairs = [(c, _sigmoid(min(level + 2.0 * math.log(c / 0.5), level) + rng.gauss(0, 0.05))) for c in costs]
    fit = accuracy_fit(pairs)
    assert math.exp(fit.knee) == pytest.approx(0.5, rel=0.3)
    assert _sigmoid(fit.mean(1.8)) == pytest.approx(0.98, abs=0.003)  # a line through all would say 0.99
    line = accuracy_fit([(c, a) for c, a in pairs if c < 0.5])  # the rising part alone: no knee
    assert line.d == 0.0 and line.knee == math.inf
    assert _sigmoid(line.mean(1.8)) > 0.99


def test_the_next_candidate_fills_the_gap_in_the_front_cheapest_first() -> None:
    # fine-tuned accuracy grows with latency; tuned so far: four around 0.2 ms and four around 1.6 ms
    tuned = {i: ms for i, ms in enumerate((0.2, 0.22, 0.23, 0.24, 1.5, 1.6, 1.7, 1.8))}
    records = {i: {"val_acc": 1 / (1 + math.exp(-(3.0 + math.log(ms))))} for i, ms in tuned.items()}
    trials = [trial(i, 0.8, ms) for i, ms in tuned.items()]
    # untuned (inherited 0.8): beside a tuned one, in the gap, and the same in the gap at twice the MACs
    trials += [trial(10, 0.8, 0.21), trial(11, 0.8, 0.7), trial(12, 0.8, 0.7), trial(13, 0.8, 1.55)]
    macs = {10: 5_000, 11: 20_000, 12: 200_000, 13: 40_000}
    todo = [trials[8], trials[11], trials[10], trials[9]]
    assert next_candidate(todo, trials, records, macs).number == 11
    assert next_candidate(todo, trials, records, macs, cost_limit=0.5).number == 10  # the gap lies beyond the limit
    assert next_candidate(todo, trials, {i: records[i] for i in range(MIN_FIT - 1)}, macs) is todo[0]  # too few
