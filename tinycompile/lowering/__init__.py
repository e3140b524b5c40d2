"""The shared front of both back ends: a QuantGraph lowered to Relax, one ``call_tir`` per op whose TE kernel
(``te_ops``) computes the op's exact integer semantics. The MCU schedules and compiles those kernels; the FPGA
partitions them between accelerator and host. Each op's PrimFunc names its op by attribute (``op_of``)."""

from tinycompile.lowering.convert import LOWERED_OPS, OP_ATTR, OP_INDEX_ATTR, op_of, to_relax

__all__ = ["LOWERED_OPS", "OP_ATTR", "OP_INDEX_ATTR", "op_of", "to_relax"]
