"""``tinycompile build``: compile a trained trial or a model file for a target, run it, check it bit for bit, report.

A model file (``.tflite``, ``.onnx``, ``.pt``/``.pt2``) imports through :mod:`tinycompile.frontends`; an int8 TFLite
model is also checked against TFLite's reference interpreter (:mod:`tinycompile.frontends.check`).

Back ends plug in by target kind: ``BACKENDS[kind]`` names a module exposing
``build(request: BuildRequest) -> BuildOutcome``. The MCU back end is ``tinycompile.mcu.command``; an FPGA back end
adds its module here under ``"fpga"`` and touches nothing else.

Builds are atomic: the back end writes a fresh temporary folder beside ``-o`` (``request.out``), which replaces the
output folder whole once the build has a verdict, pass or fail. An interrupted or crashed build leaves the old folder
as it was and no debris; the output folder is locked, so a second build into it is refused at once.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinycompile.accel.config import ARRAYS
from tinycompile.errors import UserError
from tinycompile.fileio import atomic_folder, check_out_dir, folder_lock
from tinycompile.frontends import is_model_file
from tinycompile.mcu.naming import DEFAULT_NAME, Naming
from tinycompile.targets import load_target

BACKENDS = {"mcu": "tinycompile.mcu.command", "fpga": "tinycompile.fpga.command"}


@dataclass(frozen=True)
class BuildRequest:
    """What every back end gets: the trial folder, the target, the output folder and the options."""

    trial: Path
    target: Any  # tinycompile.targets.Target
    out: Path  # an empty folder to write the build into (moved onto -o once the build has a verdict)
    codegen: str
    vectors: int
    array: int | None = None  # accelerator array size (fpga); None: the target's own
    model: Any = None  # tinycompile.frontends.ImportedModel when building a model file, else None
    inputs: Any = None  # int8 graph inputs (N, H, W, C) for a model file
    name: str = DEFAULT_NAME  # the MCU library's name: the prefix of its exported symbols (tinycompile.mcu.naming)


@dataclass(frozen=True)
class BuildOutcome:
    """What every back end returns: whether every output matched the integer reference, and its report."""

    ok: bool
    report: dict[str, Any]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``build`` subcommand."""
    p = sub.add_parser("build", help="quantize a trial, compile it for a target, run it and check it bit for bit")
    p.add_argument("trial", type=Path, metavar="trial|model",
                   help="a trial folder (spec.json, weights.pt, metrics.json) or a model file (.tflite, .onnx, .pt, .pt2)")
    p.add_argument("--target", required=True, help="a target name (tinycompile targets) or a YAML file")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (library, firmware, report.json)")
    p.add_argument("--codegen", choices=("c", "llvm"), default="c", help="TVM's C target (default) or its LLVM target")
    p.add_argument("--vectors", type=int, default=32, help="test inputs run on the target (>= 16)")
    p.add_argument("--array", type=int, choices=ARRAYS, help="fpga only: the accelerator's N x N array size")
    p.add_argument("--name", default=DEFAULT_NAME,
                   help=f"MCU targets: the C library's name, the prefix of every symbol it exports (default {DEFAULT_NAME}: "
                   f"{DEFAULT_NAME}_run); libraries of different names link into one firmware")
    p.add_argument("--inputs", type=Path, help="model files: an .npz whose array x holds (N, *input shape) test inputs "
                   "in the model's input dtype (default: random ones over its input range)")
    p.add_argument("--calib", type=Path, help="float models: an .npz whose array x holds calibration inputs "
                   "(N, *input shape), float32 (optional y: labels, for accuracy)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the back end of the target's kind; exit 0 only if every output matched."""
    target = load_target(args.target)
    if args.vectors < 16:
        raise UserError(f"--vectors must be >= 16, but got {args.vectors}")
    if args.array is not None and target.kind != "fpga":
        raise UserError(f"--array applies to the fpga target only, not {target.name} ({target.kind})")
    if args.name != DEFAULT_NAME and target.kind != "mcu":
        raise UserError(f"--name applies to MCU targets only, not {target.name} ({target.kind})")
    Naming(args.name)  # refuses a name that is no C identifier before anything is built
    model_file = is_model_file(args.trial)
    if not model_file and (args.inputs is not None or args.calib is not None):
        raise UserError("--inputs and --calib apply to model files (.tflite, .onnx, .pt, .pt2), not trial folders")
    out = check_out_dir(args.out, "-o").resolve()  # a symlinked -o: the build replaces the folder it names
    backend = backend_for(target.kind)
    if not model_file:
        from tinycompile.search.artifacts import local_trial_folder  # a trial another machine trained is fetched

        trial = local_trial_folder(args.trial)
    with folder_lock(out):
        _check_replaceable(out)
        try:
            with atomic_folder(out) as tmp:
                ok = _build(args, target, backend, tmp) if model_file else backend.build(
                    BuildRequest(trial, target, tmp, args.codegen, args.vectors, args.array, name=args.name)).ok
        except KeyboardInterrupt:
            raise UserError(f"build interrupted; {out} was left as it was") from None
    return 0 if ok else 1


def _check_replaceable(out: Path) -> None:
    """A build replaces its output folder whole: refuse (UserError) a folder with files that no build wrote, such as
    a project folder given to -o by mistake. A previous build (even a failing one) always holds report.json."""
    if out.is_dir() and any(out.iterdir()) and not (out / "report.json").is_file():
        raise UserError(f"-o {out} holds files but no report.json, so it is not a previous build; a build replaces its "
                        "output folder whole: give a new folder, or empty this one")


def _build(args: argparse.Namespace, target: Any, backend: Any, out: Path) -> bool:
    """Build a model file into ``out`` and check it against its oracles as well; True iff every check agreed."""
    from tinycompile.frontends.check import check_against_oracles
    from tinycompile.frontends import load_model

    model = load_model(args.trial, args.calib)
    inputs = model.test_inputs(args.inputs, args.vectors)
    request = BuildRequest(args.trial, target, out, args.codegen, len(inputs), args.array, model, inputs, args.name)
    outcome = backend.build(request)
    return check_against_oracles(model, out, outcome.ok)


def backend_for(kind: str) -> Any:
    """The back-end module of a target kind, or a UserError if it is not available."""
    name = BACKENDS.get(kind)
    if name is None:
        raise UserError(f"no build back end for target kind {kind!r}; known kinds: {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise UserError(f"the {kind} back end is not available yet (module {name} is missing)") from None
        raise
