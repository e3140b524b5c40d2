"""The back-end interface: what a target kind provides to the search's cost model, to ``build`` and to ``simulate``.

A back end is one :class:`Backend` subclass per target kind (the ``kind:`` of a target YAML), registered in
:mod:`tinycompile.backends.registry`. The shared front half (:mod:`tinycompile.backends.flow`) turns a trial or a
model file into a :class:`Workload`, hands it to the back end, compares what the back end ran with the integer
reference and writes the one report schema (:mod:`tinycompile.backends.report`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tinycompile.arch import ArchSpec, Layer, Shape
from tinycompile.errors import UserError
from tinycompile.quant.graph import QuantGraph
from tinycompile.targets import Target


@dataclass(frozen=True)
class Workload:
    """What every back end builds: the int8 graph, its ArchSpec (for the cost model) and the test inputs."""

    graph: QuantGraph
    spec: ArchSpec
    inputs: np.ndarray  # int8 (N, *graph.input_shape)
    label: str  # what is being built (a trial folder or a model file), for progress lines
    layer_sources: tuple[str, ...] = ()  # per op, what it came from in an imported model (its op and tensor names)


@dataclass
class BuildResult:
    """What a back end reports of one build; the front half adds the verdict and the common report core.

    ``layers`` rows hold at least ``index``, ``op``, ``ran_on``, ``macs``, ``predicted`` and ``measured`` (in
    ``unit``, None where not measured); a back end may add keys of its own to a row.
    """

    outputs: np.ndarray | None  # (N, *graph.output_shape) int8 as the target produced them; None if it did not finish
    unit: str  # what predicted and measured count: "instructions" or "cycles"
    layers: list[dict[str, Any]]
    predicted: float  # the whole network, in unit
    measured: float | None
    memory: dict[str, int | None]  # arena_bytes, scratch_bytes, flash_bytes
    section: dict[str, Any]  # the back end's own part of report.json
    layer_mismatches: list[dict[str, int]] = field(default_factory=list)  # extra checks the back end made
    error: dict[str, Any] | None = None  # the target stopped before it finished (its own error status)


class Backend:
    """One kind of target. Subclasses set ``kind`` and override what their targets support."""

    kind: ClassVar[str]
    title: ClassVar[str] = ""  # one line for ``--help``: which targets this kind covers
    defaults: ClassVar[dict[str, Any]] = {}  # option dest -> default; options are added with default None

    def add_options(self, group: argparse._ArgumentGroup) -> None:
        """Add this kind's ``build`` options to ``group`` (each with ``default=None``; :attr:`defaults` fills them)."""

    def options(self, given: dict[str, Any], target: Target) -> dict[str, Any]:
        """The build options for ``target``: ``given`` (this kind's options as parsed) over :attr:`defaults`,
        checked (UserError for a bad value)."""
        return {k: given.get(k) if given.get(k) is not None else v for k, v in self.defaults.items()}

    def check_target(self, target: Target) -> None:
        """Refuse (UserError naming the file and key) a target YAML this back end cannot use (its sections are in
        ``target.raw``)."""

    def layer_cycles(self, layer: Layer, in_shape: Shape, out_shape: Shape, macs: int, target: Target) -> float:
        """The cost model's cycles for one layer of an ArchSpec on ``target``."""
        raise NotImplementedError

    def constant_bytes(self, layer: Layer, in_shape: Shape, out_shape: Shape, target: Target) -> int:
        """The cost model's bytes of one layer's constants (weights, requantization tables) as this kind stores them."""
        raise NotImplementedError

    def placements(self, graph: QuantGraph, target: Target, options: dict[str, Any]) -> list[str]:
        """Where each op of ``graph`` would run with these build options (``inspect``): a unit, ``view`` or ``missing``."""
        return ["core"] * len(graph.ops)

    def build(self, work: Workload, target: Target, options: dict[str, Any], out: Path) -> BuildResult:
        """Compile ``work`` for ``target`` into the empty folder ``out``, run its inputs there, report."""
        raise NotImplementedError

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        """Lines printed under the report's table: what this kind measures beyond the core."""
        return []

    def owns(self, folder: Path) -> bool:
        """Whether ``folder`` is a build folder this back end can :meth:`simulate` (intact or not)."""
        return False

    def simulate(self, folder: Path) -> int:
        """Re-run a build folder written by :meth:`build`; exit code 0 only if every output matched."""
        raise UserError(f"{self.kind} builds cannot be re-run by `tinycompile simulate`")
