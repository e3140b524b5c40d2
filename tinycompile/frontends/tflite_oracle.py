"""The oracles a build of an imported TFLite model is compared against.

* :func:`reference_outputs` / :func:`reference_tensors`: TFLite's own interpreter (``ai-edge-litert``) with the
  *reference* kernels (``OpResolverType.BUILTIN_REF``: no XNNPACK delegate, no optimized kernels, one thread).
  The optimized int8 kernels round differently from the reference ones on some ops (ADD, MEAN, ...), so they are
  never used here.
* :func:`tflm_run`: TFLite Micro's Python interpreter (``tflite-micro``), the runtime an MCU would use, which also
  reports the size of its tensor arena.

The two agree bit for bit on CONV_2D, DEPTHWISE_CONV_2D, ADD, pools, MEAN, SOFTMAX, LOGISTIC, TANH, PAD,
CONCATENATION, QUANTIZE and RESHAPE, and on the MobileNetV3 and Keras Conv1D test models' MUL, HARD_SWISH, SUB,
MAXIMUM, MINIMUM, SQUEEZE and EXPAND_DIMS (TFLite Micro has no GELU). One known difference: the int8 FULLY_CONNECTED reference kernel of LiteRT
requantizes in floating point, ``round(acc * (double(s_in) * s_w / s_out))`` with ties away from zero, while
TFLite Micro (like the optimized kernels and ``tinycompile.quant.intmath``) uses the fixed-point double rounding;
the two differ by one on rare near-ties.

Every model is fed one sample at a time: ``inputs`` has shape ``(N, *input_shape)`` (the model's own input shape,
batch dimension included) and the model's input dtype; results come back as ``(N, *output_shape)``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.errors import UserError

ModelSource = bytes | bytearray | memoryview | str | os.PathLike

_LITERT_PIP = "pip install ai-edge-litert==2.3.0"
_TFLM_PIP = "pip install tflite-micro==0.dev20261023182759"
# TFLM's allocator says these when the arena, not the model, is the problem ("... Requested: 24, available 16,
# missing: 8"); its generic "TFLM failed to allocate tensors" follows any failure, so it tells nothing.
_ARENA_TOO_SMALL = ("missing:", "Failed to allocate", "Failed to resize buffer")
_FIRST_ARENA = 64 * 1024
_ALIGN = 16  # TFLM's MicroArenaBufferAlignment()
_LARGEST_ARENA = 1 << 30


@dataclass(frozen=True)
class TflmResult:
    """Outputs of TFLite Micro and the tensor arena they were computed in (see :func:`tflm_run`)."""

    outputs: np.ndarray
    arena_bytes: int
    arena_head_bytes: int
    arena_tail_bytes: int


def reference_outputs(model: ModelSource, inputs: np.ndarray) -> np.ndarray:
    """Run every input row through TFLite's reference kernels; returns ``(N, *output_shape)`` in the output dtype."""
    interpreter = _reference_interpreter(_model_bytes(model), preserve_all_tensors=False)
    out = interpreter.get_output_details()[0]
    results = [interpreter.get_tensor(out["index"]).copy() for _ in _invoke_rows(interpreter, inputs)]
    return _stack(results, tuple(out["shape"]), out["dtype"])


def reference_tensors(model: ModelSource, inputs: np.ndarray, tensor_indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Like :func:`reference_outputs`, but returns the given tensors (flatbuffer indices of subgraph 0) per input."""
    interpreter = _reference_interpreter(_model_bytes(model), preserve_all_tensors=True)
    indices = [int(i) for i in tensor_indices]
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    for i in indices:
        if i not in details:
            raise UserError(f"tensor index {i} is not in the model (its subgraph has {len(details)} tensors)")
    collected: dict[int, list[np.ndarray]] = {i: [] for i in indices}
    for _ in _invoke_rows(interpreter, inputs):
        for i in indices:
            try:
                collected[i].append(interpreter.get_tensor(i).copy())
            except ValueError as e:
                raise UserError(f"tensor {i} ({details[i]['name']}) has no value to read: {_one_line(e)}") from None
    return {i: _stack(v, tuple(details[i]["shape"]), details[i]["dtype"]) for i, v in collected.items()}


def tflm_run(model: ModelSource, inputs: np.ndarray) -> TflmResult:
    """Run every input row through TFLite Micro in the smallest tensor arena it accepts; returns outputs and sizes.

    "Arena" is TFLM's tensor arena: the one byte buffer handed to its ``MicroInterpreter``, which holds, at its
    head, the activation and scratch buffers (overlapped by TFLM's greedy memory planner) and the temporaries of the
    kernels' Prepare, and at its tail the persistent runtime data (tensor and node structs, the kernels' op data
    such as per-channel multipliers, and the allocator objects: the Python interpreter's recording allocator is a
    few hundred bytes bigger than a device's plain one). Weights stay in the flatbuffer and are not counted;
    neither are the interpreter object, the stack or the model itself.

    ``arena_bytes`` is the smallest multiple of 16 bytes (TFLM's alignment, and how a device declares its arena)
    with which this interpreter allocates the model and runs the first input, found by bisection; the outputs are
    computed in an arena of exactly that size.
    ``arena_head_bytes`` and ``arena_tail_bytes`` are what TFLM itself reports as used (``RecordingMicroAllocator``,
    the figure of ``MicroInterpreter::arena_used_bytes()``); their sum is smaller than ``arena_bytes`` when Prepare's
    temporaries need more room than the planned activations (small models).
    """
    data = _model_bytes(model)
    runtime = _tflm_runtime()
    rows = _tflm_rows(runtime, data, inputs)
    with _ArenaProber(data, rows[:1]) as prober:
        # Grow the arena until the model fits, telling a model TFLM rejects from an arena that is too small.
        size = _FIRST_ARENA
        while True:
            ok, log = prober.works(size)
            if ok:
                break
            if not any(m in log for m in _ARENA_TOO_SMALL):
                raise UserError(f"TFLite Micro rejects the model: {_one_line(log)}")
            if size >= _LARGEST_ARENA:
                raise UserError(f"TFLite Micro needs more than {_LARGEST_ARENA} bytes of arena: {_one_line(log)}")
            size *= 4
        # TFLM's own figures, from an arena with room to spare (in a tight one, the head takes what is left).
        head, tail = _arena_usage(log)
        # Sizes are multiples of 16, TFLM's buffer alignment: the padding of its allocations depends on where the
        # arena ends, so only on that grid is "works" monotonic. The bytes TFLM reports as used in a larger arena
        # of the grid were all allocated, so no smaller one can work: bisect up from there.
        lo, hi = -(-(head + tail) // _ALIGN), size // _ALIGN
        while lo < hi:
            mid = (lo + hi) // 2
            if prober.works(mid * _ALIGN)[0]:
                hi = mid
            else:
                lo = mid + 1
        hi *= _ALIGN
    # An arena the prober ran in is safe to use here (TFLM crashes only on its failure paths).
    interpreter, log = _tflm_interpreter(runtime, data, hi)
    if interpreter is None:
        raise UserError(f"TFLite Micro ran in {hi} bytes of arena in a probe but not here: {_one_line(log)}")
    return TflmResult(_tflm_invoke(interpreter, rows), hi, head, tail)


# ------------------------------------------------------------------------------------------------ internals


def _model_bytes(model: ModelSource) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    path = Path(model)
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the TFLite model {path}: {e.strerror or e}") from None


def _one_line(error: BaseException | str) -> str:
    """An interpreter's (often multi-line) message as one line."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return "; ".join(dict.fromkeys(lines)) or type(error).__name__


def _reference_interpreter(data: bytes, preserve_all_tensors: bool) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise UserError(f"the TFLite reference interpreter is not installed: {_LITERT_PIP}") from None
    try:
        interpreter = Interpreter(
            model_content=data,
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
            experimental_preserve_all_tensors=preserve_all_tensors,
            num_threads=1,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise UserError(f"the TFLite reference interpreter rejects the model: {_one_line(e)}") from None
    if len(interpreter.get_input_details()) != 1 or len(interpreter.get_output_details()) != 1:
        raise UserError(
            f"the oracle runs models with one input and one output; this one has "
            f"{len(interpreter.get_input_details())} and {len(interpreter.get_output_details())}"
        )
    return interpreter


def _check_inputs(inputs: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``inputs`` as ``(N, *shape)`` of ``dtype``; a mismatch is the caller's mistake, said in one line."""
    arr = np.asarray(inputs)
    if arr.dtype != dtype:
        raise UserError(f"the model's input is {np.dtype(dtype).name}, but the inputs are {arr.dtype.name}")
    if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape:
        raise UserError(f"inputs must have shape (N, {', '.join(map(str, shape))}), got {tuple(arr.shape)}")
    return np.ascontiguousarray(arr)


def _invoke_rows(interpreter: Any, inputs: np.ndarray) -> Iterator[int]:
    """Set each row as the input and invoke; yields the row number once the outputs are ready."""
    inp = interpreter.get_input_details()[0]
    rows = _check_inputs(inputs, tuple(int(d) for d in inp["shape"]), np.dtype(inp["dtype"]))
    for n, row in enumerate(rows):
        interpreter.set_tensor(inp["index"], row)
        try:
            interpreter.invoke()
        except (ValueError, RuntimeError) as e:
            raise UserError(f"the TFLite reference interpreter fails on the model: {_one_line(e)}") from None
        yield n


def _stack(results: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    if not results:
        return np.zeros((0, *shape), dtype)
    return np.stack(results)


@contextlib.contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Capture what C++ code writes to file descriptor 2 (TFLM reports through it); the list gets the text."""
    sink: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))


def _tflm_runtime() -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise UserError(f"TFLite Micro's Python interpreter is not installed: {_TFLM_PIP}") from None
    return runtime


def _tflm_interpreter(runtime: Any, data: bytes, arena_size: int) -> tuple[Any | None, str]:
    """A TFLM interpreter with an arena of ``arena_size`` bytes, or None and what TFLM printed on failing."""
    with _stderr_captured() as log:
        try:
            interpreter = runtime.Interpreter.from_bytes(data, arena_size=arena_size)
        except (RuntimeError, ValueError) as e:
            failure: str | None = str(e)
        else:
            failure = None
    if failure is None:
        return interpreter, log[0]
    return None, f"{log[0]}\n{failure}"


# Run by the prober in a child process: TFLM crashes on some failure paths (e.g. "All temp buffers must be freed
# before calling ResetTempAllocations()" when FULLY_CONNECTED's Prepare runs out of arena), so arena sizes that may
# fail are never tried in the caller's process. Protocol: one arena size per line on stdin; per size, the log of
# the attempt is written to the log file and one line "ok" or "fail" to stdout.
_PROBE_SCRIPT = """
import os, sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
probe = np.load(sys.argv[2])
log_path = sys.argv[3]
for line in sys.stdin:
    size = int(line)
    with open(log_path, "wb") as log:
        os.dup2(log.fileno(), 2)
        try:
            interpreter = runtime.Interpreter.from_bytes(data, arena_size=size)
            for row in probe:
                interpreter.set_input(row, 0)
                interpreter.invoke()
            interpreter.print_allocations()
            answer = "ok"
        except Exception as e:
            os.write(2, ("\\n" + str(e)).encode())
            answer = "fail"
    sys.stdout.write(answer + "\\n")
    sys.stdout.flush()
"""


class _ArenaProber:
    """Tries arena sizes for one model in a child process, restarting the child whenever TFLM crashes it."""

    def __init__(self, data: bytes, probe: np.ndarray) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="tflm-arena-")
        root = Path(self._dir.name)
        (root / "model.tflite").write_bytes(data)
        np.save(root / "probe.npy", probe)
        self._args = [sys.executable, "-c", _PROBE_SCRIPT, str(root / "model.tflite"), str(root / "probe.npy"),
                      str(root / "probe.log")]
        self._log = root / "probe.log"
        self._child: subprocess.Popen[str] | None = None

    def __enter__(self) -> _ArenaProber:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()
        self._dir.cleanup()

    def works(self, size: int) -> tuple[bool, str]:
        """Whether TFLM allocates the model and runs the probe input in ``size`` bytes, and what it printed."""
        if self._child is None:
            self._child = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, text=True)
        assert self._child.stdin is not None and self._child.stdout is not None
        try:
            self._child.stdin.write(f"{size}\n")
            self._child.stdin.flush()
            answer = self._child.stdout.readline().strip()
        except BrokenPipeError:
            answer = ""
        log = self._log.read_text("utf-8", "replace") if self._log.exists() else ""
        if answer in ("ok", "fail"):
            return answer == "ok", log
        self._stop()  # it crashed: what it printed first still says why
        return False, f"{log}\nTFLite Micro crashed with an arena of {size} bytes"

    def _stop(self) -> None:
        if self._child is not None:
            if self._child.stdin is not None:
                with contextlib.suppress(OSError):
                    self._child.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(timeout=10)
            if self._child.poll() is None:
                self._child.kill()
                self._child.wait()
            if self._child.stdout is not None:
                self._child.stdout.close()
            self._child = None


def _tflm_rows(runtime: Any, data: bytes, inputs: np.ndarray) -> np.ndarray:
    """Check ``inputs`` against the model's input, which the interpreter reads without needing an arena."""
    try:
        model = runtime.convert_bytearray_to_object(bytearray(data))
        graph = model.subgraphs[0]
        tensor = graph.tensors[graph.inputs[0]]
        n_inputs, n_outputs = len(graph.inputs), len(graph.outputs)
    except Exception as e:  # noqa: BLE001 - any parse failure of a foreign file is the user's model
        raise UserError(f"TFLite Micro cannot parse the model: {_one_line(e)}") from None
    if n_inputs != 1 or n_outputs != 1:
        raise UserError(
            f"the oracle runs models with one input and one output; this one has {n_inputs} and {n_outputs}"
        )
    types = runtime.schema_fb.TensorType
    dtypes = {types.INT8: np.int8, types.FLOAT32: np.float32, types.INT32: np.int32, types.UINT8: np.uint8,
              types.INT16: np.int16}
    if tensor.type not in dtypes:
        raise UserError(f"TFLite Micro oracle: unsupported input tensor type {tensor.type}")
    return _check_inputs(inputs, tuple(int(d) for d in tensor.shape), np.dtype(dtypes[tensor.type]))


def _tflm_invoke(interpreter: Any, rows: np.ndarray) -> np.ndarray:
    outputs = []
    for row in rows:
        with _stderr_captured() as log:
            try:
                interpreter.set_input(row, 0)
                interpreter.invoke()
            except (RuntimeError, ValueError) as e:
                failure: str | None = str(e)
            else:
                failure = None
        if failure is not None:
            raise UserError(f"TFLite Micro fails on the model: {_one_line(log[0] + chr(10) + failure)}")
        outputs.append(np.array(interpreter.get_output(0), copy=True))
    details = interpreter.get_output_details(0)
    return _stack(outputs, tuple(int(d) for d in details["shape"]), details["dtype"])


def _arena_usage(log: str) -> tuple[int, int]:
    """(head, tail) bytes of the arena, as TFLM's recording allocator prints them."""
    head = re.search(r"Arena allocation head (\d+) bytes", log)
    tail = re.search(r"Arena allocation tail (\d+) bytes", log)
    if head is None or tail is None:
        raise UserError(f"TFLite Micro did not report its arena usage (it printed: {_one_line(log)[:200]})")
    return int(head.group(1)), int(tail.group(1))
