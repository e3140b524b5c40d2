"""``tinycompile build --target <mcu>``: trial folder -> quantized graph -> library + firmware -> QEMU -> report.json."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from tinycompile.commands.build import BuildOutcome, BuildRequest
from tinycompile.console import console
from tinycompile.fileio import write_json
from tinycompile.mcu import backend
from tinycompile.mcu.naming import Naming
from tinycompile.quant import reference
from tinycompile.quant.quantize import quantize


def build(request: BuildRequest) -> BuildOutcome:
    """Run the whole MCU build for one trial or model file and target; write ``report.json`` into the output folder."""
    target, out = request.target, request.out
    backend.check_tools(target)
    if request.model is not None:
        return _build_model(request)
    from tinycompile.train import evaluate
    from tinycompile.trial import load_trial, trial_task

    spec, model, metrics = load_trial(request.trial)
    budget = backend.check_budget(spec, target)  # refuses before anything is built
    task = trial_task(request.trial, spec, metrics)
    log = console(stderr=True)
    log.print(f"[bold]build[/] {request.trial} for {target.name} ({request.codegen})")
    graph = quantize(spec, model, task.x_train)
    graph.meta.update(task=task.name, trial=str(request.trial))
    graph.save(out / "quant")
    float_acc = evaluate(model, task.x_test, task.y_test)
    int8_acc = reference.accuracy(graph, task.x_test, task.y_test)
    n = min(request.vectors, len(task.x_test))
    vectors = graph.quantize_input(task.x_test[:n])
    result = backend.build_and_run(graph, spec, target, out, vectors, request.codegen, naming=Naming(request.name))
    report = dict(result.report)
    report.update(trial=str(request.trial), task=task.name, float_test_accuracy=float_acc, int8_test_accuracy=int8_acc,
                  accuracy_drop_points=100.0 * (float_acc - int8_acc), budget=budget)  # fmt: skip
    write_json(out / "report.json", report)
    print_report(report)
    return BuildOutcome(result.ok, report)


def _build_model(request: BuildRequest) -> BuildOutcome:
    """An imported model: its graph as it is, the inputs the front half chose."""
    imported, target, out = request.model, request.target, request.out
    budget = backend.check_budget(imported.spec, target)
    console(stderr=True).print(f"[bold]build[/] {imported.path} ({imported.format}) for {target.name} ({request.codegen})")
    imported.graph.save(out / "quant")
    result = backend.build_and_run(imported.graph, imported.spec, target, out, request.inputs, request.codegen,
                                   naming=Naming(request.name))
    report = dict(result.report, model=str(imported.path), format=imported.format, budget=budget)
    for row in report["layers"]:
        row["source"] = imported.sources[row["index"]]
    write_json(out / "report.json", report)
    print_report(report)
    return BuildOutcome(result.ok, report)


def print_report(report: dict[str, Any]) -> None:
    """The per-layer table and the summary, on stdout."""
    table = Table(title=f"{report['target']} ({report['codegen']}): predicted cycles vs measured instructions")
    for col in ("#", "op", "ran on", "MACs", "predicted", "measured", "rel. error"):
        table.add_column(col, justify="right" if col not in ("op", "ran on") else "left")
    for row in report["layers"]:
        meas = row["measured_instructions"]
        rel = row["relative_error"]
        table.add_row(
            str(row["index"]), row["op"], row["ran_on"], f"{row['macs']:,}", f"{row['predicted_cycles']:,}",
            "-" if meas is None else f"{meas:,.0f}", "-" if rel is None else f"{100 * rel:+.0f}%",
        )  # fmt: skip
    table.add_row("", "total", "", f"{report['macs']:,}", f"{report['predicted_cycles']:,}", f"{report['measured_instructions']:,.0f}",
                  f"{100 * (report['total_relative_error'] or 0):+.0f}%")  # fmt: skip
    out = console()
    out.print(table)
    verdict = "[green]bit-exact[/]" if report["bit_exact"] else f"[red]{report['mismatched_vectors']} vectors differ[/]"
    out.print(
        f"{report['vectors']} test vectors: {verdict} vs the integer reference | "
        f"arena {report['arena_bytes']} B (planned {report['arena_planned_bytes']} B, {100 * report['arena_ratio']:.0f}% of all "
        f"activations) | scratch {report['workspace_bytes']} B | library flash {report['library_flash_bytes']} B | "
        f"{report['instructions_per_mac']:.2f} instr/MAC"
    )
    if "float_test_accuracy" in report:
        out.print(f"test accuracy: float {100 * report['float_test_accuracy']:.2f}% | int8 {100 * report['int8_test_accuracy']:.2f}%")
