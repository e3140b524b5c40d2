"""The second oracle of a model-file build: the target's outputs (``io.npz``) against TFLite's own interpreters.

The back end already checked the target against the integer reference; for an int8 TFLite model this adds TFLite's
reference kernels (the field's definition of the model's integer semantics) and, where it installs, TFLite Micro,
whose arena is recorded beside ours; for a pre-quantized ONNX model, ONNX Runtime running it. A float model's
report gets its float vs int8 agreement.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.console import console
from tinycompile.errors import UserError
from tinycompile.fileio import IO_NPZ, write_json
from tinycompile.frontends import ImportedModel


def check_against_oracles(model: ImportedModel, out: Path, target_ok: bool) -> bool:
    """Compare the build in ``out`` with the model's oracles, record them in report.json; True iff all agree."""
    report_path = Path(out) / "report.json"
    report = json.loads(report_path.read_text())
    if "error" in report:  # the target did not finish (the accelerator stopped): no outputs to compare
        report["verdict"] = "fail"
        write_json(report_path, report)
        return False
    with np.load(Path(out) / IO_NPZ) as io:
        inputs, outputs = io["inputs"], io["outputs"]
    oracles: dict[str, Any] = {}
    if model.tflite is not None:
        oracles = tflite_oracles(model, inputs, outputs)
    elif model.prequantized and model.format == "onnx":
        oracles = {"onnxruntime": onnxruntime_oracle(model, inputs, outputs)}
    if model.agreement:
        report["float_vs_int8"] = model.agreement
    report["oracles"] = oracles
    micro = oracles.get("tflite_micro", {})
    if "arena_bytes" in micro and "memory" in report:  # our arena side by side with TFLite Micro's, same model
        report["memory"]["tflm_arena_bytes"] = micro["arena_bytes"]
    agree = all(o.get("bit_exact", True) for o in oracles.values())
    report["bit_exact_vs_oracles"] = agree
    ok = target_ok and agree
    report["verdict"] = "pass" if ok else "fail"
    write_json(report_path, report)
    _print(report)
    return ok


def tflite_oracles(model: ImportedModel, inputs: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
    """The target's int8 outputs against TFLite's reference kernels, and TFLite Micro against both (with its arena)."""
    from tinycompile.frontends import tflite_oracle

    imp = model.tflite
    x = imp.model_inputs(inputs)
    want = tflite_oracle.reference_tensors(model.path, x, [imp.int8_output_tensor])[imp.int8_output_tensor]
    differ = _differing_rows(outputs, want)
    result: dict[str, Any] = {"tflite_reference": {
        "engine": "ai-edge-litert, reference kernels (OpResolverType.BUILTIN_REF)", "inputs": int(len(x)),
        "mismatched_inputs": differ, "bit_exact": differ == 0}}  # fmt: skip
    try:
        micro = tflite_oracle.tflm_run(model.path, x)
    except UserError as exc:
        result["tflite_micro"] = {"skipped": str(exc)}
        return result
    expected = tflite_oracle.reference_outputs(model.path, x)
    differ_micro = _differing_rows(micro.outputs, expected)
    result["tflite_micro"] = {"engine": "tflite-micro Python interpreter", "inputs": int(len(x)),
                              "mismatched_inputs_vs_reference": differ_micro, "arena_bytes": int(micro.arena_bytes)}
    return result


def onnxruntime_oracle(model: ImportedModel, inputs: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
    """The target's int8 outputs against ONNX Runtime running the pre-quantized model itself: a comparison, not a verdict
    (its int8 kernels requantize in float where ours use TFLite's fixed-point arithmetic, so values may differ by a
    step, more where a difference passes through several layers)."""
    import onnxruntime as ort

    graph = model.graph
    sess = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    spec = sess.get_inputs()[0]
    q = graph.input_q  # (N, H, W, C) int8 -> the floats the model's first QuantizeLinear maps back exactly
    x = ((inputs.astype(np.float32) - q.zero_point) * np.float32(q.scale)).astype(np.float32)
    x = x.transpose(0, 3, 1, 2) if model.layout == "NCHW" else x
    x = x.reshape(len(x), *[int(d) for d in spec.shape[1:]])
    y = np.concatenate([sess.run(None, {spec.name: xi[None]})[0] for xi in x])
    if model.layout == "NCHW" and y.ndim >= 3:  # a map: channels last, as the int8 graph holds it
        y = np.moveaxis(y, 1, -1)
    y = y.reshape(len(x), -1)
    q = graph.ops[-1].out_q
    want = np.clip(np.round(y / q.scale) + q.zero_point, -128, 127)
    got = np.asarray(outputs, np.int64).reshape(len(outputs), -1)
    steps = int(np.abs(got - want).max()) if got.size else 0
    return {"engine": f"onnxruntime {ort.__version__}, CPU (the model file as given)", "inputs": int(len(x)),
            "mismatched_inputs": _differing_rows(got, want), "max_step_difference": steps,
            "exact_values": float((got == want).mean()) if got.size else 1.0,
            "top1_agreement": float((got.argmax(1) == want.argmax(1)).mean()) if got.size else 1.0}


def _differing_rows(got: np.ndarray, want: np.ndarray) -> int:
    got = np.asarray(got).reshape(len(got), -1)
    want = np.asarray(want).reshape(len(want), -1)
    if got.shape != want.shape:
        return len(got)
    return int((got != want).any(axis=1).sum())


def _print(report: dict[str, Any]) -> None:
    out = console()
    for name, o in report.get("oracles", {}).items():
        if "skipped" in o:
            out.print(f"{name}: not run ({o['skipped']})")
        elif "max_step_difference" in o:
            out.print(f"{name} ({o['engine']}): {o['exact_values']:.1%} of the output values equal, the others within "
                      f"{o['max_step_difference']} step(s), top-1 agreement {o['top1_agreement']:.3f} on {o['inputs']} "
                      "inputs (it requantizes in float)")
        elif "bit_exact" in o:
            verdict = "[green]bit-exact[/]" if o["bit_exact"] else f"[red]{o['mismatched_inputs']} inputs differ[/]"
            out.print(f"{name} ({o['engine']}): {verdict} on {o['inputs']} inputs")
        else:
            out.print(f"{name}: {o['mismatched_inputs_vs_reference']} of {o['inputs']} inputs differ from the reference kernels; "
                      f"arena {o['arena_bytes']:,} B")
    agree = report.get("float_vs_int8")
    if agree:
        out.print("float vs int8: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in agree.items()))
