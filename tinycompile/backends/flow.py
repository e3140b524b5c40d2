"""The shared front half of ``build``: a trial or a model file -> workload -> the target kind's back end -> compare
with the integer reference -> ``report.json``. Every back end gets the same workload and writes the same schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinycompile.backends.base import BuildResult, Workload
from tinycompile.backends.registry import get_backend
from tinycompile.backends.report import count_mismatches, make_report, print_report
from tinycompile.fileio import write_json
from tinycompile.quant import reference
from tinycompile.targets import Target

MIN_INPUTS = 16


def trial_workload(trial: Path, vectors: int) -> tuple[Workload, dict[str, Any]]:
    """Quantize a trained trial on its task's training split; the first ``vectors`` test inputs; its accuracies."""
    from tinycompile.quant.quantize import quantize
    from tinycompile.train import evaluate
    from tinycompile.trial import load_trial, trial_task

    spec, model, metrics = load_trial(trial)
    task = trial_task(trial, spec, metrics)
    graph = quantize(spec, model, task.x_train)
    graph.meta.update(task=task.name, trial=str(trial))
    float_acc = evaluate(model, task.x_test, task.y_test)
    int8_acc = reference.accuracy(graph, task.x_test, task.y_test)
    inputs = graph.quantize_input(task.x_test[: min(vectors, len(task.x_test))])
    source = {"trial": str(trial), "task": task.name, "float_test_accuracy": float_acc, "int8_test_accuracy": int8_acc,
              "accuracy_drop_points": 100.0 * (float_acc - int8_acc)}
    return Workload(graph, spec, inputs, str(trial)), source


def model_workload(model: Any, inputs: Any) -> tuple[Workload, dict[str, Any]]:
    """An imported model (:class:`tinycompile.frontends.ImportedModel`) as it is, on the given int8 inputs."""
    work = Workload(model.graph, model.spec, inputs, f"{model.path} ({model.format})", tuple(model.sources))
    return work, {"model": str(model.path), "format": model.format}


def build(work: Workload, source: dict[str, Any], target: Target, options: dict[str, Any], out: Path) -> dict[str, Any]:
    """Build ``work`` for ``target`` into ``out``, compare with the integer reference, write and print report.json."""
    from tinycompile.console import console

    backend = get_backend(target.kind)
    result = backend.build(work, target, options, out)
    report = finish(work, source, target, result, out)
    print_report(report, backend, console())
    return report


def finish(work: Workload, source: dict[str, Any], target: Target, result: BuildResult, out: Path) -> dict[str, Any]:
    """The verdict and report.json of a back end's result (``simulate`` re-runs end here too)."""
    mismatched = count_mismatches(result.outputs, reference.run(work.graph, work.inputs))
    report = make_report(work, target, result, mismatched, source)
    write_json(out / "report.json", report)
    return report


def build_trial(trial: Path, target: Target, out: Path, options: dict[str, Any] | None = None,
                vectors: int = 32) -> dict[str, Any]:
    """Build a trial folder for ``target`` into the folder ``out`` (no locking, no atomic replace: ``tinycompile build``
    adds those); ``options`` over the back end's defaults. Returns the report."""
    backend = get_backend(target.kind)
    work, source = trial_workload(Path(trial), vectors)
    return build(work, source, target, backend.options(options or {}, target), Path(out))
