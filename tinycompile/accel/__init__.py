"""The tinycompile FPGA accelerator: ISA table, assembler, program builders, model and RTL runner.

* :mod:`.isa` - instruction encodings (one table) and error codes;
* :mod:`.assembler` - :class:`Instr`, ``assemble`` / ``disassemble``, :class:`MemoryImage`;
* :mod:`.kernels` - layer builders (``conv2d`` incl. depthwise and pooling, ``dense``, ``add``);
* :mod:`.reference` - numpy layer references on ``tinycompile.quant.intmath``;
* :mod:`.model` - cycle-free ISA model (``run_model``);
* :mod:`.simulate` - run images on the Verilator RTL (``run_jobs``), imported lazily (needs cocotb).
"""

from __future__ import annotations

from tinycompile.accel.assembler import Instr, MemoryImage, assemble, disassemble
from tinycompile.accel.kernels import AccelConfig, ProgramBuilder, Tensor, add, conv2d, dense
from tinycompile.accel.model import AccelError, run_model

__all__ = [
    "AccelConfig",
    "AccelError",
    "Instr",
    "MemoryImage",
    "ProgramBuilder",
    "Tensor",
    "add",
    "assemble",
    "conv2d",
    "dense",
    "disassemble",
    "run_model",
]
