"""``tinycompile build``: compile a trained trial or a model file for a target, run it, check it bit for bit, report.

A model file (``.tflite``, ``.onnx``, ``.pt``/``.pt2``) imports through :mod:`tinycompile.frontends`; an int8 TFLite
model is also checked against TFLite's reference interpreter (:mod:`tinycompile.frontends.check`). The work itself is
the shared front half (:mod:`tinycompile.backends.flow`) and the back end of the target's kind
(:mod:`tinycompile.backends`), which also adds its own options here.

Builds are atomic: the back end writes a fresh temporary folder beside ``-o``, which replaces the output folder whole
once the build has a verdict, pass or fail. An interrupted or crashed build leaves the old folder as it was and no
debris; the output folder is locked, so a second build into it is refused at once.
"""

from __future__ import annotations

import argparse
import gc
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinycompile.backends import get_backend, kinds
from tinycompile.backends.flow import MIN_INPUTS
from tinycompile.errors import UserError
from tinycompile.fileio import atomic_folder, check_out_dir, folder_lock
from tinycompile.frontends import is_model_file
from tinycompile.targets import Target, load_target


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``build`` subcommand, with every back end's options in a group of its own."""
    p = sub.add_parser("build", help="quantize a trial, compile it for a target, run it and check it bit for bit")
    p.add_argument("trial", type=Path, metavar="trial|model",
                   help="a trial folder (spec.json, weights.pt, metrics.json) or a model file (.tflite, .onnx, .pt, .pt2)")
    p.add_argument("--target", required=True, help="a target name (tinycompile targets) or a YAML file")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (library, firmware, report.json)")
    p.add_argument("--vectors", type=int, default=32, help=f"test inputs run on the target (>= {MIN_INPUTS})")
    p.add_argument("--inputs", type=Path, help="model files: an .npz whose array x holds (N, *input shape) test inputs "
                   "in the model's input dtype (default: random ones over its input range)")
    p.add_argument("--calib", type=Path, help="float models: an .npz whose array x holds calibration inputs "
                   "(N, *input shape), float32 (optional y: labels, for accuracy)")
    add_backend_options(p)
    p.set_defaults(func=run)


class _KindGroup:
    """One back end's argument group: an option another kind added already (the same flag) is shared with it."""

    def __init__(self, p: argparse.ArgumentParser, kind: str, owners: dict[str, tuple[tuple[str, ...], str]]) -> None:
        self.p, self.kind, self.owners = p, kind, owners
        self.group = p.add_argument_group(get_backend(kind).title or f"{kind} targets")

    def add_argument(self, *flags: str, **kwargs: Any) -> argparse.Action:
        """``add_argument`` of the group, or the action another kind added under the same flag."""
        known = self.p._option_string_actions  # noqa: SLF001 - argparse has no public lookup of an added option
        action = next((known[f] for f in flags if f in known), None) or self.group.add_argument(*flags, **kwargs)
        kinds_, flag = self.owners.get(action.dest, ((), action.option_strings[-1]))
        self.owners[action.dest] = ((*kinds_, self.kind), flag)
        return action


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """Every back end's options, in a group per kind; :func:`backend_options` picks the target's."""
    owners: dict[str, tuple[tuple[str, ...], str]] = {}  # option dest -> (the kinds that take it, its flag)
    for kind in kinds():
        get_backend(kind).add_options(_KindGroup(p, kind, owners))  # type: ignore[arg-type]
    p.set_defaults(option_owners=owners)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the back end of the target's kind; exit 0 only if every output matched."""
    target = load_target(args.target)
    if args.vectors < MIN_INPUTS:
        raise UserError(f"--vectors must be >= {MIN_INPUTS}, but got {args.vectors}")
    options = backend_options(args, target)
    model_file = is_model_file(args.trial)
    if not model_file and (args.inputs is not None or args.calib is not None):
        raise UserError("--inputs and --calib apply to model files (.tflite, .onnx, .pt, .pt2), not trial folders")
    out = check_out_dir(args.out, "-o").resolve()  # a symlinked -o: the build replaces the folder it names
    if not model_file:
        from tinycompile.search.artifacts import local_trial_folder  # a trial another machine trained is fetched

        trial = local_trial_folder(args.trial)
    with folder_lock(out), interrupt_flag() as interrupted:
        _check_replaceable(out)
        try:
            with atomic_folder(out) as tmp:
                ok = _build_model(args, target, options, tmp) if model_file else _build_trial(trial, args, target, options, tmp)
        except BaseException:
            if not interrupted:
                raise
            ok = None  # Ctrl-C, or what a library made of it (TVM's FFI turns it into a RuntimeError)
    if ok is None:
        # Objects the interrupt left half-built (TVM's) warn as they are freed: let them, before the last line is ours.
        gc.collect()
        raise UserError(f"build interrupted; {out} was left as it was")
    return 0 if ok else 1


@contextmanager
def interrupt_flag() -> Iterator[list[bool]]:
    """While inside, SIGINT still raises KeyboardInterrupt, and also leaves a mark in the yielded list: an interrupt
    that a library wraps in another exception is still known to be one. (Only the main thread can set handlers.)"""
    seen: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def on_sigint(signum: int, frame: Any) -> None:
        seen.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def backend_options(args: argparse.Namespace, target: Target, strict: bool = True) -> dict[str, Any]:
    """The options of the target's back end; with ``strict``, a UserError for an option another kind's back end owns."""
    owners: dict[str, tuple[tuple[str, ...], str]] = args.option_owners
    for dest, (kinds_, flag) in owners.items():
        if strict and target.kind not in kinds_ and getattr(args, dest, None) is not None:
            raise UserError(f"{flag} applies to {' and '.join(kinds_)} targets only, not {target.name} ({target.kind})")
    given = {dest: getattr(args, dest) for dest, (kinds_, _) in owners.items() if target.kind in kinds_}
    return get_backend(target.kind).options(given, target)


def _check_replaceable(out: Path) -> None:
    """A build replaces its output folder whole: refuse (UserError) a folder with files that no build wrote, such as
    a project folder given to -o by mistake. A previous build (even a failing one) always holds report.json."""
    if out.is_dir() and any(out.iterdir()) and not (out / "report.json").is_file():
        raise UserError(f"-o {out} holds files but no report.json, so it is not a previous build; a build replaces its "
                        "output folder whole: give a new folder, or empty this one")


def _build_trial(trial: Path, args: argparse.Namespace, target: Target, options: dict[str, Any], out: Path) -> bool:
    """Build a trial folder into ``out``; True iff every output matched."""
    from tinycompile.backends import flow

    work, source = flow.trial_workload(trial, args.vectors)
    return bool(flow.build(work, source, target, options, out)["bit_exact"])


def _build_model(args: argparse.Namespace, target: Target, options: dict[str, Any], out: Path) -> bool:
    """Build a model file into ``out`` and check it against its oracles as well; True iff every check agreed."""
    from tinycompile.backends import flow
    from tinycompile.frontends import load_model
    from tinycompile.frontends.check import check_against_oracles

    model = load_model(args.trial, args.calib)
    work, source = flow.model_workload(model, model.test_inputs(args.inputs, args.vectors))
    report = flow.build(work, source, target, options, out)
    return check_against_oracles(model, out, bool(report["bit_exact"]))
