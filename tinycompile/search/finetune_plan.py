"""Which of a supernet run's candidates are fine-tuned, in what order, and for how many epochs under a deadline.

Without a deadline only the Pareto front (of the inherited scores) is fine-tuned. With one, every candidate may be,
each for as many epochs as the time left allows, and the order starts from latency strata (quantiles of the
candidates' latency), one candidate from each in turn, each stratum in rank order of non-dominated sorting (its
front members first): inherited scores hardly grow with size, so the inherited front holds mostly small networks
(after a 6-epoch supernet, all of them: a quarter-budget run that tuned the front first fine-tuned nothing above
0.2 ms and ended at 0.55x `train`'s hypervolume), and in the order of ranks alone a short run fine-tuned none above
1 ms (MNIST-1D, 288 s: 28 candidates, none of them in the trained front's most accurate band).

Once one candidate per stratum is fine-tuned, the order gives way to what they show: their fine-tuned accuracy is
fitted against their cost (logit of the accuracy linear in the log of the cost, the residuals' deviation as the
spread of a prediction) and the next candidate is the one expected to add the most area to the front per second of
fine-tuning (the expected improvement of Bayesian optimisation, per second). On MNIST-1D the cost alone predicts
the fine-tuned accuracy (correlation 0.93 on held-out candidates after 6 to 20 fitted; the inherited score adds
nothing), and the fixed order spent a fifth of a run on candidates beside members of the front that they could not
beat (the front hardly moved for 66 of 349 s).

The last stretch before the deadline is kept for a second pass over the front of the fine-tuned scores (once one
candidate per stratum is tuned: in a quarter-budget run the second pass took 3 of 8 fine-tunings after the first 4,
and nothing above 0.6 ms was tuned): each of its candidates continues from its fine-tuned weights for as many epochs
again, the better weights on validation kept.
On MNIST-1D the small networks there are still short of their capacity after one pass (25 more epochs: +0.7 to +2.2
points of validation accuracy at 4-5 k MACs, none at 58 k), and they are the cheapest to train.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from tinycompile.search.pareto import ranked

# An epoch's seconds ~ k * (MACs + OVERHEAD_MACS): per-batch work that does not scale with the MACs (MNIST-1D, one
# thread, an idle machine: 0.12 s per epoch at 5 k MACs, 0.16 s at 52 k, 0.43 s at 328 k).
OVERHEAD_MACS = 100_000
MIN_EPOCHS = 3  # a fine-tuning of fewer epochs is not started: its one-cycle schedule would barely move the weights
RECENT = 6  # the last fine-tunings whose speed sets the estimate (the machine's load changes during a run)
SAFETY = 1.15  # the load of a shared machine changes from one candidate to the next
MARGIN_SECONDS = 2.0  # loading and storing a candidate beyond what its epochs scale with
STRATA = 8  # latency strata the fine-tuning order takes its candidates from in turn
MIN_FIT = STRATA  # fine-tuned candidates (of two costs at least) before their fit guides the order: one per stratum
MIN_SPREAD = 0.1  # the prediction's least deviation (logits): a fit through few points is surer than it should be
KNEE_SIDE = 3  # distinct costs a knee leaves on each side at least
QUADRATURE = 7  # Gauss-Hermite nodes of the expected gain over the prediction's normal spread
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(QUADRATURE)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()  # an average over the standard normal


def finetune_order(trials: Iterable[FrozenTrial], beyond_front: bool) -> list[FrozenTrial]:
    """The candidates to fine-tune, in order: the Pareto front, or (``beyond_front``) every candidate, taken in turn
    from the latency strata, each stratum in rank order (its front members first)."""
    ranks = ranked(trials)
    if not ranks:
        return []
    latencies = sorted(t.values[1] for rank in ranks for t in rank)
    edges = sorted({latencies[len(latencies) * i // STRATA] for i in range(1, STRATA)})
    return _in_turn([t for rank in (ranks if beyond_front else ranks[:1]) for t in rank], edges)


def _in_turn(trials: list[FrozenTrial], edges: list[float]) -> list[FrozenTrial]:
    """``trials`` reordered to take one from each latency stratum (cut at ``edges``) in turn, each in its order."""
    strata: list[list[FrozenTrial]] = [[] for _ in range(len(edges) + 1)]
    for t in trials:
        strata[bisect.bisect_right(edges, t.values[1])].append(t)
    return [stratum[i] for i in range(max(map(len, strata))) for stratum in strata if i < len(stratum)]


def epoch_seconds(records: Mapping[int, Mapping[str, Any]], macs: Mapping[int, int]) -> list[tuple[float, float]]:
    """(finished_at, seconds per epoch per (MACs + OVERHEAD_MACS)) of each recorded fine-tuning, oldest first (its
    whole time where recorded, loading and storing included, else its training's)."""
    rates = []
    for number, record in records.items():
        epochs = record.get("epochs") or record.get("finetune_epochs")
        seconds = record.get("seconds") or record.get("train_seconds")  # the whole fine-tuning, storing included
        if number in macs and epochs and seconds:
            rates.append((float(record.get("finished_at", 0.0)), seconds / epochs / (macs[number] + OVERHEAD_MACS)))
    return sorted(rates)


def second_pass_seconds(macs: Iterable[int], rates: list[tuple[float, float]], epochs: int, workers: int) -> float:
    """The wall time a second pass of ``epochs`` over candidates of ``macs`` takes on ``workers`` side by side, at the
    slowest recent ``rates`` (0 when nothing is measured yet)."""
    if not rates:
        return 0.0
    rate = max(r for _, r in rates[-RECENT:])
    return sum(SAFETY * rate * (m + OVERHEAD_MACS) * epochs + MARGIN_SECONDS for m in macs) / max(1, workers)


def epochs_within(seconds_left: float, macs: int, rates: list[tuple[float, float]], wanted: int) -> int:
    """The epochs of a fine-tuning of ``macs`` that end within ``seconds_left`` at the slowest recent ``rates``
    (``wanted`` at most; ``wanted`` too when nothing is measured yet); 0 when the time cuts them below MIN_EPOCHS."""
    if not rates:
        return wanted
    rate = max(r for _, r in rates[-RECENT:])
    fit = int((seconds_left - MARGIN_SECONDS) / (SAFETY * rate * (macs + OVERHEAD_MACS)))
    if fit >= wanted:
        return wanted
    return fit if fit >= MIN_EPOCHS else 0


@dataclass(frozen=True)
class AccuracyFit:
    """logit(accuracy) = a + b x + d max(x - knee, 0) in x = log(cost): a line, or two joined at a knee (``d`` 0 and
    ``knee`` inf for one line); ``spread``: the deviation of a prediction in logits."""

    a: float
    b: float
    d: float
    knee: float
    spread: float

    def mean(self, cost: float) -> float:
        """The predicted logit of the accuracy at ``cost``."""
        x = math.log(max(cost, 1e-12))
        return self.a + self.b * x + self.d * max(x - self.knee, 0.0)


def accuracy_fit(pairs: Iterable[tuple[float, float]]) -> AccuracyFit | None:
    """Least squares of logit(accuracy) against log(cost) over (cost, accuracy) ``pairs``: one line, or two joined
    at a knee where the Bayesian information criterion prefers them (accuracy that stops growing: on MNIST-1D the
    fine-tuned accuracy levels off at about 0.98 beyond 0.5 ms, and one line kept predicting more, so a run spent
    half its fine-tuning on costly candidates that never beat the front); the residuals' root mean square, at least
    MIN_SPREAD, as the spread. None with fewer than MIN_FIT pairs or a single cost."""
    points = [(math.log(c), _logit(a)) for c, a in pairs if c > 0]
    if len(points) < MIN_FIT or len({x for x, _ in points}) < 2:
        return None
    x, y = np.array(points).T
    designs = [(np.column_stack([np.ones_like(x), x]), math.inf)]  # one line
    designs += [(np.column_stack([np.ones_like(x), x, np.maximum(x - knee, 0.0)]), knee)  # two, joined at a knee
                for knee in sorted(set(x))[KNEE_SIDE - 1:-KNEE_SIDE]]  # with KNEE_SIDE distinct costs on each side
    best: tuple[float, AccuracyFit] | None = None
    for design, knee in designs:
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        residuals = y - design @ coef
        bic = _bic(residuals, design.shape[1] + (knee < math.inf))  # a knee is a parameter too
        if best is None or bic < best[0]:
            spread = max(float(np.sqrt(np.mean(residuals**2))), MIN_SPREAD)
            best = (bic, AccuracyFit(float(coef[0]), float(coef[1]), float(coef[2]) if knee < math.inf else 0.0,
                                     float(knee), spread))
    return best[1] if best else None


def _bic(residuals: np.ndarray, parameters: int) -> float:
    n = len(residuals)
    return n * math.log(max(float(np.mean(residuals**2)), 1e-12)) + parameters * math.log(n)


def staircase(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, accuracy) ``points`` that no other beats, cheapest first (accuracy rising)."""
    steps: list[tuple[float, float]] = []
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not steps or acc > steps[-1][1]:
            steps.append((cost, acc))
    return steps


def area_gain(steps: list[tuple[float, float]], point: tuple[float, float], ref_cost: float) -> float:
    """Area that ``point`` (cost, accuracy) adds to what a :func:`staircase` dominates, costs up to ``ref_cost`` and
    accuracies above 0."""
    cost, acc = point
    if cost >= ref_cost:
        return 0.0
    best = max((a for c, a in steps if c <= cost), default=0.0)  # the front's accuracy at the point's cost
    gain, edge = 0.0, cost
    for c, a in [*(s for s in steps if cost < s[0] < ref_cost), (ref_cost, acc)]:
        if best >= acc:
            break
        gain += (acc - best) * (c - edge)
        best, edge = a, c
    return gain


def next_candidate(todo: list[FrozenTrial], feasible: list[FrozenTrial], records: Mapping[int, Mapping[str, Any]],
                   macs: Mapping[int, int], cost_limit: float | None = None) -> FrozenTrial:
    """Of ``todo`` (in the fixed order), the candidate to fine-tune next: the most expected area gain (costs up to
    ``cost_limit``, default the costliest candidate's) per second once the fine-tuned ``records`` allow a fit
    (:func:`accuracy_fit` of their first passes; the gain averaged over its normal spread in logits), else the
    first. ``feasible``: the run's feasible, scored candidates (:func:`.pareto.ranked`, flattened)."""
    fit = accuracy_fit((t.values[1], _first_pass(records[t.number])) for t in feasible if t.number in records)
    if fit is None:
        return todo[0]
    ref_cost = cost_limit if cost_limit is not None else max(t.values[1] for t in feasible)
    steps = staircase((t.values[1], records.get(t.number, {}).get("val_acc", t.values[0])) for t in feasible)
    best, best_score = todo[0], 0.0
    for t in todo:
        cost = t.values[1]
        mean = fit.mean(cost)
        gain = sum(w * area_gain(steps, (cost, _sigmoid(mean + fit.spread * x)), ref_cost)
                   for x, w in zip(_NODES, _WEIGHTS))
        score = gain / (macs.get(t.number, 0) + OVERHEAD_MACS)
        if score > best_score:
            best, best_score = t, score
    return best


def _first_pass(record: Mapping[str, Any]) -> float:
    """A record's validation accuracy after one pass (what a candidate not yet tuned would get)."""
    first = record.get("first_pass")
    return float((first or record)["val_acc"])


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))
