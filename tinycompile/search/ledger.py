"""The study as a ledger of ``--trials`` places, read from the storage that every worker shares.

A search must end with exactly N finished (COMPLETE) trials and never train one configuration twice, however many
processes on however many machines fill the study. Optuna's ``MaxTrialsCallback`` checks the count only after a trial
ends, so every worker that was mid-trial at that moment overshoots; here a trial checks *before* it trains.

The check is atomic because RDBStorage numbers trials under a row lock on the study: a trial with a smaller number was
committed before this one was created, so it is visible to this one's check. A trial may train only if fewer than N
places are held by trials numbered before it; the trials after it see it and count it in turn. No two checks can both
take the last place.

A trial holds a place while it can still finish: RUNNING, WAITING (queued, e.g. a retry), COMPLETE, or FAILed by a
crash after recording its result (:data:`RESULT`), which :mod:`tinycompile.search.storage` turns into a COMPLETE copy.
The copy names its original in :data:`COMPLETED_FROM` and holds the same place, so the two are counted once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from tinycompile.arch import ArchSpec

RESULT = "result"  # user attr: the objective's values, set once the trial's files are stored (the trial is done)
COMPLETED_FROM = "completed_from"  # system attr of a COMPLETE copy: the number of the crashed trial it finishes
DUPLICATE_OF = "duplicate_of"  # user attr of a skipped trial: the trial that holds its configuration
SURPLUS = "surplus"  # user attr of a trial skipped because N places were taken before it
NETWORK = "network"  # user attr (--strategy supernet): the key of the trial's network, whatever choices made it

_LIVE = (TrialState.RUNNING, TrialState.WAITING, TrialState.COMPLETE)


def place(trial: FrozenTrial) -> int | None:
    """The place ``trial`` holds, named by the number of the trial that took it; ``None`` if it holds none."""
    if trial.state in _LIVE or (trial.state == TrialState.FAIL and RESULT in trial.user_attrs):
        return int(trial.system_attrs.get(COMPLETED_FROM, trial.number))
    return None


def places_before(trials: Iterable[FrozenTrial], number: int) -> int:
    """How many places trials other than trial ``number`` hold ahead of it: it may train only if this is < N."""
    return len({p for t in trials if t.number != number and (p := place(t)) is not None and p < number})


def places_in_use(trials: Iterable[FrozenTrial]) -> int:
    """Places held by finished trials or trials in progress: a worker starts a trial only while this is < N.

    Queued (WAITING) trials are left out: ``ask`` pops them first, so a new trial is the queued one itself.
    """
    return len({p for t in trials if t.state != TrialState.WAITING and (p := place(t)) is not None})


def finished(trials: Iterable[FrozenTrial]) -> int:
    """The COMPLETE trials: what the user asked N of."""
    return sum(t.state == TrialState.COMPLETE for t in trials)


def twin_of(trials: Iterable[FrozenTrial], number: int, params: Mapping[str, Any],
            network: str | None = None) -> int | None:
    """The number of another trial that holds a place with the same configuration (or, given ``network``, the same
    network: :func:`network_key`), or ``None``.

    Both trials of a pair write their parameters (and network) before they check, so at least one of them sees the
    other: at most one of the two trains (rarely neither, and the sampler proposes the configuration again later). A
    finished twin is named before one in progress.
    """
    twins = [t for t in trials if t.number != number and place(t) is not None
             and (t.params == params or (network is not None and t.user_attrs.get(NETWORK) == network))]
    twins.sort(key=lambda t: (t.state != TrialState.COMPLETE, t.number))
    return twins[0].number if twins else None


def network_key(spec: ArchSpec) -> str:
    """A key of the network ``spec`` describes (its input, classes and layers; not the choices that made it)."""
    text = repr((spec.input_shape, spec.num_classes, spec.layers))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
